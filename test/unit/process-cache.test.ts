// The /proc process cache with /proc and the clock under the test's hand:
// an entry serves only the process it was read for (same pidfd inode, or
// same start time), for a lifetime on the monotonic clock.
import { expect } from 'chai';
import { PROCESS_CACHE_TTL_MS, ProcessCache } from '../../src/host/process-cache';
import { unknownProcess, type ProcessInfo } from '../../src/host/process';
import { FakeClock, withWallClockStep } from '../fixtures/fake-clock';

/**
 * A /proc of live pids, each with a start time and a name, and pidfds
 * (by fd number) naming a process by its pidfs inode; counts the reads.
 */
function fakeProc() {
  const live = new Map<number, { start: number; comm: string; inode: number }>();
  const pidfds = new Map<number, number>();
  const counts = { start: 0, read: 0, inode: 0 };
  const source = {
    startTime: (pid: number) => {
      counts.start++;
      return live.get(pid)?.start;
    },
    pidfdInode: (pidfd: number) => {
      counts.inode++;
      return pidfds.get(pidfd);
    },
    read: (pid: number, pidfd?: number): ProcessInfo => {
      counts.read++;
      const p = live.get(pid);
      if (!p) return unknownProcess(pid);
      const verified = pidfd !== undefined && pidfds.get(pidfd) === p.inode;
      return { ...unknownProcess(pid), comm: p.comm, startTime: p.start, details: true, verified };
    },
  };
  return { live, pidfds, counts, source };
}

function setup() {
  const clock = new FakeClock(1000);
  const proc = fakeProc();
  const cache = new ProcessCache(clock, proc.source);
  const lookup = (pid: number, pidfd?: number) => {
    cache.newBatch();
    return cache.lookup(pid, pidfd);
  };
  return { clock, proc, cache, lookup };
}

describe('unit: process cache', () => {
  it('reuses a description within its lifetime and reads /proc afresh after it, by the monotonic clock', () => {
    const { clock, proc, lookup } = setup();
    proc.live.set(10, { start: 111, comm: 'a', inode: 5 });
    const first = lookup(10);
    expect(first.comm).to.equal('a');
    clock.advance(PROCESS_CACHE_TTL_MS - 1);
    expect(lookup(10)).to.equal(first);
    expect(proc.counts.read).to.equal(1);
    clock.advance(1);
    expect(lookup(10)).to.not.equal(first);
    expect(proc.counts.read).to.equal(2);
  });

  it('is not kept fresh by a wall clock stepping back, nor emptied by one stepping forward', () => {
    const { clock, proc, lookup } = setup();
    proc.live.set(10, { start: 111, comm: 'a', inode: 5 });
    const first = withWallClockStep(0, () => lookup(10));
    expect(withWallClockStep(24 * 3600_000, () => lookup(10))).to.equal(first);
    clock.advance(PROCESS_CACHE_TTL_MS);
    expect(withWallClockStep(-24 * 3600_000, () => lookup(10))).to.not.equal(first);
  });

  it('never describes a reused pid as the process that had it before (by start time)', () => {
    const { proc, lookup } = setup();
    proc.live.set(10, { start: 111, comm: 'old', inode: 5 });
    expect(lookup(10).comm).to.equal('old');
    // The process exits and a new one gets its pid, well within the lifetime.
    proc.live.set(10, { start: 222, comm: 'new', inode: 6 });
    expect(lookup(10).comm).to.equal('new');
  });

  it('never describes a reused pid as the process that had it before (by pidfd), and needs no start time for it', () => {
    const { proc, lookup } = setup();
    proc.live.set(10, { start: 111, comm: 'old', inode: 5 });
    proc.pidfds.set(30, 5);
    expect(lookup(10, 30).comm).to.equal('old');
    expect(lookup(10, 30).comm).to.equal('old');
    proc.live.set(10, { start: 222, comm: 'new', inode: 6 });
    proc.pidfds.set(31, 6);
    expect(lookup(10, 31).comm).to.equal('new');
    expect(proc.counts).to.deep.equal({ start: 0, read: 2, inode: 3 });
  });

  it('describes a process that has exited by its pidfd, and by the pid alone without one', () => {
    const { proc, lookup } = setup();
    proc.live.set(10, { start: 111, comm: 'a', inode: 5 });
    proc.pidfds.set(30, 5);
    const first = lookup(10, 30);
    proc.live.delete(10);
    expect(lookup(10, 30)).to.equal(first);
    expect(lookup(10)).to.deep.equal(unknownProcess(10));
  });

  it('keeps no description the pidfd did not confirm', () => {
    const { proc, lookup } = setup();
    proc.live.set(10, { start: 222, comm: 'newcomer', inode: 6 });
    // The event's process (inode 5) had pid 10 and is gone: what /proc says is another's.
    proc.pidfds.set(30, 5);
    expect(lookup(10, 30).verified).to.equal(false);
    lookup(10, 30);
    expect(proc.counts.read).to.equal(2);
  });

  it('checks a process once per read, however many of its events the read holds', () => {
    const { proc, cache } = setup();
    proc.live.set(10, { start: 111, comm: 'a', inode: 5 });
    proc.live.set(11, { start: 112, comm: 'b', inode: 6 });
    cache.newBatch();
    for (let i = 0; i < 5; i++) {
      cache.lookup(10);
      cache.lookup(11);
    }
    expect(proc.counts).to.deep.equal({ start: 2, read: 2, inode: 0 });
    cache.newBatch();
    cache.lookup(10);
    expect(proc.counts.start).to.equal(3);
  });

  it('reads at its own level: a cache for clients that want no command line never reads one, nor serves it', () => {
    const levels: string[] = [];
    const source = {
      startTime: () => 111,
      pidfdInode: () => undefined,
      read: (pid: number, _pidfd: number | undefined, level: string): ProcessInfo => {
        levels.push(level);
        return { ...unknownProcess(pid), startTime: 111, details: true, cmdline: level === 'full' ? ['a', '-x'] : [] };
      },
    };
    const basic = new ProcessCache(new FakeClock(0), source, 'basic');
    basic.newBatch();
    expect(basic.lookup(10).cmdline).to.deep.equal([]);
    expect(basic.lookup(10).cmdline).to.deep.equal([]);
    const full = new ProcessCache(new FakeClock(0), source);
    full.newBatch();
    expect(full.lookup(10).cmdline).to.deep.equal(['a', '-x']);
    expect(levels).to.deep.equal(['basic', 'full']);
  });
});
