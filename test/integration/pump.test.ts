// The event pump on the real kernel, in this process: no polling when idle,
// a clean stop, and the event loop serving many groups.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { EventPump, NOTIFY_REST_MS } from '../../src/kernel/pump';
import * as ffi from '../../src/kernel/ffi';
import { silentLogger } from '../../src/common/log';
import { Watch, type WatchEvent } from '../../src/watch/watch';
import { HandleResolver } from '../../src/host/handle-resolver';
import { fanotifyFdCount, objectSink, sh, sleep, tempDir } from '../fixtures/harness';
import { waitFor, waitingForVerdict } from '../fixtures/wait';
import { FakeClock, withWallClockStep } from '../fixtures/fake-clock';

const OPTIONS = { verdictTimeoutMs: 5000, timeoutDecision: 'allow' as const, maxBatchEvents: 256, queueCapacity: 1024 };

/**
 * Resolves after every rest timer the pump has armed so far has fired:
 * Node runs timers of one duration in the order they were set, so one of
 * NOTIFY_REST_MS set now runs after them.
 */
const afterRests = () => new Promise((r) => setTimeout(r, NOTIFY_REST_MS));

function openWatch(pump: EventPump, dir: string, mask: number, groupClass: 'notif' | 'content' = 'notif', queueCapacity = OPTIONS.queueCapacity) {
  const events: WatchEvent[] = [];
  const w = new Watch(`t-${path.basename(dir)}`, { groupClass, marks: [{ path: dir, scope: 'inode', mask: mask | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, queueCapacity }, pump, silentLogger);
  w.attach(
    objectSink((batch) => {
      events.push(...batch);
      for (const e of batch) if (e.needsVerdict) w.verdict(e.id, 'allow');
      return true;
    }),
  );
  return { w, events };
}

describe('integration: event pump', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const mkdir = () => {
    const d = tempDir();
    dirs.push(d);
    fs.writeFileSync(path.join(d, 'f'), 'x');
    return d;
  };

  it('uses no CPU and never wakes while its groups are idle', async () => {
    const pump = new EventPump();
    const watches = [mkdir(), mkdir(), mkdir()].map((d) => openWatch(pump, d, K.FAN_OPEN_PERM, 'content'));
    try {
      const wakeups = pump.wakeups;
      // What earlier tests left for the collector is not the pump's: collected
      // first where the run allows it (.mocharc.json exposes gc), so the
      // collector's threads do not bill this second for it.
      (globalThis as { gc?: () => void }).gc?.();
      const before = process.cpuUsage();
      // The idle time under test, not a wait for something to happen.
      await sleep(1000);
      const used = process.cpuUsage(before);
      // A poll loop would burn most of the second; an idle wait burns nothing.
      expect(pump.wakeups).to.equal(wakeups);
      expect((used.user + used.system) / 1000).to.be.below(50);
    } finally {
      // A failed check must not leave the groups on the event loop: mocha would wait for them.
      for (const { w } of watches) w.close('disconnect');
      await pump.close();
    }
  });

  it('serves many groups from the event loop, then stops cleanly and leaks no fd', async () => {
    const fdsBefore = fanotifyFdCount();
    const pump = new EventPump();
    const ds = Array.from({ length: 20 }, () => mkdir());
    const watches = ds.map((d) => openWatch(pump, d, K.FAN_OPEN_PERM | K.FAN_CLOSE_NOWRITE, 'content'));
    const r = await sh(ds.map((d) => `: < ${d}/f`).join('; '), 20_000).done;
    expect(r.code).to.equal(0);
    await waitFor(() => watches.every((x) => x.events.length >= 2), 5000, 'two events on every watch');
    watches.forEach(({ events }, i) => {
      expect(events.map((e) => K.FAN_OPEN_PERM & e.ev.mask ? 'perm' : 'close')).to.deep.equal(['perm', 'close']);
      expect(events[0].ev.path?.toString()).to.equal(path.join(ds[i], 'f'));
    });
    for (const { w } of watches) w.close('disconnect');
    expect(pump.size).to.equal(0);
    await pump.close();
    expect(fanotifyFdCount()).to.equal(fdsBefore);
  });

  it('rests a notification group after each wake and still delivers every event, during a burst and after it', async () => {
    const pump = new EventPump();
    const d = mkdir();
    // Distinct files: the kernel merges repeated events on one file.
    for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(d, `g${i}`), '');
    const permDir = mkdir();
    // Room for the whole burst: one read may bring all of it.
    const { w, events } = openWatch(pump, d, K.FAN_OPEN, 'notif', 4096);
    const perm = openWatch(pump, permDir, K.FAN_OPEN_PERM, 'content');
    const until = (list: unknown[], n: number) => waitFor(() => list.length >= n, 5000, `${n} events`);
    try {
      const r = await sh(`i=0; while [ $i -lt 3000 ]; do : < ${d}/g$i; i=$((i+1)); done`, 20_000).done;
      expect(r.code).to.equal(0);
      await until(events, 3000);
      expect(events.length).to.equal(3000);
      expect(pump.rests).to.be.above(0);
      // Idle again: the poll is back, so a lone event comes through.
      await afterRests();
      expect((await sh(`: < ${d}/f`, 10_000).done).code).to.equal(0);
      await until(events, 3001);
      expect(events.length).to.equal(3001);
      // A permission group never rests: its events are read as they come.
      const rests = pump.rests;
      expect((await sh(`: < ${permDir}/f`, 10_000).done).code).to.equal(0);
      await until(perm.events, 1);
      expect(perm.events.length).to.equal(1);
      expect(pump.rests).to.equal(rests);
    } finally {
      w.close('disconnect');
      perm.w.close('disconnect');
      await pump.close();
    }
  });

  it('closes a notification watch in the middle of its rest; the next group is read as usual', async () => {
    const pump = new EventPump();
    const d = mkdir();
    const seen: WatchEvent[] = [];
    let restingAtClose = -1;
    const closed = new Promise<void>((resolve) => {
      const first: Watch = new Watch('resting', { groupClass: 'notif', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, OPTIONS, pump, silentLogger);
      first.attach(
        objectSink((batch) => {
          seen.push(...batch);
          // The wake that read this event ends in a rest of NOTIFY_REST_MS;
          // setImmediate runs later in the same loop turn, before any timer,
          // so the close falls inside the rest and its timer finds the group gone.
          setImmediate(() => {
            restingAtClose = pump.rests;
            first.close('disconnect');
            resolve();
          });
          return true;
        }),
      );
    });
    try {
      expect((await sh(`: < ${d}/f`, 10_000).done).code).to.equal(0);
      await closed;
      expect(restingAtClose).to.equal(1);
      expect(pump.size).to.equal(0);
      const second = openWatch(pump, d, K.FAN_OPEN);
      await afterRests(); // the first group's rest timer, had it not been cleared
      expect((await sh(`: < ${d}/f`, 10_000).done).code).to.equal(0);
      await waitFor(() => second.events.length > 0, 5000, 'the second watch\'s event');
      expect(second.events.map((e) => e.ev.path?.toString())).to.deep.equal([path.join(d, 'f')]);
      expect(seen.length).to.equal(1);
      second.w.close('disconnect');
    } finally {
      await pump.close();
    }
  });

  for (const mode of ['fd', 'dfid_name'] as const) {
    it(`drops for a client that takes nothing (${mode} mode): counts every event and closes its event fd and pidfd`, async () => {
      const pump = new EventPump();
      const d = mkdir();
      const PHASES = 3;
      const PER_PHASE = 200;
      for (let p = 0; p < PHASES; p++) for (let i = 0; i < PER_PHASE; i++) fs.writeFileSync(path.join(d, `p${p}-${i}`), '');
      const pidfds = () =>
        fs.readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[pidfd]';
          } catch {
            return false;
          }
        }).length;
      const CAPACITY = 16;
      const resolver = mode === 'dfid_name' ? await HandleResolver.open([d]) : undefined;
      const w = new Watch('full', { groupClass: 'notif', reportMode: mode, marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, queueCapacity: CAPACITY }, pump, silentLogger, resolver);
      // A sink that takes one batch, then is never writable again: the queue
      // fills and stays full. By the third phase at the latest, every read
      // starts with a full queue, so its events are decoded for their fds alone.
      w.attach(objectSink(() => false, () => false));
      const [fdsBefore, pidfdsBefore] = [fanotifyFdCount(), pidfds()];
      try {
        for (let p = 0; p < PHASES; p++) {
          expect((await sh(`for f in ${d}/p${p}-*; do : < $f; done`, 20_000).done).code).to.equal(0);
          await waitFor(() => w.snapshot().eventsRead >= (p + 1) * PER_PHASE, 5000, `phase ${p}'s events read`);
          const st = w.snapshot();
          expect(st.eventsRead).to.equal((p + 1) * PER_PHASE);
          // Sent in the one batch, still queued (less the drop notice), or counted as dropped.
          expect(st.eventsSent + st.queued - 1 + st.notificationsDropped).to.equal(st.eventsRead);
          expect(st.kernelOverflows).to.equal(0);
          expect(fanotifyFdCount(), `fds after phase ${p}`).to.equal(fdsBefore);
          expect(pidfds(), `pidfds after phase ${p}`).to.equal(pidfdsBefore);
        }
        expect(w.snapshot().queued - 1).to.equal(CAPACITY);
      } finally {
        w.close('disconnect');
        await pump.close();
      }
    });
  }

  it('closes a watch whose poll cannot restart after its rest, and serves the others', async () => {
    const pump = new EventPump();
    const [d, other] = [mkdir(), mkdir()];
    const failures: Error[] = [];
    const events: WatchEvent[] = [];
    const w = new Watch('unresumable', { groupClass: 'notif', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, onFailed: (e) => failures.push(e) }, pump, silentLogger);
    w.attach(objectSink((batch) => (events.push(...batch), true)));
    const healthy = openWatch(pump, other, K.FAN_OPEN);
    // libuv refusing uv_poll_start, as it would for an fd it can no longer poll.
    const real = ffi.pollResume;
    (ffi as { pollResume: typeof ffi.pollResume }).pollResume = () => {
      throw new ffi.SyscallError('uv_poll_start', 9, 'EBADF');
    };
    try {
      // The event is read at once; the rest after that wake ends in the failing resume.
      expect((await sh(`: < ${d}/f`, 10_000).done).code).to.equal(0);
      await waitFor(() => w.isClosed, 5000, 'the watch to close');
      expect(events.length).to.equal(1);
      expect(w.isClosed).to.equal(true);
      expect(failures.map((e) => e.message)).to.deep.equal(['uv_poll_start EBADF: EBADF']);
      expect(pump.size).to.equal(1);
    } finally {
      (ffi as { pollResume: typeof ffi.pollResume }).pollResume = real;
    }
    // The other group rests after each wake too, and resumes with the real
    // call: a second event after the first one's rest is read as well.
    const wait = (n: number) => waitFor(() => healthy.events.length >= n, 5000, `${n} events on the healthy watch`);
    expect((await sh(`: < ${other}/f`, 10_000).done).code).to.equal(0);
    await wait(1);
    await afterRests();
    expect((await sh(`: < ${other}/f`, 10_000).done).code).to.equal(0);
    await wait(2);
    expect(healthy.events.map((e) => e.ev.path?.toString())).to.deep.equal([path.join(other, 'f'), path.join(other, 'f')]);
    expect(healthy.w.isClosed).to.equal(false);
    healthy.w.close('disconnect');
    await pump.close();
  });

  it('ends a batch at maxBatchBytes', async () => {
    const pump = new EventPump();
    const d = mkdir();
    for (let i = 0; i < 9; i++) fs.writeFileSync(path.join(d, `g${i}`), '');
    // objectSink encodes an event in 4 bytes: at most 2 fit in 8.
    const w = new Watch('bytes', { groupClass: 'notif', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, maxBatchBytes: 8 }, pump, silentLogger);
    try {
      // Opened before the watch reads: its first read takes all ten events at once.
      expect((await sh(`: < ${d}/f; for i in 0 1 2 3 4 5 6 7 8; do : < ${d}/g$i; done`, 10_000).done).code).to.equal(0);
      const sizes: number[] = [];
      w.attach(objectSink((batch) => (sizes.push(batch.length), true)));
      await waitFor(() => sizes.reduce((a, b) => a + b, 0) >= 10, 5000, 'ten events');
      expect(sizes).to.deep.equal([2, 2, 2, 2, 2]);
    } finally {
      w.close('disconnect');
      await pump.close();
    }
  });

  it('closes a watch whose handling fails, answers its pending events with its timeout decision, and serves the others', async () => {
    const pump = new EventPump();
    const [da, db] = [mkdir(), mkdir()];
    const failures: Error[] = [];
    // A verdict timeout past the opener's time limit: only the deny at close can answer it in time.
    const broken = new Watch('broken', { groupClass: 'content', marks: [{ path: da, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, verdictTimeoutMs: 60_000, timeoutDecision: 'deny', onFailed: (e) => failures.push(e) }, pump, silentLogger);
    broken.attach(
      objectSink(() => {
        throw new Error('sink broke');
      }),
    );
    const healthy = openWatch(pump, db, K.FAN_OPEN_PERM, 'content');
    // The opener is denied when the watch fails (its timeout decision), not at the verdict timeout.
    const r = await sh(`cat ${da}/f`, 10_000).done;
    expect(r.signal).to.equal(null);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Operation not permitted/);
    expect(broken.isClosed).to.equal(true);
    expect(failures.map((e) => e.message)).to.deep.equal(['sink broke']);
    const ok = await sh(`cat ${db}/f`, 10_000).done;
    expect(ok.code).to.equal(0);
    expect(healthy.events.some((e) => e.ev.path?.toString() === path.join(db, 'f'))).to.equal(true);
    healthy.w.close('disconnect');
    await pump.close();
  });

  it('answers events still in the kernel queue with the timeout decision when a watch closes', async () => {
    const pump = new EventPump();
    const d = mkdir();
    // Never attached: nothing reads the group, so the opener's event waits in the kernel's queue.
    const w = new Watch('unread', { groupClass: 'content', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, timeoutDecision: 'deny' }, pump, silentLogger);
    const opener = sh(`exec cat ${d}/f`, 10_000);
    await waitFor(() => waitingForVerdict(opener.pid), 5000, 'the opener to wait for a verdict');
    w.close('disconnect');
    const r = await opener.done;
    // Closing the group alone would let the kernel allow it.
    expect(r.stderr).to.match(/Operation not permitted/);
    expect(w.snapshot().decisions.disconnect).to.equal(1);
    await pump.close();
  });

  it('answers the rest of a read with the timeout decision when handling one of its events throws', async () => {
    const pump = new EventPump();
    const d = mkdir();
    for (const f of ['g', 'h']) fs.writeFileSync(path.join(d, f), 'x');
    // maxPending 0 answers each event at once ("limit"); the decision hook then throws on the first.
    const w = new Watch('hook', { groupClass: 'content', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, {
      ...OPTIONS,
      timeoutDecision: 'deny',
      maxPending: 0,
      onDecision: () => {
        throw new Error('hook broke');
      },
    }, pump, silentLogger);
    // Three openers wait in the kernel's queue before the watch reads: one read brings all three.
    const openers = ['f', 'g', 'h'].map((f) => sh(`exec cat ${d}/${f}`, 10_000));
    await waitFor(() => openers.every((o) => waitingForVerdict(o.pid)), 5000, 'three openers to wait for verdicts');
    w.attach(objectSink(() => true));
    const results = await Promise.all(openers.map((o) => o.done));
    for (const r of results) expect(r.stderr).to.match(/Operation not permitted/);
    expect(w.isClosed).to.equal(true);
    expect(w.snapshot().decisions.disconnect).to.equal(2);
    await pump.close();
  });

  it('measures verdict latency from the read on the watch\'s clock, whatever the wall clock does', async () => {
    const pump = new EventPump();
    const d = mkdir();
    const clock = new FakeClock(1000);
    const latencies: number[] = [];
    const decided: number[] = [];
    const w = new Watch('clock', { groupClass: 'content', marks: [{ path: d, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, {
      ...OPTIONS,
      clock,
      onVerdictLatency: (ms) => latencies.push(ms),
      onDecision: (_item, _allowed, _by, ms) => decided.push(ms),
    }, pump, silentLogger);
    const seen: WatchEvent[] = [];
    w.attach(
      objectSink((batch) => {
        for (const e of batch) {
          seen.push(e);
          clock.advance(250);
          // A wall-clock step between read and verdict changes nothing measured.
          withWallClockStep(-3600_000, () => w.verdict(e.id, 'allow'));
        }
        return true;
      }),
    );
    const r = await sh(`cat ${d}/f`, 10_000).done;
    expect(r.code).to.equal(0);
    expect(seen.map((e) => [e.readAt, e.ev.process.comm])).to.deep.equal([[1000, 'cat']]);
    expect(latencies).to.deep.equal([250]);
    expect(decided).to.deep.equal([250]);
    w.close('disconnect');
    await pump.close();
  });
});
