// Filters, rules, coalescing and the rate limit on the real kernel, with a
// watch in this process: marks only on directories the test made, every
// opener a child with a time limit.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { EventPump } from '../../src/kernel/pump';
import { probeKernel } from '../../src/kernel/probe';
import { silentLogger } from '../../src/common/log';
import { openGroup, type GroupClass } from '../../src/kernel/group';
import { Watch, type OverflowNotice, type WatchEvent, type WatchOptions } from '../../src/watch/watch';
import type { MatchSpec, RuleSpec } from '../../src/watch/types';
import { objectSink, runChild, sh, tempDir } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

const OPTIONS: WatchOptions = { verdictTimeoutMs: 10_000, timeoutDecision: 'allow', maxBatchEvents: 256, queueCapacity: 4096 };
const match = (m: Partial<MatchSpec>): MatchSpec => ({ paths: [], exes: [], comms: [], uids: [], gids: [], events: 0, ...m });
const rule = (m: Partial<MatchSpec>, r: Partial<RuleSpec> = {}): RuleSpec => ({ match: match(m), decision: 'allow', report: false, cache: false, errno: 0, ...r });

/** FAN_DENY_ERRNO: Linux 6.13, and only in a pre-content group. */
function errnoSupport(): string | undefined {
  const [major, minor] = os.release().split('.').map(Number);
  if (major < 6 || (major === 6 && minor < 13)) return `kernel ${os.release()} predates FAN_DENY_ERRNO (6.13)`;
  if (!probeKernel().classes.pre_content) return 'the kernel refuses FAN_CLASS_PRE_CONTENT groups';
  return undefined;
}

