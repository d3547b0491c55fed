// The read path with filters and rules, on records built as the kernel
// lays them out: which events are left out (and allowed at once), which a
// rule answers (and how), what is delivered, and what is read about each
// process. No fanotify and no root: the events' fds are files of a temp
// dir, and the "group" a file the responses are written to.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { silentLogger } from '../../src/common/log';
import { RateLimitedLog } from '../../src/common/rate-limited-log';
import { unknownProcess, type ProcessInfo, type ProcessReadLevel } from '../../src/host/process';
import { ProcessCache } from '../../src/host/process-cache';
import { Outbox } from '../../src/watch/outbox';
import { Sequence } from '../../src/watch/sequence';
import { PendingLedger } from '../../src/watch/pending';
import { EventReader } from '../../src/watch/reader';
import { ReleasedFds } from '../../src/watch/released-fds';
import { Responder } from '../../src/watch/responder';
import { Selection } from '../../src/watch/selection';
import type { DecidedBy, MatchSpec, OverflowNotice, ProcessDetails, RuleSpec, SelectionSpec, WatchEvent } from '../../src/watch/types';
import { emptyStats } from '../../src/watch/watch';
import { FakeClock, FakeTimers } from '../fixtures/fake-clock';
import { objectSink, tempDir } from '../fixtures/harness';
import { metadata } from '../fixtures/records';

const match = (m: Partial<MatchSpec>): MatchSpec => ({ paths: [], exes: [], comms: [], uids: [], gids: [], events: 0, ...m });
const rule = (m: Partial<MatchSpec>, r: Partial<RuleSpec> = {}): RuleSpec => ({ match: match(m), decision: 'allow', report: false, cache: false, errno: 0, ...r });

/** A /proc of processes 100-199 (uid = pid), counting reads by level. */
function fakeProc() {
  const reads: ProcessReadLevel[] = [];
  return {
    reads,
    source: {
      startTime: (pid: number) => (pid >= 100 && pid < 200 ? 555 : undefined),
      pidfdInode: () => undefined,
      read: (pid: number, _pidfd: number | undefined, level: ProcessReadLevel): ProcessInfo => {
        reads.push(level);
        return { ...unknownProcess(pid), uid: pid, gid: 7, comm: 'tool', exe: '/usr/bin/tool', cmdline: level === 'full' ? ['tool', '--x'] : [], startTime: 555, details: true };
      },
    },
  };
}

interface RigOptions {
  selection?: Partial<SelectionSpec>;
  details?: ProcessDetails;
  maxEventsPerSecond?: number;
  /** An audit that reads decisions: rule-decided events are then described in full. */
  reportsDecisions?: boolean;
}

function rig(dir: string, opts: RigOptions = {}) {
  const clock = new FakeClock(1000);
  const stats = emptyStats();
  const log = new RateLimitedLog(silentLogger, clock);
  const responsesFile = path.join(dir, '.responses');
  const groupFd = fs.openSync(responsesFile, 'w');
  const proc = fakeProc();
  const details = opts.details ?? 'full';
  const decisions: { item: WatchEvent; allowed: boolean; by: DecidedBy }[] = [];
  const responder = new Responder(groupFd, stats, log, clock, (item, allowed, by) => decisions.push({ item, allowed, by }));
  const pending = new PendingLedger<WatchEvent>(60_000, () => undefined, clock, new FakeTimers());
  const outbox = new Outbox({ maxBatchEvents: 100, queueCapacity: 100, maxEventsPerSecond: opts.maxEventsPerSecond }, stats, new Sequence());
  const delivered: WatchEvent[] = [];
  const notices: OverflowNotice[] = [];
  outbox.attach(objectSink((b) => (delivered.push(...b), true), (n) => (notices.push({ ...n }), true)));
  const cached: { fd: number; fdOpen: boolean }[] = [];
  const reader = new EventReader({
    groupFd,
    notifyOnly: false,
    reportTid: false,
    maxPending: 100,
    timeoutResponse: K.FAN_ALLOW,
    clock,
    stats,
    log,
    procs: new ProcessCache(clock, proc.source, details === 'full' ? 'full' : 'basic'),
    pending,
    outbox,
    responder,
    fds: new ReleasedFds(),
    details,
    selection: new Selection({ include: [], exclude: [], rules: [], ...opts.selection }),
    cacheVerdict: (item) => cached.push({ fd: item.ev.fd, fdOpen: isOpen(item.ev.fd) }),
    reportsDecisions: opts.reportsDecisions ?? false,
  });
  const fds: number[] = [];
  /** One read of events on files of dir, each {file, mask, pid}; returns their event fds. */
  const read = (events: { file: string; mask: number; pid?: number }[]) => {
    const made = events.map((e) => fs.openSync(path.join(dir, e.file), 'r'));
    fds.push(...made);
    const buf = Buffer.concat(events.map((e, i) => metadata({ mask: e.mask, fd: made[i], pid: e.pid ?? 150 })));
    reader.read(buf, buf.length);
    outbox.flush();
    return made;
  };
  /** The responses written so far, as [event fd, response word]. */
  const responses = () => {
    const b = fs.readFileSync(responsesFile);
    const out: [number, number][] = [];
    for (let o = 0; o + 8 <= b.length; o += 8) out.push([b.readInt32LE(o), b.readUInt32LE(o + 4)]);
    return out;
  };
  const close = () => {
    for (const [, item] of pending.takeAll()) responder.answer(item, K.FAN_ALLOW, 'disconnect');
    fs.closeSync(groupFd);
    for (const fd of fds) if (isOpen(fd)) fs.closeSync(fd);
  };
  return { stats, reader, read, responses, delivered, notices, decisions, cached, pending, proc, close };
}

