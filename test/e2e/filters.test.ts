// Filters at the source and rules the daemon answers itself, against the
// daemon as a child: include and exclude on every Match field, process
// details, coalescing, the rate limit, rule decisions (report, cache,
// errno, first match wins), ReplaceRules with openers blocked, GetStats,
// and rule decisions in the audit file and the metrics.
//
// Filters and rules are tried on permission events wherever a process's
// details matter: the opener waits in open() while the daemon reads the
// event, so /proc still describes it (a notification may be read after a
// short-lived opener is gone). Every permission mark is on a directory
// this test made; every opener is a child with a time limit. A watch whose
// filters or rules should answer an event gets a long verdict timeout with
// DENY, so an event wrongly left to the client fails its opener.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { connect, getInfo, runChild, startDaemon, tempDir, WatchStream, withDaemon, type Client, type Daemon } from '../fixtures/harness';
import { scrape, metricsAddress } from '../fixtures/metrics';
import { waitingForVerdict, waitFor } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */
let statsRequests = 0;
/** The answer to a GetStats sent now (each with an id of its own, so an earlier answer is never taken for it). */
async function getStats(s: WatchStream): Promise<any> {
  const id = ++statsRequests;
  s.call.write({ get_stats: { request_id: id } });
  return s.until(() => s.responses.find((r) => r.stats?.request_id === String(id))?.stats, 5000, `WatchStats ${id}`);
}

/** The MarkResult answering a ReplaceRules sent now. */
async function replaceRules(s: WatchStream, id: number, msg: object): Promise<any> {
  s.call.write({ replace_rules: { request_id: id, ...msg } });
  return s.until(() => s.responses.find((r) => r.mark_result?.request_id === String(id))?.mark_result, 5000, `MarkResult ${id}`);
}

/**
 * A shell script in its own process group, all of which is killed at the
 * time limit: an opener blocked in the kernel is then killed with its
 * shell rather than left holding the pipes the result waits on.
 */
