// The /proc process cache with /proc and the clock under the test's hand:
// entries keyed by pid and start time, lifetimes on the monotonic clock.
import { expect } from 'chai';
import { PROCESS_CACHE_TTL_MS, ProcessCache } from '../../src/host/process-cache';
import { unknownProcess, type ProcessInfo } from '../../src/host/process';
import { FakeClock, withWallClockStep } from '../fixtures/fake-clock';

/** A /proc of pids with a start time and a name each; counts the reads. */
function fakeProc() {
  const procs = new Map<number, { start: number; comm: string }>();
  const counts = { start: 0, read: 0 };
  const readStart = (pid: number) => {
    counts.start++;
    return procs.get(pid)?.start;
  };
  const read = (pid: number): ProcessInfo => {
    counts.read++;
    const p = procs.get(pid);
    return p ? { ...unknownProcess(pid), comm: p.comm, details: true } : unknownProcess(pid);
  };
  return { procs, counts, readStart, read };
}

function setup() {
  const clock = new FakeClock(1000);
  const proc = fakeProc();
  const cache = new ProcessCache(clock, proc.readStart, proc.read);
  return { clock, proc, cache };
}

describe('unit: process cache', () => {
  it('reuses a description within its lifetime and reads /proc afresh after it, by the monotonic clock', () => {
    const { clock, proc, cache } = setup();
    proc.procs.set(10, { start: 111, comm: 'a' });
    cache.newBatch();
    const first = cache.lookup(10);
    expect(first.comm).to.equal('a');
    clock.advance(PROCESS_CACHE_TTL_MS - 1);
    cache.newBatch();
    expect(cache.lookup(10)).to.equal(first);
    expect(proc.counts.read).to.equal(1);
    clock.advance(1);
    cache.newBatch();
    expect(cache.lookup(10)).to.not.equal(first);
    expect(proc.counts.read).to.equal(2);
  });

  it('is not kept fresh by a wall clock stepping back, nor emptied by one stepping forward', () => {
    const { clock, proc, cache } = setup();
    proc.procs.set(10, { start: 111, comm: 'a' });
    cache.newBatch();
    const first = withWallClockStep(0, () => cache.lookup(10));
    cache.newBatch();
    expect(withWallClockStep(24 * 3600_000, () => cache.lookup(10))).to.equal(first);
    clock.advance(PROCESS_CACHE_TTL_MS);
    cache.newBatch();
    expect(withWallClockStep(-24 * 3600_000, () => cache.lookup(10))).to.not.equal(first);
  });

  it('never describes a reused pid as the process that had it before', () => {
    const { proc, cache } = setup();
    proc.procs.set(10, { start: 111, comm: 'old' });
    cache.newBatch();
    expect(cache.lookup(10).comm).to.equal('old');
    // The process exits and a new one gets its pid, well within the lifetime.
    proc.procs.set(10, { start: 222, comm: 'new' });
    cache.newBatch();
    expect(cache.lookup(10).comm).to.equal('new');
  });

  it('describes a pid by the pid alone once its process is gone, whatever it cached', () => {
    const { proc, cache } = setup();
    proc.procs.set(10, { start: 111, comm: 'a' });
    cache.newBatch();
    cache.lookup(10);
    proc.procs.delete(10);
    cache.newBatch();
    const gone = cache.lookup(10);
    expect(gone).to.deep.equal(unknownProcess(10));
  });

  it('reads a start time once per pid per read', () => {
    const { proc, cache } = setup();
    proc.procs.set(10, { start: 111, comm: 'a' });
    proc.procs.set(11, { start: 112, comm: 'b' });
    cache.newBatch();
    for (let i = 0; i < 5; i++) {
      cache.lookup(10);
      cache.lookup(11);
    }
    expect(proc.counts).to.deep.equal({ start: 2, read: 2 });
    cache.newBatch();
    cache.lookup(10);
    expect(proc.counts.start).to.equal(3);
  });
});
