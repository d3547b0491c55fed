// MARK_SCOPE_SUBTREE on the real kernel, in this process: a mount mark on a
// tmpfs this test mounts (permission marks of mount scope only there), the
// daemon's path check, the ignore marks outside, the flush when a directory
// moves in, and mounts made below. Every open under the mark is made by a
// child with a time limit; this process opens nothing there while a watch
// exists (its main thread answers the events).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { EventPump } from '../../src/kernel/pump';
import { silentLogger } from '../../src/common/log';
import { Watch, type Decision, type WatchEvent } from '../../src/watch/watch';
import { fanotifyFdCount, objectSink, sh, tempDir } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

const OPTIONS = { verdictTimeoutMs: 5000, timeoutDecision: 'allow' as const, maxBatchEvents: 256, queueCapacity: 1024 };

interface Opened {
  w: Watch;
  events: WatchEvent[];
  paths(): string[];
  /** Events read that were not this process's own (the watch opens a directory on the tmpfs for itself). */
  asked(): number;
}

function openSubtree(
  pump: EventPump,
  root: string,
  mask: number,
  opts: { groupClass?: 'notif' | 'content'; evictable?: boolean; decide?: (e: WatchEvent) => Decision } = {},
): Opened {
  const events: WatchEvent[] = [];
  const w = new Watch(
    't-subtree',
    { groupClass: opts.groupClass ?? 'content', marks: [{ path: root, scope: 'subtree', mask, flags: 0 }] },
    { reportPidfd: true, evictable: opts.evictable ?? true },
    OPTIONS,
    pump,
    silentLogger,
  );
  w.attach(
    objectSink((batch) => {
      events.push(...batch);
      for (const e of batch) if (e.needsVerdict) w.verdict(e.id, opts.decide?.(e) ?? 'allow');
      return true;
    }),
  );
  const asked = () => {
    const s = w.snapshot();
    return s.eventsRead - s.decisions.self;
  };
  return { w, events, paths: () => events.map((e) => e.ev.path?.toString() ?? ''), asked };
}

/** A shell script in a child with a time limit; fails the test unless it exits 0. */
async function run(script: string): Promise<void> {
  const r = await sh(script, 10_000).done;
  expect(r.signal, `${script}: killed at its time limit`).to.equal(null);
  expect(r.code, `${script}: ${r.stderr}`).to.equal(0);
}