describe('integration: filters and rules', function () {
  this.timeout(30_000);
  let pump: EventPump;
  let dir: string;
  const watches: Watch[] = [];

  beforeEach(() => {
    pump = new EventPump();
    dir = tempDir('fanotifyd-filters-');
    for (const f of ['a.key', 'b.txt', 'c.log']) fs.writeFileSync(path.join(dir, f), 'x\n');
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.close('disconnect');
    await pump.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A watch of dir's files; its client answers ALLOW to whatever needs a verdict. */
  function open(mask: number, options: Partial<WatchOptions>, groupClass: GroupClass = 'content') {
    const events: WatchEvent[] = [];
    const notices: OverflowNotice[] = [];
    const w = new Watch('t', { groupClass, marks: [{ path: dir, scope: 'inode', mask: mask | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { ...OPTIONS, ...options }, pump, silentLogger);
    watches.push(w);
    w.attach(
      objectSink(
        (batch) => {
          events.push(...batch);
          for (const e of batch) if (e.needsVerdict) w.verdict(e.id, 'allow');
          return true;
        },
        (n) => (notices.push({ ...n }), true),
      ),
    );
    return { w, events, notices };
  }
  const cat = async (file: string) => (await runChild('cat', [path.join(dir, file)], 10_000).done).code;

  it('allows filtered-out permission events at once and never delivers them', async () => {
    const { w, events } = open(K.FAN_OPEN_PERM, { selection: { include: [], exclude: [match({ paths: ['*.log'] })], rules: [] } });
    expect(await cat('c.log')).to.equal(0);
    expect(await cat('b.txt')).to.equal(0);
    const st = w.snapshot();
    expect([st.decisions.filter, st.filtered, st.decisions.client]).to.deep.equal([1, 1, 1]);
    expect(events.map((e) => path.basename(e.ev.path!.toString()))).to.deep.equal(['b.txt']);
  });

  it('denies by rule with an errno, without a round trip', async function () {
    const missing = errnoSupport();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    const { w, events } = open(K.FAN_OPEN_PERM, { selection: { include: [], exclude: [], rules: [rule({ paths: ['*.key'] }, { decision: 'deny', errno: 16 })] } }, 'pre_content');
    const r = await runChild('cat', [path.join(dir, 'a.key')], 10_000).done;
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Device or resource busy/);
    expect(events).to.have.length(0);
    expect([w.snapshot().decisions.rule, w.snapshot().responseFallbacks]).to.deep.equal([1, 0]);
  });

  it('denies by rule with EPERM by default, and the first matching rule wins', async () => {
    const { w } = open(K.FAN_OPEN_PERM, {
      selection: { include: [], exclude: [], rules: [rule({ paths: ['/nowhere/**'] }), rule({ paths: ['*.key'] }, { decision: 'deny' }), rule({})] },
    });
    const r = await runChild('cat', [path.join(dir, 'a.key')], 10_000).done;
    expect(r.stderr).to.match(/Operation not permitted/);
    expect(await cat('b.txt')).to.equal(0);
    expect(w.snapshot().decisions.rule).to.equal(2);
    expect([w.snapshot().allowed, w.snapshot().denied]).to.deep.equal([1, 1]);
  });

  it('caches a rule\'s ALLOW: the second open is not asked about, until the file is written', async () => {
    const { w } = open(K.FAN_OPEN_PERM, { selection: { include: [], exclude: [], rules: [rule({ paths: ['*.txt'] }, { cache: true })] } });
    const asked = () => w.snapshot().decisions.rule;
    expect(await cat('b.txt')).to.equal(0);
    expect(asked()).to.equal(1);
    // Had the kernel asked, cat would have waited for the answer: it exits after it.
    expect(await cat('b.txt')).to.equal(0);
    expect(asked()).to.equal(1);
    expect(w.snapshot().cachedVerdicts).to.equal(1);
    // The append's open is still covered; its write clears the ignore mark.
    expect((await sh(`echo more >> ${path.join(dir, 'b.txt')}`, 10_000).done).code).to.equal(0);
    expect(await cat('b.txt')).to.equal(0);
    expect(asked()).to.equal(2);
  });

  it('delivers a reported rule decision with the rule, needing no verdict', async () => {
    const decided: [number | undefined, string][] = [];
    const { events } = open(K.FAN_OPEN_PERM, {
      selection: { include: [], exclude: [], rules: [rule({ paths: ['*.txt'] }), rule({ paths: ['*.key'] }, { decision: 'deny', report: true })] },
      onDecision: (item, _allowed, by) => decided.push([item.ruleDecision?.index, by]),
    });
    const r = await runChild('cat', [path.join(dir, 'a.key')], 10_000).done;
    expect(r.code).to.not.equal(0);
    await waitFor(() => events.length === 1, 5000, 'the reported event');
    const e = events[0];
    expect([e.needsVerdict, e.ruleDecision, e.ev.path?.toString(), e.ev.process.comm]).to.deep.equal([false, { decision: 'deny', index: 1 }, path.join(dir, 'a.key'), 'cat']);
    expect(decided).to.deep.equal([[1, 'rule']]);
  });

  it('applies replaced rules to the next open while an earlier one still waits for its verdict', async () => {
    const events: WatchEvent[] = [];
    const w = new Watch('t', { groupClass: 'content', marks: [{ path: dir, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, OPTIONS, pump, silentLogger);
    watches.push(w);
    // This client answers nothing by itself.
    w.attach(objectSink((b) => (events.push(...b), true)));
    const first = runChild('cat', [path.join(dir, 'b.txt')], 10_000);
    await waitFor(() => events.length === 1, 5000, 'the first open');
    w.replaceSelection({ include: [], exclude: [], rules: [rule({ paths: ['*.key'] }, { decision: 'deny' })] });
    const second = await runChild('cat', [path.join(dir, 'a.key')], 10_000).done;
    expect(second.stderr).to.match(/Operation not permitted/);
    expect(w.snapshot().pending).to.equal(1);
    expect(w.verdict(events[0].id, 'allow')).to.equal(true);
    expect((await first.done).code).to.equal(0);
  });

  it('reads nothing from /proc with process details "pid"', async () => {
    const { events } = open(K.FAN_OPEN, { processDetails: 'pid' }, 'notif');
    expect(await cat('b.txt')).to.equal(0);
    await waitFor(() => events.length === 1, 5000, 'the open');
    expect([events[0].ev.process.details, events[0].ev.process.comm, events[0].ev.process.pid > 0]).to.deep.equal([false, '', true]);
  });

  it('coalesces repeated notifications within the window into one with their count', async () => {
    const { w, events } = open(K.FAN_OPEN, { coalesceMs: 2000 }, 'notif');
    // This process opens b.txt five times, each after the watch has read the
    // last one: the kernel merges an event only with one still in its queue.
    for (let i = 1; i <= 5; i++) {
      fs.closeSync(fs.openSync(path.join(dir, 'b.txt'), 'r'));
      await waitFor(() => w.snapshot().eventsRead === i, 5000, `open ${i} read`);
    }
    expect(events).to.have.length(0);
    await waitFor(() => events.length > 0, 5000, 'the coalesced event');
    expect(events.map((e) => [e.ev.path?.toString(), e.ev.pid, e.count])).to.deep.equal([[path.join(dir, 'b.txt'), process.pid, 5]]);
    expect(w.snapshot().coalesced).to.equal(4);
    // A new window for the next one.
    fs.closeSync(fs.openSync(path.join(dir, 'b.txt'), 'r'));
    await waitFor(() => events.length === 2, 5000, 'the next window\'s event');
    expect(events[1].count).to.equal(undefined);
  });

  it('drops notifications past the rate limit, counting them and saying so as an Overflow', async () => {
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(dir, `n${i}`), '');
    const { w, events, notices } = open(K.FAN_OPEN, { maxEventsPerSecond: 5 }, 'notif');
    // Distinct files: the kernel does not merge them.
    expect((await sh(`for f in ${dir}/n*; do : < $f; done`, 10_000).done).code).to.equal(0);
    await waitFor(() => w.snapshot().eventsRead === 50, 5000, '50 events read');
    await waitFor(() => w.snapshot().queued === 0, 5000, 'the queue drained');
    const st = w.snapshot();
    expect(st.droppedRateLimit).to.be.above(0);
    expect(events.length + st.droppedRateLimit).to.equal(50);
    expect(notices.every((n) => n.source === 'rate_limit')).to.equal(true);
    expect(notices.reduce((n, x) => n + x.dropped, 0)).to.equal(st.droppedRateLimit);
    expect(notices[notices.length - 1].total).to.equal(st.droppedRateLimit);
  });

  describe('event types the filters leave out stay out of the kernel marks', () => {
    const touch = async (file: string) => (await runChild('sh', ['-c', `cat ${path.join(dir, file)} >/dev/null; echo x >> ${path.join(dir, file)}`], 10_000).done).code;
    const notif = () => open(K.FAN_OPEN | K.FAN_CLOSE_WRITE, { selection: { include: [], exclude: [match({ events: K.FAN_OPEN })], rules: [] } }, 'notif');

    it('never reads an excluded type: the kernel does not report it', async () => {
      const { w, events } = notif();
      expect(await touch('b.txt')).to.equal(0);
      await waitFor(() => events.length >= 1, 5000, 'the CLOSE_WRITE');
      expect(await touch('c.log')).to.equal(0);
      await waitFor(() => events.length >= 2, 5000, 'the second CLOSE_WRITE');
      // With the type in the mark, each touch was 2 events read and 1 filtered.
      expect(w.snapshot()).to.deep.include({ eventsRead: 2, filtered: 0 });
      expect(events.every((e) => e.ev.mask === K.FAN_CLOSE_WRITE)).to.equal(true);
    });

    it('re-marks on replaceSelection: a type let back in is reported again, one left out stops', async () => {
      const { w, events } = notif();
      w.replaceSelection({ include: [], exclude: [], rules: [] });
      expect(await touch('b.txt')).to.equal(0);
      await waitFor(() => events.some((e) => e.ev.mask & K.FAN_CLOSE_WRITE), 5000, 'OPEN and CLOSE_WRITE');
      // (The kernel may merge the append's OPEN and CLOSE_WRITE into one event.)
      expect(events.reduce((m, e) => m | e.ev.mask, 0) & (K.FAN_OPEN | K.FAN_CLOSE_WRITE)).to.equal(K.FAN_OPEN | K.FAN_CLOSE_WRITE);
      w.replaceSelection({ include: [match({ events: K.FAN_OPEN })], exclude: [], rules: [] });
      const [read, seen] = [w.snapshot().eventsRead, events.length];
      // One open each, no write: a CLOSE_WRITE would be read if the kernel still reported it.
      expect(await touch('c.log')).to.equal(0);
      await waitFor(() => events.length >= seen + 1, 5000, 'the OPEN');
      expect(await touch('a.key')).to.equal(0);
      await waitFor(() => events.length >= seen + 2, 5000, 'the second OPEN');
      const after = events.slice(seen);
      expect(after.every((e) => (e.ev.mask & K.FAN_CLOSE_WRITE) === 0), JSON.stringify(after.map((e) => e.ev.mask))).to.equal(true);
      expect(w.snapshot().filtered).to.equal(0);
      expect(w.snapshot().eventsRead - read).to.equal(after.length);
    });

    it('narrows the marks of a group taken over from an earlier process to its filters', async () => {
      const spec = { groupClass: 'notif' as const, marks: [{ path: dir, scope: 'inode' as const, mask: K.FAN_OPEN | K.FAN_CLOSE_WRITE | K.FAN_EVENT_ON_CHILD, flags: 0 }] };
      // As a daemon that did not narrow them left them: every type asked for in the kernel.
      const { fd } = openGroup(spec, { reportPidfd: true, evictable: true });
      const events: WatchEvent[] = [];
      const w = new Watch('t', spec, { reportPidfd: true, evictable: true }, { ...OPTIONS, adoptFd: fd, selection: { include: [], exclude: [match({ events: K.FAN_OPEN })], rules: [] } }, pump, silentLogger);
      watches.push(w);
      w.attach(objectSink((batch) => (events.push(...batch), true)));
      expect(await touch('b.txt')).to.equal(0);
      await waitFor(() => events.length >= 1, 5000, 'the CLOSE_WRITE');
      expect(w.snapshot()).to.deep.include({ eventsRead: 1, filtered: 0 });
    });

    it('allows a permission type left out without reading it, and removes and re-adds marks as asked', async () => {
      const { w, events } = open(K.FAN_OPEN_PERM, { selection: { include: [], exclude: [match({ events: K.FAN_OPEN_PERM })], rules: [] } });
      expect(await cat('a.key')).to.equal(0);
      expect(w.snapshot()).to.deep.include({ eventsRead: 0 });
      // A mark added on the live watch is narrowed as well, and still checked by the kernel.
      const sub = path.join(dir, 'sub');
      fs.mkdirSync(sub);
      fs.writeFileSync(path.join(sub, 'f'), '');
      await w.addMark({ path: sub, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 });
      let refused: unknown;
      await w.addMark({ path: path.join(dir, 'missing'), scope: 'inode', mask: K.FAN_OPEN_PERM, flags: 0 }).catch((e) => (refused = e));
      expect(String(refused)).to.match(/ENOENT/);
      expect((await runChild('cat', [path.join(sub, 'f')], 10_000).done).code).to.equal(0);
      expect(w.snapshot().eventsRead).to.equal(0);
      w.replaceSelection({ include: [], exclude: [], rules: [] });
      expect((await runChild('cat', [path.join(sub, 'f')], 10_000).done).code).to.equal(0);
      await waitFor(() => events.length >= 1, 5000, 'the OPEN_PERM under sub');
      w.removeMark({ path: sub, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 });
      expect(await cat('a.key')).to.equal(0);
      await waitFor(() => events.length >= 2, 5000, 'the OPEN_PERM of a.key');
      expect((await runChild('cat', [path.join(sub, 'f')], 10_000).done).code).to.equal(0);
      expect(await cat('b.txt')).to.equal(0);
      await waitFor(() => events.length >= 3, 5000, 'the OPEN_PERM of b.txt');
      expect(events.map((e) => path.basename(e.ev.path!.toString()))).to.deep.equal(['f', 'a.key', 'b.txt']);
    });
  });
});