function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

describe('unit: the read path with filters and rules', () => {
  let dir: string;
  let r: ReturnType<typeof rig> | undefined;
  const setup = (opts: RigOptions = {}) => (r = rig(dir, opts));
  beforeEach(() => {
    dir = tempDir('fanotifyd-selection-');
    for (const f of ['a.key', 'b.txt', 'c.log']) fs.writeFileSync(path.join(dir, f), 'x');
  });
  afterEach(() => {
    r?.close();
    r = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('allows a filtered-out permission event at once, never delivers it, and counts it', () => {
    const t = setup({ selection: { exclude: [match({ paths: ['*.log'] })] } });
    const [fd] = t.read([{ file: 'c.log', mask: K.FAN_OPEN_PERM }]);
    expect(t.responses()).to.deep.equal([[fd, K.FAN_ALLOW]]);
    expect(isOpen(fd)).to.equal(false);
    expect(t.delivered).to.have.length(0);
    expect(t.pending.size).to.equal(0);
    expect([t.stats.filtered, t.stats.decisions.filter, t.stats.allowed]).to.deep.equal([1, 1, 1]);
    // A path-only filter never reads /proc for what it leaves out.
    expect(t.proc.reads).to.deep.equal([]);
  });

  it('drops a notification the include does not match, counting it, and delivers the rest', () => {
    const t = setup({ selection: { include: [match({ paths: ['*.key'] })] } });
    t.read([
      { file: 'b.txt', mask: K.FAN_OPEN },
      { file: 'a.key', mask: K.FAN_OPEN },
    ]);
    expect(t.delivered.map((e) => path.basename(e.ev.path!.toString()))).to.deep.equal(['a.key']);
    expect(t.stats.filtered).to.equal(1);
  });

  it('denies by rule with its errno, at once, without delivering, and says which rule decided', () => {
    const t = setup({ selection: { rules: [rule({ paths: ['*.txt'] }), rule({ paths: ['*.key'] }, { decision: 'deny', errno: 16 })] } });
    const [fd] = t.read([{ file: 'a.key', mask: K.FAN_OPEN_PERM }]);
    expect(t.responses()).to.deep.equal([[fd, (K.FAN_DENY | (16 << 24)) >>> 0]]);
    expect(isOpen(fd)).to.equal(false);
    expect(t.delivered).to.have.length(0);
    expect(t.stats.decisions.rule).to.equal(1);
    expect(t.decisions.map((d) => [d.by, d.allowed, d.item.ruleDecision])).to.deep.equal([['rule', false, { decision: 'deny', index: 1 }]]);
  });

  it('allows by rule with cache: the ignore mark is placed while the event fd is still open', () => {
    const t = setup({ selection: { rules: [rule({ events: K.FAN_OPEN_PERM }, { cache: true })] } });
    const [fd] = t.read([{ file: 'b.txt', mask: K.FAN_OPEN_PERM }]);
    expect(t.cached).to.deep.equal([{ fd, fdOpen: true }]);
    expect(t.responses()).to.deep.equal([[fd, K.FAN_ALLOW]]);
  });

  it('reads nothing of the process nor the path for a rule on event types alone, unless the decision is reported', () => {
    const t = setup({ selection: { rules: [rule({ events: K.FAN_OPEN_PERM })] } });
    t.read([{ file: 'b.txt', mask: K.FAN_OPEN_PERM }]);
    expect(t.proc.reads).to.deep.equal([]);
    expect(t.decisions[0].item.ev.path).to.equal(undefined);
    const audited = rig(dir, { selection: { rules: [rule({ events: K.FAN_OPEN_PERM })] }, reportsDecisions: true });
    try {
      audited.read([{ file: 'b.txt', mask: K.FAN_OPEN_PERM }]);
      expect(audited.decisions[0].item.ev.path?.toString()).to.equal(path.join(dir, 'b.txt'));
      expect(audited.decisions[0].item.ev.process.comm).to.equal('tool');
    } finally {
      audited.close();
    }
  });

  it('delivers a reported rule decision as needing no verdict, with the rule', () => {
    const t = setup({ selection: { rules: [rule({ uids: [150] }, { decision: 'deny', report: true })] } });
    const [fd] = t.read([{ file: 'a.key', mask: K.FAN_OPEN_PERM, pid: 150 }]);
    expect(t.responses()).to.deep.equal([[fd, K.FAN_DENY]]);
    expect(t.delivered).to.have.length(1);
    const e = t.delivered[0];
    expect([e.needsVerdict, e.ruleDecision, e.ev.path?.toString(), e.ev.process.uid]).to.deep.equal([false, { decision: 'deny', index: 0 }, path.join(dir, 'a.key'), 150]);
  });

  it('sends an event no rule matches to the client, awaiting its verdict', () => {
    const t = setup({ selection: { rules: [rule({ uids: [0] }, { decision: 'deny' })] } });
    t.read([{ file: 'a.key', mask: K.FAN_OPEN_PERM, pid: 150 }]);
    expect(t.responses()).to.deep.equal([]);
    expect(t.delivered.map((e) => [e.needsVerdict, e.ruleDecision])).to.deep.equal([[true, undefined]]);
    expect(t.pending.size).to.equal(1);
  });

  it('applies replaced filters and rules to events read after, and leaves pending ones waiting', () => {
    const t = setup();
    t.read([{ file: 'a.key', mask: K.FAN_OPEN_PERM }]);
    expect(t.pending.size).to.equal(1);
    t.reader.selection = new Selection({ include: [], exclude: [match({ paths: ['*.log'] })], rules: [rule({ paths: ['*.key'] }, { decision: 'deny' })] });
    const [second, third] = t.read([
      { file: 'a.key', mask: K.FAN_OPEN_PERM },
      { file: 'c.log', mask: K.FAN_OPEN_PERM },
    ]);
    expect(t.responses()).to.deep.equal([
      [second, K.FAN_DENY],
      [third, K.FAN_ALLOW],
    ]);
    expect(t.pending.size).to.equal(1);
    expect(t.delivered).to.have.length(1);
  });

  describe('process details', () => {
    const notification = [{ file: 'b.txt', mask: K.FAN_OPEN, pid: 150 }];

    it('full: the command line too', () => {
      const t = setup({ details: 'full' });
      t.read(notification);
      expect(t.proc.reads).to.deep.equal(['full']);
      expect(t.delivered[0].ev.process.cmdline).to.deep.equal(['tool', '--x']);
    });

    it('basic: all but the command line', () => {
      const t = setup({ details: 'basic' });
      t.read(notification);
      expect(t.proc.reads).to.deep.equal(['basic']);
      expect([t.delivered[0].ev.process.comm, t.delivered[0].ev.process.cmdline]).to.deep.equal(['tool', []]);
    });

    it('pid: nothing read from /proc, one description shared by a process\'s events', () => {
      const t = setup({ details: 'pid' });
      t.read([...notification, ...notification]);
      expect(t.proc.reads).to.deep.equal([]);
      expect(t.delivered[0].ev.process).to.deep.equal(unknownProcess(150));
      expect(t.delivered[1].ev.process).to.equal(t.delivered[0].ev.process);
      expect(t.delivered[0].ev.path?.toString()).to.equal(path.join(dir, 'b.txt'));
    });

    it('pid with a filter on the process: read (without the command line) to decide, but the pid alone sent', () => {
      const t = setup({ details: 'pid', selection: { include: [match({ uids: [150] })] } });
      t.read([...notification, { file: 'b.txt', mask: K.FAN_OPEN, pid: 151 }]);
      expect(t.proc.reads).to.deep.equal(['basic', 'basic']);
      expect(t.delivered.map((e) => e.ev.process)).to.deep.equal([unknownProcess(150)]);
    });
  });

  it('drops notifications past the rate limit before describing them, and says so in stream order', () => {
    const t = setup({ maxEventsPerSecond: 2 });
    t.read([101, 102, 103, 104].map((pid) => ({ file: 'b.txt', mask: K.FAN_OPEN, pid })));
    expect(t.delivered.map((e) => e.ev.pid)).to.deep.equal([101, 102]);
    expect(t.notices).to.deep.equal([{ source: 'rate_limit', dropped: 2, total: 2, seq: 3 }]);
    expect(t.stats.droppedRateLimit).to.equal(2);
    expect(t.proc.reads).to.have.length(2);
  });
});