describe('integration: subtree marks', function () {
  this.timeout(30_000);
  let mnt: string;
  let pump: EventPump;
  let opened: Opened | undefined;
  const p = (...parts: string[]) => path.join(mnt, ...parts);

  beforeEach(() => {
    mnt = tempDir('fanotifyd-subtree-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'fanotifyd-subtree', mnt]);
    // The tree is made before any mark: this process may open files there only now.
    for (const d of ['in/a/b/c', 'in-sibling', 'out/x', 'out/d', 'out/y']) fs.mkdirSync(p(d), { recursive: true });
    for (const f of ['in/top', 'in/a/b/c/f', 'in-sibling/f', 'out/x/f', 'out/x/g', 'out/d/f', 'out/y/f', 'loose']) fs.writeFileSync(p(f), 'x');
    pump = new EventPump();
  });

  afterEach(async () => {
    opened?.w.close('disconnect');
    opened = undefined;
    await pump.close();
    try {
      execFileSync('umount', ['-R', mnt], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-R', '-l', mnt]);
    }
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('reports opens three levels down and none from a sibling directory or outside', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    await run(`cat ${p('in-sibling/f')} ${p('out/x/f')} ${p('loose')} ${p('in/a/b/c/f')} >/dev/null`);
    // Events are read in order: once the last open is seen, the others were taken.
    await waitFor(() => opened!.paths().includes(p('in/a/b/c/f')), 5000, 'the nested open');
    expect(opened.paths()).to.deep.equal([p('in/a/b/c/f')]);
    const s = opened.w.snapshot();
    expect(s.filtered).to.equal(3);
    expect(s.decisions.filter).to.equal(3);
  });

  it('reports files opened right after their directory was made', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    await run(`for i in $(seq 1 20); do mkdir -p ${p('in/new')}$i/deep && echo x > ${p('in/new')}$i/deep/f; done`);
    const expected = Array.from({ length: 20 }, (_, i) => p(`in/new${i + 1}/deep/f`));
    await waitFor(() => expected.every((f) => opened!.paths().includes(f)), 5000, 'an open in each new directory');
  });

  it('asks the kernel no more about an outside directory once something in it was opened', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    const read0 = opened.asked();
    await run(`cat ${p('out/x/f')} >/dev/null`);
    const read1 = opened.asked();
    expect(read1 - read0, 'the first open outside reaches the daemon').to.equal(1);
    expect(opened.w.snapshot().subtreeIgnores).to.equal(1);
    // A permission event holds its opener until answered: with the children
    // done, any event they caused has been read.
    await run(`cat ${p('out/x/f')} ${p('out/x/g')} ${p('out/x/f')} >/dev/null`);
    expect(opened.asked()).to.equal(read1);
    await run(`cat ${p('in/top')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in/top')), 5000, 'the open inside');
  });

  it("answers opens above the subtree's root each time, and never hides the root", async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM | K.FAN_ONDIR);
    const read0 = opened.asked();
    // A file beside the root: no mark could ignore it without hiding the root's own events.
    await run(`cat ${p('loose')} >/dev/null; cat ${p('loose')} >/dev/null`);
    expect(opened.asked() - read0).to.equal(2);
    // The directory above the root is ignored for itself alone; the root is still reported.
    await run(`ls ${mnt} >/dev/null; ls ${mnt} >/dev/null; ls ${p('in')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in')), 5000, 'the open of the root');
    expect(opened.asked() - read0).to.equal(4);
    expect(opened.paths()).to.deep.equal([p('in')]);
  });

  it('reports a touched outside directory again once it is moved in', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    await run(`cat ${p('out/d/f')} >/dev/null`);
    const read1 = opened.asked();
    await run(`cat ${p('out/d/f')} >/dev/null`);
    expect(opened.asked(), 'out/d is ignored').to.equal(read1);
    const flushes = opened.w.snapshot().subtreeFlushes;
    await run(`mv ${p('out/d')} ${p('in/d')}`);
    // The move is seen on a group of its own: the flush follows it by microseconds (docs/architecture.md).
    await waitFor(() => opened!.w.snapshot().subtreeFlushes > flushes, 5000, 'the flush after the move');
    await run(`cat ${p('in/d/f')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in/d/f')), 5000, 'the open in the moved directory');
  });

  it('reports files of directories and files moved in that were never touched, without a flush for a move outside', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    await run(`cat ${p('out/x/f')} >/dev/null`);
    const stats = () => opened!.w.snapshot();
    // Until the watch holds the fd it resolves handles with (opened on the
    // thread pool), every directory move flushes: move until one does not.
    let name = 'y';
    await waitFor(
      async () => {
        const { subtreeMoves, subtreeFlushes } = stats();
        const next = name === 'y' ? 'z' : 'y';
        await run(`mv ${p('out', name)} ${p('out', next)}`);
        name = next;
        await waitFor(() => stats().subtreeMoves > subtreeMoves, 5000, 'the move seen');
        return stats().subtreeFlushes === subtreeFlushes;
      },
      5000,
      'a directory moved outside that flushes nothing',
    );
    const flushes = stats().subtreeFlushes;
    await run(`mv ${p('out/x/g')} ${p('in/g')} && cat ${p('in/g')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in/g')), 5000, 'the open of the file moved in');
    expect(stats().subtreeFlushes, 'a file moved in needs no flush').to.equal(flushes);
    await run(`mv ${p('out', name)} ${p('in/z')}`);
    await waitFor(() => opened!.w.snapshot().subtreeFlushes > flushes, 5000, 'the flush after the move');
    await run(`cat ${p('in/z/f')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in/z/f')), 5000, 'the open in the moved directory');
  });

  it('follows a filesystem mounted below the directory after the watch began', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM);
    const mounts = opened.w.snapshot().subtreeMounts;
    await run(`mkdir ${p('in/a/m')} && mount -t tmpfs -o size=1m fanotifyd-subtree-below ${p('in/a/m')} && echo x > ${p('in/a/m/f')}`);
    // The mark lands microseconds after mount() returns (docs/architecture.md); after it, every open is seen.
    await waitFor(() => opened!.w.snapshot().subtreeMounts > mounts, 5000, 'the mount marked');
    await run(`cat ${p('in/a/m/f')} >/dev/null`);
    await waitFor(() => opened!.paths().includes(p('in/a/m/f')), 5000, 'the open on the new mount');
  });

  it('denies a nested file when the client says DENY', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM, { decide: (e) => (e.ev.path?.toString() === p('in/a/b/c/f') ? 'deny' : 'allow') });
    const r = await sh(`cat ${p('in/a/b/c/f')}`, 10_000).done;
    expect(r.signal).to.equal(null);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Operation not permitted/);
    await run(`cat ${p('in/top')} ${p('out/x/f')} >/dev/null`);
  });

  it('without ignore marks, answers every open outside in the daemon', async () => {
    opened = openSubtree(pump, p('in'), K.FAN_OPEN_PERM, { evictable: false });
    const read0 = opened.asked();
    await run(`cat ${p('out/x/f')} >/dev/null; cat ${p('out/x/f')} >/dev/null`);
    const s = opened.w.snapshot();
    expect(opened.asked() - read0).to.equal(2);
    expect(s.subtreeIgnores).to.equal(0);
    expect(s.decisions.filter).to.equal(2);
  });

  it('drops notifications outside and leaves no fd or group behind', async () => {
    const fds = fanotifyFdCount();
    const mountinfoFds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith('/mountinfo');
      } catch {
        return false;
      }
    }).length;
    const mountinfo = mountinfoFds();
    opened = openSubtree(pump, p('in'), K.FAN_OPEN | K.FAN_CLOSE_NOWRITE, { groupClass: 'notif' });
    await run(`cat ${p('out/x/f')} ${p('in/a/b/c/f')} >/dev/null`);
    // The kernel may merge an open and its close into one event: wait for both bits.
    const bits = () => opened!.events.reduce((m, e) => m | e.ev.mask, 0);
    await waitFor(() => (bits() & (K.FAN_OPEN | K.FAN_CLOSE_NOWRITE)) === (K.FAN_OPEN | K.FAN_CLOSE_NOWRITE), 5000, 'the open and close inside');
    expect(new Set(opened.paths())).to.deep.equal(new Set([p('in/a/b/c/f')]));
    expect(opened.w.snapshot().filtered).to.be.at.least(1);
    opened.w.close('disconnect');
    opened = undefined;
    // The rename group's directory fd is opened on the thread pool; one still
    // opening when the watch closed is closed as soon as it is open.
    await waitFor(() => fanotifyFdCount() === fds, 5000, 'every fanotify group and directory fd of the watch closed');
    expect(fanotifyFdCount()).to.equal(fds);
    expect(mountinfoFds()).to.equal(mountinfo);
  });
});