function shellInGroup(script: string, cwd: string, limitMs: number): Promise<ShellResult>;
/** The same, fed on stdin: send(null) closes it. */
function shellInGroup(script: string, cwd: string, limitMs: number, fed: true): { send(text: string | null): void; done: Promise<ShellResult> };
function shellInGroup(script: string, cwd: string, limitMs: number, fed?: true): Promise<ShellResult> | { send(text: string | null): void; done: Promise<ShellResult> } {
  const child = spawn('/bin/sh', ['-c', script], { cwd, detached: true, stdio: [fed ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), limitMs);
  const done = new Promise<ShellResult>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  if (!fed) return done;
  return {
    send(text: string | null) {
      if (text === null) child.stdin!.end();
      else child.stdin!.write(text);
    },
    done,
  };
}

interface ShellResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const base = (p: string) => path.basename(p);
const exe = (cmd: string) => fs.realpathSync(`/usr/bin/${cmd}`);

describe('e2e: filters and rules', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let client: Client;
  let dir: string;
  const streams: WatchStream[] = [];

  /** A permission watch of dir's files: the client allows what reaches it unless onEvent is replaced. */
  const guard = (extra: object, group_class = 'GROUP_CLASS_CONTENT') => {
    const s = new WatchStream(client, {
      group_class,
      verdict_timeout_ms: 60_000,
      timeout_decision: 'DECISION_DENY',
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
      ...extra,
    });
    s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_ALLOW');
    streams.push(s);
    return s;
  };
  const notifications = (extra: object) => {
    const s = new WatchStream(client, { marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }], ...extra });
    streams.push(s);
    return s;
  };
  const files = (...names: string[]) => {
    for (const n of names) fs.writeFileSync(path.join(dir, n), 'x\n');
  };
  /** Run a shell script in dir; its openers are killed with it at the time limit (a process group of their own). */
  const run = (script: string, limitMs = 15_000) => shellInGroup(script, dir, limitMs);

  before(async () => {
    daemon = await startDaemon([]);
    client = connect(daemon.address);
  });
  after(async () => {
    client?.close();
    expect(await daemon?.stop()).to.equal(0);
  });
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('include and exclude', () => {
    it('delivers only what include lets through and exclude keeps out, and allows the rest at once', async () => {
      files('a.txt', 'b.log', 'skip.txt', 'c.txt');
      const s = guard({ include: [{ paths: ['*.txt'] }], exclude: [{ paths: [`${dir}/skip.*`] }] });
      await s.subscribed();
      const r = await run('cat a.txt b.log skip.txt c.txt');
      expect(r.code, r.stderr).to.equal(0);
      expect(s.events.map((e) => base(e.path))).to.deep.equal(['a.txt', 'c.txt']);
      const st = await getStats(s);
      expect(st).to.deep.include({ read: '4', delivered: '2', filtered: '2', decided_by_client: '2', decided_by_daemon: '2', pending: '0' });
    });

    it('matches comm, exe, uid, gid and event types, every set field of a Match together', async () => {
      files('f.a', 'f.b', 'f.skip');
      const s = guard(
        {
          marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_ACCESS_PERM'] }],
          include: [
            { comms: ['he?d'], events: ['EVENT_TYPE_OPEN_PERM'] },
            { exes: [exe('cat')], paths: ['*.b'], events: ['EVENT_TYPE_OPEN_PERM'] },
            { uids: [0], comms: ['dd'], events: ['EVENT_TYPE_OPEN_PERM'] },
            { uids: [4242] },
          ],
          exclude: [{ gids: [0], paths: ['*.skip'] }],
        },
      );
      await s.subscribed();
      const r = await run('cat f.a; cat f.b; head -c1 f.a; dd if=f.a of=/dev/null status=none; head -c1 f.skip; tail -c1 f.a');
      expect(r.code, r.stderr).to.equal(0);
      expect(s.events.map((e) => [e.process.comm, base(e.path), e.types])).to.deep.equal([
        ['cat', 'f.b', ['EVENT_TYPE_OPEN_PERM']],
        ['head', 'f.a', ['EVENT_TYPE_OPEN_PERM']],
        ['dd', 'f.a', ['EVENT_TYPE_OPEN_PERM']],
      ]);
    });

    it('filters notifications too, and counts what it left out', async () => {
      files('keep', 'drop');
      const s = notifications({ exclude: [{ paths: ['drop'] }] });
      await s.subscribed();
      // One process per open: the kernel merges equal notifications of one process still in its queue.
      await run('cat drop; cat keep; cat drop; cat keep');
      await s.until(() => s.events.length >= 2, 10_000, 'the two opens of keep');
      expect(s.events.map((e) => base(e.path))).to.deep.equal(['keep', 'keep']);
      const st = await getStats(s);
      expect(st).to.deep.include({ read: '4', delivered: '2', filtered: '2' });
    });
  });

  describe('process details', () => {
    for (const [details, check] of [
      ['PROCESS_DETAILS_FULL', (p: any) => expect([p.details, p.comm, p.cmdline]).to.deep.equal([true, 'cat', ['cat', path.join(dir, 'f')]])],
      ['PROCESS_DETAILS_BASIC', (p: any) => expect([p.details, p.comm, p.cmdline, p.exe]).to.deep.equal([true, 'cat', [], exe('cat')])],
      ['PROCESS_DETAILS_PID', (p: any) => expect([p.details, p.comm, p.exe, p.cmdline]).to.deep.equal([false, '', '', []])],
    ] as const) {
      it(`reads ${details.slice('PROCESS_DETAILS_'.length).toLowerCase()} details of the process`, async () => {
        files('f');
        const s = guard({ process_details: details });
        await s.subscribed();
        const r = runChild('cat', [path.join(dir, 'f')]);
        const ev = await s.until(() => s.events[0], 10_000, 'the open');
        expect((await r.done).code).to.equal(0);
        expect(ev.process.pid).to.equal(r.pid);
        check(ev.process);
      });
    }
  });

  it('filters on the process with PROCESS_DETAILS_PID and still sends only the pid', async () => {
    files('f');
    const s = guard({ process_details: 'PROCESS_DETAILS_PID', include: [{ comms: ['head'] }] });
    await s.subscribed();
    const r = await run('cat f; head -c1 f');
    expect(r.code, r.stderr).to.equal(0);
    expect(s.events).to.have.length(1);
    expect(s.events[0].process).to.deep.include({ details: false, comm: '', exe: '' });
    expect(s.events[0].process.pid).to.be.above(0);
  });

  describe('coalescing and the rate limit', () => {
    it('sends repeats of one open within coalesce_ms as one event with their count', async () => {
      files('f');
      // A window far longer than five opens and their reads take, so they fall in one.
      const s = notifications({ coalesce_ms: 3000 });
      await s.subscribed();
      // One process opens f five times, each once the daemon has read the
      // one before: the kernel itself merges equal events still in its queue.
      const opener = shellInGroup('while read -r _; do : < f; done', dir, 30_000, true);
      for (let i = 1; i <= 5; i++) {
        opener.send('\n');
        await waitFor(async () => Number((await getStats(s)).read) >= i, 5000, `the daemon to read open ${i}`);
      }
      opener.send(null);
      await opener.done;
      const ev = await s.until(() => s.events[0], 20_000, 'the coalesced event');
      expect([base(ev.path), ev.count]).to.deep.equal(['f', 5]);
      const st = await getStats(s);
      expect(st).to.deep.include({ read: '5', coalesced: '4', delivered: '1' });
      expect(s.events).to.have.length(1);
    });

    it('drops notifications past max_events_per_second and reports them as a rate-limit Overflow', async () => {
      files('f');
      const s = notifications({ max_events_per_second: 10 });
      await s.subscribed();
      // One process per open: the kernel merges equal notifications of one process still in its queue.
      await run('for i in $(seq 1 100); do cat f; done', 30_000);
      const st = await waitFor(async () => {
        const x = await getStats(s);
        return Number(x.delivered) + Number(x.dropped_rate_limit) === 100 && x;
      }, 10_000, 'all 100 opens delivered or dropped', 50);
      expect(Number(st.dropped_rate_limit)).to.be.above(0);
      // Every drop is told to the client, the last ones too, though no event follows them.
      const overflows = () => s.responses.filter((m) => m.overflow).map((m) => m.overflow);
      const told = () => overflows().reduce((n, o) => n + Number(o.dropped), 0);
      await s.until(() => told() >= Number(st.dropped_rate_limit), 5000, `Overflows for ${st.dropped_rate_limit} drops`);
      expect(told()).to.equal(Number(st.dropped_rate_limit));
      for (const o of overflows()) expect(o.source).to.equal('OVERFLOW_SOURCE_RATE_LIMIT');
      await s.until(() => s.events.length >= Number(st.delivered), 5000, `${st.delivered} events`);
      expect(s.events.length).to.equal(Number(st.delivered));
    });
  });

  describe('rules', () => {
    it('denies by rule without asking the client, and leaves what no rule matches to the client', async () => {
      files('x.key', 'ok.txt');
      const s = guard({ rules: [{ match: { paths: ['*.key'] }, decision: 'DECISION_DENY' }] });
      await s.subscribed();
      const denied = await run('cat x.key', 10_000);
      expect(denied.stderr).to.match(/Operation not permitted/);
      const allowed = await run('cat ok.txt');
      expect(allowed.code).to.equal(0);
      expect(s.events.map((e) => base(e.path))).to.deep.equal(['ok.txt']);
      expect(await getStats(s)).to.deep.include({ decided_by_rule: '1', decided_by_client: '1', delivered: '1' });
    });

    it('reports a rule\'s decision with Event.decision and Event.rule, and the first matching rule wins', async () => {
      files('a.key', 'b.key', 'c.txt');
      const s = guard({
        rules: [
          { match: { paths: ['a.key'] }, decision: 'DECISION_ALLOW', report: true },
          { match: { paths: ['*.key'] }, decision: 'DECISION_DENY', report: true },
          { match: { paths: ['*.key', '*.txt'] }, decision: 'DECISION_ALLOW', report: true },
        ],
      });
      s.onEvent = () => undefined;
      await s.subscribed();
      expect((await run('cat a.key', 10_000)).code).to.equal(0);
      expect((await run('cat b.key', 10_000)).stderr).to.match(/Operation not permitted/);
      expect((await run('cat c.txt', 10_000)).code).to.equal(0);
      await s.until(() => s.events.length >= 3, 5000, 'three reported events');
      expect(s.events.map((e) => [base(e.path), e.needs_verdict, e.decision, e.rule])).to.deep.equal([
        ['a.key', false, 'DECISION_ALLOW', 0],
        ['b.key', false, 'DECISION_DENY', 1],
        ['c.txt', false, 'DECISION_ALLOW', 2],
      ]);
      for (const e of s.events) expect(e.process.comm).to.equal('cat');
    });

    it('fails a denied open with the rule\'s errno in a PRE_CONTENT watch', async function () {
      const info = await getInfo(client);
      if (!info.group_classes.includes('GROUP_CLASS_PRE_CONTENT')) {
        console.log(`      skipped: this kernel (${info.kernel_release}) has no GROUP_CLASS_PRE_CONTENT, which FAN_DENY_ERRNO needs`);
        this.skip();
      }
      files('x.key');
      const s = guard({ rules: [{ match: { paths: ['*.key'] }, decision: 'DECISION_DENY', errno: 5 }] }, 'GROUP_CLASS_PRE_CONTENT');
      await s.subscribed();
      expect((await run('cat x.key', 10_000)).stderr).to.match(/Input\/output error/);
    });

    it('caches a rule\'s ALLOW in the kernel: the next open is not asked about until the file is written', async () => {
      files('f.txt');
      const s = guard({ rules: [{ match: { paths: ['*.txt'] }, decision: 'DECISION_ALLOW', cache: true }] });
      await s.subscribed();
      expect((await run('cat f.txt', 10_000)).code).to.equal(0);
      expect((await getStats(s)).read).to.equal('1');
      expect((await run('cat f.txt', 10_000)).code).to.equal(0);
      expect((await getStats(s)).read, 'the second open was asked about').to.equal('1');
      // A write clears the kernel's ignore mark, so the open after it is asked about again.
      expect((await run('echo y >> f.txt; cat f.txt', 10_000)).code).to.equal(0);
      expect(Number((await getStats(s)).read)).to.be.above(1);
      expect(s.events).to.have.length(0);
    });

    it('refuses bad rules in Subscribe with the field path', async () => {
      const s = guard({ rules: [{ decision: 'DECISION_ALLOW' }, { decision: 'DECISION_DENY', cache: true }] });
      const st = await s.ended();
      expect(st.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(st.details).to.equal('Subscribe.rules[1].cache applies to DECISION_ALLOW only: the kernel allows what it ignores');
      const n = notifications({ include: [{ paths: ['etc/passwd'] }] });
      const nst = await n.ended();
      expect(nst.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(nst.details).to.match(/^Subscribe\.include\[0\]\.paths\[0\]: "etc\/passwd" has a "\/" but is not absolute/);
    });
  });

  describe('ReplaceRules', () => {
    it('swaps the rules while an opener is blocked, and the blocked open keeps its fate', async () => {
      files('first', 'second', 'third');
      const s = guard({});
      s.onEvent = () => undefined;
      await s.subscribed();
      const first = runChild('cat', [path.join(dir, 'first')], 20_000);
      const ev = await s.until(() => s.events.find((e) => base(e.path) === 'first'), 10_000, 'the first open');
      await waitFor(() => waitingForVerdict(first.pid), 5000, 'the first opener blocked in the kernel');
      const result = await replaceRules(s, 1, { rules: [{ decision: 'DECISION_ALLOW' }], exclude: [{ paths: ['third'] }] });
      expect(result).to.deep.include({ code: 0, message: '' });
      // New events meet the new rules at once: no client round trip.
      expect((await run('cat second', 10_000)).code).to.equal(0);
      expect((await run('cat third', 10_000)).code).to.equal(0);
      expect(waitingForVerdict(first.pid), 'the first open was decided by the new rules').to.equal(true);
      s.verdict(ev.id, 'DECISION_DENY');
      const r = await first.done;
      expect(r.stderr).to.match(/Operation not permitted/);
      expect(s.events.map((e) => base(e.path))).to.deep.equal(['first']);
      expect(await getStats(s)).to.deep.include({ decided_by_client: '1', decided_by_rule: '1', filtered: '1', decided_by_daemon: '1' });
    });

    it('answers a refused ReplaceRules with a failed MarkResult and keeps the watch and its rules', async () => {
      files('x.key');
      const s = guard({ rules: [{ match: { paths: ['*.key'] }, decision: 'DECISION_DENY' }] });
      await s.subscribed();
      const bad = await replaceRules(s, 7, { rules: [{ decision: 'DECISION_UNSPECIFIED' }] });
      expect(bad.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(bad.message).to.equal('ReplaceRules.rules[0].decision: DECISION_UNSPECIFIED is not DECISION_ALLOW or DECISION_DENY; a rule must say which');
      expect(s.status).to.equal(undefined);
      expect((await run('cat x.key', 10_000)).stderr).to.match(/Operation not permitted/);
    });

    it('keeps event types the filters leave out away from the daemon, re-marked by ReplaceRules; Subscribed and the stats still say what was asked', async () => {
      files('a', 'b', 'c');
      const s = guard({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_ACCESS_PERM'] }], exclude: [{ events: ['EVENT_TYPE_OPEN_PERM'] }] });
      await s.subscribed();
      // cat opens and reads: only the read is reported; the open is never read by the daemon.
      expect((await run('cat a', 10_000)).code).to.equal(0);
      await s.until(() => s.events.length >= 1, 5000, 'the ACCESS_PERM');
      expect(s.events.flatMap((e) => e.types)).to.not.include('EVENT_TYPE_OPEN_PERM');
      expect(await getStats(s)).to.deep.include({ filtered: '0', decided_by_daemon: '0' });
      const read = Number((await getStats(s)).read);
      expect(await replaceRules(s, 11, { include: [{ events: ['EVENT_TYPE_OPEN_PERM'] }] })).to.deep.include({ code: 0 });
      expect((await run('cat b', 10_000)).code).to.equal(0);
      await s.until(() => s.events.some((e) => base(e.path) === 'b'), 5000, 'the OPEN_PERM of b');
      expect(s.events.filter((e) => base(e.path) === 'b').flatMap((e) => e.types)).to.deep.equal(['EVENT_TYPE_OPEN_PERM']);
      const st = await getStats(s);
      expect(st).to.deep.include({ filtered: '0' });
      expect(Number(st.read) - read, 'the read of b left out of the marks, not read and dropped').to.equal(1);
    });

    it('refuses rules for a notification watch in a failed MarkResult', async () => {
      const s = notifications({});
      await s.subscribed();
      const r = await replaceRules(s, 2, { rules: [{ decision: 'DECISION_ALLOW' }] });
      expect(r.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(r.message).to.match(/^ReplaceRules\.rules: a GROUP_CLASS_NOTIF watch has no permission events to decide/);
      expect(Number((await getStats(s)).request_id)).to.equal(statsRequests);
    });
  });
});

describe('e2e: rule decisions in the audit file and the metrics', function () {
  this.timeout(60_000);
  let auditDir: string;
  beforeEach(() => (auditDir = tempDir()));
  afterEach(() => fs.rmSync(auditDir, { recursive: true, force: true }));

  it('records decided_by rule with the rule\'s index, and counts rule and filter decisions', async () => {
    const file = path.join(auditDir, 'audit.jsonl');
    let watchId = '';
    await withDaemon(['--audit-file', file, '--metrics', '127.0.0.1:0'], async ({ daemon, client, dir }) => {
      for (const f of ['x.key', 'y.pem', 'skip.log', 'ok.txt']) fs.writeFileSync(path.join(dir, f), 'x');
      const s = new WatchStream(client, {
        group_class: 'GROUP_CLASS_CONTENT',
        verdict_timeout_ms: 60_000,
        timeout_decision: 'DECISION_DENY',
        marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
        exclude: [{ paths: ['*.log'] }],
        rules: [
          { match: { paths: ['*.pem'] }, decision: 'DECISION_ALLOW' },
          { match: { paths: ['*.key'] }, decision: 'DECISION_DENY', report: true },
        ],
      });
      s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_ALLOW');
      watchId = (await s.subscribed()).watch_id;
      const r = await shellInGroup('cat x.key; cat y.pem skip.log ok.txt', dir, 10_000);
      expect(r.stderr).to.match(/x\.key: Operation not permitted/);
      const m = await scrape(metricsAddress(daemon));
      expect(m.get('fanotifyd_permission_decisions_total{decided_by="rule"}')).to.equal(2);
      expect(m.get('fanotifyd_permission_decisions_total{decided_by="filter"}')).to.equal(1);
      expect(m.get('fanotifyd_permission_decisions_total{decided_by="client"}')).to.equal(1);
      expect(m.get('fanotifyd_events_filtered_total')).to.equal(1);
      expect(m.get('fanotifyd_events_coalesced_total')).to.equal(0);
      expect(m.get('fanotifyd_notifications_dropped_total{reason="rate_limit"}')).to.equal(0);
      s.cancel();
    });
    const records = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.watch === watchId);
    expect(records[0]).to.deep.include({ kind: 'watch_opened', include: 0, exclude: 1, rules: 2 });
    // Events the filters left out are counted, not audited: over a busy filesystem they would fill the file.
    const decisions = records.filter((r) => r.kind === 'decision').map((r) => [base(r.path), r.decision, r.decided_by, r.rule]);
    expect(decisions).to.deep.equal([
      ['x.key', 'deny', 'rule', 1],
      ['y.pem', 'allow', 'rule', 0],
      ['ok.txt', 'allow', 'client', undefined],
    ]);
  });
});
