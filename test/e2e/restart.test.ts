// Restarts under systemd without a fail-open window: the daemon run by a
// harness that plays systemd's part (test/fixtures/systemd-harness.ts), a
// named DENY permission watch on a directory this test made, openers
// blocked on it (each a child with a time limit), and the daemon killed
// or stopped. Every test's teardown closes the harness's store, so no
// opener outlives it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { SEQUENCE_BLOCK } from '../../src/daemon/fd-store';
import { connect, runChild, tempDir, WatchStream, type ChildResult, type Client } from '../fixtures/harness';
import { SystemdHarness } from '../fixtures/systemd-harness';

const OPENERS = 3;

describe('e2e: restart under systemd (fd store)', function () {
  this.timeout(60_000);
  let dir: string;
  let sd: SystemdHarness;
  let clients: Client[];

  beforeEach(() => {
    dir = tempDir();
    // Every file is made now: once the watch exists, this process opens nothing under it.
    for (let i = 0; i < OPENERS + 2; i++) fs.writeFileSync(path.join(dir, `f${i}`), `x${i}`);
    fs.writeFileSync(path.join(dir, 'ok'), 'ok');
    clients = [];
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    await sd?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function harness(env: NodeJS.ProcessEnv = {}): SystemdHarness {
    sd = new SystemdHarness([], env);
    return sd;
  }

  /** A named DENY watch that lingers, its group in the store, and OPENERS openers blocked on it. */
  async function guardWithBlockedOpeners(verdictTimeoutMs = 5_000) {
    const client = connect(sd.address);
    clients.push(client);
    const s = new WatchStream(client, {
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: verdictTimeoutMs,
      timeout_decision: 'DECISION_DENY',
      name: 'guard',
      linger_ms: 60_000,
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    await s.subscribed();
    await sd.until(() => sd.storedFds === 1, 'FDSTORE of the watch');
    const openers = Array.from({ length: OPENERS }, (_, i) => runChild('cat', [path.join(dir, `f${i}`)], 30_000));
    await s.until(() => s.events.length >= OPENERS, 10_000, `${OPENERS} permission events`);
    return { s, openers };
  }

  /**
   * A policy engine attaching to the restored watch after the last
   * sequence it saw: it is sent only later events, and its verdicts
   * decide (it allows the file "ok", denies the rest).
   */
  async function engineReattaches(after: number): Promise<WatchStream> {
    const client = connect(sd.address);
    clients.push(client);
    const engine = new WatchStream(client);
    engine.onEvent = (ev) => ev.needs_verdict && engine.verdict(ev.id, ev.path.endsWith('/ok') ? 'DECISION_ALLOW' : 'DECISION_DENY');
    engine.call.write({ attach: { name: 'guard', after_sequence: String(after) } });
    const sub = await engine.subscribed();
    expect(sub).to.include({ name: 'guard', attached: true });
    const allowed = await runChild('cat', [path.join(dir, 'ok')], 30_000).done;
    expect(allowed.code, allowed.stderr).to.equal(0);
    expect(engine.events.length).to.be.at.least(1);
    for (const ev of engine.events) expect(Number(ev.sequence)).to.be.above(after);
    return engine;
  }

  const gaps = (s: WatchStream) => s.responses.filter((r) => r.gap).map((r) => [Number(r.gap.from_sequence), Number(r.gap.to_sequence)]);

  const lastSequence = (s: WatchStream) => Math.max(...s.events.map((ev) => Number(ev.sequence)));

  const denied = (r: ChildResult) => r.code !== 0 && /Operation not permitted/.test(r.stderr);
  const restoredLine = () => sd.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'watch taken back from the fd store');

  it('kill -9: every blocked opener is denied by the restored watch, opens during the restart too, and an engine resumes after its last sequence', async () => {
    harness();
    await sd.start();
    const { s, openers } = await guardWithBlockedOpeners();
    const seen = lastSequence(s);
    expect(seen).to.be.at.least(OPENERS);
    await sd.kill('SIGKILL');
    // Made while no daemon runs: it waits in the kernel's queue of the stored group.
    const during = runChild('cat', [path.join(dir, `f${OPENERS}`)], 30_000);
    await sd.start();
    const results = await Promise.all(openers.map((o) => o.done));
    for (const r of results) expect(denied(r), `opener: ${r.code} ${r.stderr}`).to.equal(true);
    const late = await during.done;
    expect(denied(late), `opener during the restart: ${late.code} ${late.stderr}`).to.equal(true);
    const restored = await sd.until(restoredLine, 'the restore log line');
    expect(restored.pending_answered).to.equal(OPENERS);
    // Taken back, not stored a second time.
    expect(sd.storedFds).to.equal(1);
    expect(restored.name).to.equal('guard');
    await engineReattaches(seen);
  });

  it('SIGTERM with the store kept: openers wait through the restart and are denied, not allowed; an engine resumes after its last sequence', async () => {
    harness();
    await sd.start();
    const { s, openers } = await guardWithBlockedOpeners();
    const seen = lastSequence(s);
    expect(await sd.kill('SIGTERM')).to.equal(0);
    expect(sd.notices.some((n) => n.STOPPING === '1')).to.equal(true);
    expect(sd.storedFds).to.equal(1);
    // The old process answered none of them on its way out.
    const settled = await Promise.race([Promise.all(openers.map((o) => o.done)).then(() => true), Promise.resolve(false)]);
    expect(settled).to.equal(false);
    await sd.start();
    for (const r of await Promise.all(openers.map((o) => o.done))) expect(denied(r), `opener: ${r.code} ${r.stderr}`).to.equal(true);
    const restored = await sd.until(restoredLine, 'the restore log line');
    expect(restored).to.include({ pending_answered: OPENERS, first_sequence: seen + 1, sequence_exact: true });
    // It had every number the old process gave: nothing to call lost.
    const engine = await engineReattaches(seen);
    expect(gaps(engine)).to.deep.equal([]);
  });

  /** A named notification watch of the opens in `dir`, its group in the store. */
  async function filesWatch(): Promise<WatchStream> {
    const client = connect(sd.address);
    clients.push(client);
    const s = new WatchStream(client, { group_class: 'GROUP_CLASS_NOTIF', name: 'files', linger_ms: 60_000, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    await s.subscribed();
    await sd.until(() => sd.storedFds === 1, 'FDSTORE of the watch');
    return s;
  }

  async function attachFiles(after: number): Promise<WatchStream> {
    const client = connect(sd.address);
    clients.push(client);
    const a = new WatchStream(client);
    a.call.write({ attach: { name: 'files', after_sequence: String(after) } });
    expect(await a.subscribed()).to.include({ name: 'files', attached: true });
    return a;
  }

  /** Opens each file (a child each), waits until `s` has all their events, and gives the last sequence it has. */
  async function opensSeen(s: WatchStream, names: string[]): Promise<number> {
    for (const n of names) {
      const r = await runChild('cat', [path.join(dir, n)], 30_000).done;
      expect(r.code, r.stderr).to.equal(0);
    }
    await s.until(() => names.every((n) => s.events.some((ev) => ev.path.endsWith(`/${n}`))), 10_000, `the opens of ${names.join(', ')}`);
    return lastSequence(s);
  }

  /** What each stream was told up to the event of the next open (of "ok"): the Gaps, and that event's sequence. */
  async function toldUpToNextOpen(streams: WatchStream[]): Promise<Array<{ gaps: number[][]; next: number }>> {
    const r = await runChild('cat', [path.join(dir, 'ok')], 30_000).done;
    expect(r.code, r.stderr).to.equal(0);
    const ok = (a: WatchStream) => a.until(() => a.events.find((ev) => ev.path.endsWith('/ok')), 10_000, 'the open of ok');
    return Promise.all(streams.map(async (a) => ({ next: Number((await ok(a)).sequence), gaps: gaps(a) })));
  }

  /**
   * Three opens numbered and seen, a restart, then two streams attach:
   * one after the last number seen, one after the last but two.
   */
  async function attachedAfterRestart(restart: () => Promise<unknown>) {
    harness();
    await sd.start();
    const seen = await opensSeen(await filesWatch(), ['f0', 'f1', 'f2']);
    expect(seen).to.equal(3);
    await restart();
    await sd.start();
    const [whole, behind] = await toldUpToNextOpen([await attachFiles(seen), await attachFiles(seen - 2)]);
    return { seen, whole, behind };
  }

  it('SIGTERM with the store kept: numbering goes on from the exact next number; a Gap only for numbers given and not received', async () => {
    const { seen, whole, behind } = await attachedAfterRestart(async () => {
      expect(await sd.kill('SIGTERM')).to.equal(0);
      expect(sd.storedFds).to.equal(1);
    });
    expect(whole).to.deep.equal({ gaps: [], next: seen + 1 });
    expect(behind).to.deep.equal({ gaps: [[seen - 1, seen]], next: seen + 1 });
  });

  it('kill -9: numbering goes on past the reserved block, told as a Gap over the rest of it', async () => {
    const { seen, whole, behind } = await attachedAfterRestart(() => sd.kill('SIGKILL'));
    expect(whole).to.deep.equal({ gaps: [[seen + 1, SEQUENCE_BLOCK]], next: SEQUENCE_BLOCK + 1 });
    expect(behind).to.deep.equal({ gaps: [[seen - 1, SEQUENCE_BLOCK]], next: SEQUENCE_BLOCK + 1 });
  });

  it('SIGTERM whose write of the exact number fails: numbering goes on past the reserved block, as after kill -9', async () => {
    const { seen, whole } = await attachedAfterRestart(async () => {
      const { FDNAME } = sd.notices.find((n) => n.FDSTORE === '1')!;
      // Where the stopping process writes the definition before its rename: a directory there fails the write.
      fs.mkdirSync(path.join(sd.stateDir, 'watches', `${FDNAME}.json.${sd.proc!.pid}.tmp`));
      expect(await sd.kill('SIGTERM')).to.equal(0);
      expect(sd.logs.some((l) => l.includes('writing the exact next sequence failed'))).to.equal(true);
    });
    expect(whole).to.deep.equal({ gaps: [[seen + 1, SEQUENCE_BLOCK]], next: SEQUENCE_BLOCK + 1 });
  });

  it('SIGTERM, then kill -9: what the watch numbered after the graceful restart is never numbered again', async () => {
    harness();
    await sd.start();
    const seen = await opensSeen(await filesWatch(), ['f0', 'f1', 'f2']);
    expect(await sd.kill('SIGTERM')).to.equal(0);
    await sd.start();
    const given = await opensSeen(await attachFiles(seen), ['f3']);
    expect(given).to.equal(seen + 1);
    await sd.kill('SIGKILL');
    await sd.start();
    // The restored watch reserved its block from its exact start (seen + 1) before it read anything.
    const [told] = await toldUpToNextOpen([await attachFiles(given)]);
    expect(told).to.deep.equal({ gaps: [[given + 1, seen + SEQUENCE_BLOCK]], next: seen + 1 + SEQUENCE_BLOCK });
  });

  it('stop (SIGTERM, then the store closed) releases every blocked opener', async () => {
    harness();
    await sd.start();
    const { openers } = await guardWithBlockedOpeners();
    expect(await sd.stop()).to.equal(0);
    expect(sd.storedFds).to.equal(0);
    for (const r of await Promise.all(openers.map((o) => o.done))) expect(r.code, r.stderr).to.equal(0);
  });

  it('without a store, kill -9 lets the blocked openers through (the window the store closes)', async () => {
    harness({ FDSTORE: '0' });
    await sd.start();
    const client = connect(sd.address);
    clients.push(client);
    const s = new WatchStream(client, {
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: 20_000,
      timeout_decision: 'DECISION_DENY',
      name: 'guard',
      linger_ms: 60_000,
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    await s.subscribed();
    const opener = runChild('cat', [path.join(dir, 'f0')], 30_000);
    await s.until(() => s.events.length >= 1, 10_000, 'the permission event');
    expect(sd.storedFds).to.equal(0);
    await sd.kill('SIGKILL');
    expect((await opener.done).code).to.equal(0);
  });

  it('speaks the notify protocol: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC, FDSTOREREMOVE when a kept watch closes', async () => {
    harness({ WATCHDOG_USEC: '200000' });
    await sd.start();
    expect(sd.notices.find((n) => n.READY === '1')!.MAINPID).to.equal(String(sd.proc!.pid));
    await sd.until(() => sd.notices.filter((n) => n.WATCHDOG === '1').length >= 3, 'three watchdog pings');
    const client = connect(sd.address);
    clients.push(client);
    const s = new WatchStream(client, {
      group_class: 'GROUP_CLASS_NOTIF',
      name: 'files',
      linger_ms: 1_000,
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }],
    });
    await s.subscribed();
    const stored = await sd.until(() => sd.notices.find((n) => n.FDSTORE === '1'), 'FDSTORE');
    expect(stored.FDNAME).to.match(/^files\.[0-9a-f]{12}$/);
    expect(fs.readdirSync(path.join(sd.stateDir, 'watches'))).to.deep.equal([`${stored.FDNAME}.json`]);
    s.cancel();
    await sd.until(() => sd.notices.find((n) => n.FDSTOREREMOVE === '1' && n.FDNAME === stored.FDNAME), 'FDSTOREREMOVE');
    expect(sd.storedFds).to.equal(0);
    await sd.until(() => fs.readdirSync(path.join(sd.stateDir, 'watches')).length === 0, 'the definition deleted');
  });

  it('a mark added to a kept watch is in its definition before its MarkResult, and stays there through a restart', async () => {
    harness();
    await sd.start();
    const s = await filesWatch();
    const extra = tempDir();
    try {
      s.call.write({ add_mark: { request_id: '1', mark: { path: extra, on_child: true, events: ['EVENT_TYPE_OPEN'] } } });
      const result = await s.until(() => s.responses.find((m) => m.mark_result?.request_id === '1')?.mark_result, 10_000, 'MarkResult 1');
      expect(result.code).to.equal(0);
      const added = () => {
        const [file] = fs.readdirSync(path.join(sd.stateDir, 'watches'));
        return (JSON.parse(fs.readFileSync(path.join(sd.stateDir, 'watches', file), 'utf8')) as { addedMarks?: Array<{ path: string }> }).addedMarks;
      };
      // Read as soon as the MarkResult came: the definition was written before the kernel had the mark.
      expect(added()?.map((m) => m.path)).to.deep.equal([extra]);
      await sd.kill('SIGKILL');
      await sd.start();
      await sd.until(() => sd.logs.some((l) => l.includes('watch taken back from the fd store')), 'the watch restored');
      expect(added()?.map((m) => m.path)).to.deep.equal([extra]);
    } finally {
      fs.rmSync(extra, { recursive: true, force: true });
    }
  });

  it('a corrupt definition fails its watch, not the daemon; an fd without a definition is dropped', async () => {
    harness();
    await sd.start();
    const { openers } = await guardWithBlockedOpeners();
    await sd.kill('SIGKILL');
    const [file] = fs.readdirSync(path.join(sd.stateDir, 'watches'));
    fs.writeFileSync(path.join(sd.stateDir, 'watches', file), '{"version":1,');
    await sd.start();
    await sd.until(() => sd.storedFds === 0, 'the fd dropped from the store');
    expect(sd.logs.some((l) => l.includes('bad definition'))).to.equal(true);
    // The group closed: the kernel allowed what it held (no definition, no decision to give).
    for (const r of await Promise.all(openers.map((o) => o.done))) expect(r.code, r.stderr).to.equal(0);
    expect(fs.readdirSync(path.join(sd.stateDir, 'watches'))).to.deep.equal([]);
  });

  it('a definition the daemon no longer accepts fails its watch: held and queued opens still get its decision, not ALLOW', async () => {
    harness();
    await sd.start();
    const { openers } = await guardWithBlockedOpeners();
    await sd.kill('SIGKILL');
    const during = runChild('cat', [path.join(dir, `f${OPENERS}`)], 30_000);
    // The stored watch lingers 60 s; this daemon allows at most 1 s.
    sd.args = ['--max-linger-ms', '1000'];
    await sd.start();
    await sd.until(() => sd.storedFds === 0, 'the fd dropped from the store');
    const failed = sd.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'a stored watch could not be restored; its group is closed');
    expect(failed, sd.logs.join('\n')).to.not.equal(undefined);
    for (const r of await Promise.all([...openers, during].map((o) => o.done))) expect(denied(r), `opener: ${r.code} ${r.stderr}`).to.equal(true);
  });

  it('closes an fd whose definition is gone and deletes a definition whose fd is gone, each with a log line', async () => {
    harness();
    await sd.start();
    const { openers } = await guardWithBlockedOpeners();
    await sd.kill('SIGKILL');
    const watches = path.join(sd.stateDir, 'watches');
    const [file] = fs.readdirSync(watches);
    fs.renameSync(path.join(watches, file), path.join(watches, 'gone.json'));
    const moved = JSON.parse(fs.readFileSync(path.join(watches, 'gone.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(watches, 'gone.json'), JSON.stringify({ ...moved, fdName: 'gone' }));
    await sd.start();
    await sd.until(() => sd.storedFds === 0, 'the fd dropped from the store');
    expect(sd.logs.some((l) => l.includes('an fd in the store has no watch definition; closed'))).to.equal(true);
    expect(sd.logs.some((l) => l.includes('a watch definition has no fd in the store; deleted'))).to.equal(true);
    await sd.until(() => fs.readdirSync(watches).length === 0, 'the definition deleted');
    // No definition, no decision: the group closed and the kernel allowed what it held.
    for (const r of await Promise.all(openers.map((o) => o.done))) expect(r.code, r.stderr).to.equal(0);
  });
});
