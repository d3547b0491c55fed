// Authorization by policy file: rules by client name, paths checked after
// resolving symlinks and "..", scopes, permission classes, watch limits,
// GetInfo, and a reload on SIGHUP that keeps open watches.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { connect, getInfo, runChild, startDaemon, tempDir, waitForLog, WatchStream, type Client, type Daemon } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('e2e: authorization policy', function () {
  this.timeout(60_000);
  let base: string;
  let allowed: string;
  let policyFile: string;
  let auditFile: string;
  let daemon: Daemon;
  let client: Client;
  const writePolicy = (rules: object[]) => fs.writeFileSync(policyFile, JSON.stringify({ rules }));
  /** The first JSON log line from index `from` on whose msg is `msg`. */
  const logSince = (from: number, msg: string): any =>
    daemon.logs
      .slice(from)
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return undefined; // not a JSON line
        }
      })
      .find((j) => j?.msg === msg);
  const refusal = async (sub: object) => {
    const s = new WatchStream(client, sub);
    const st = await s.ended();
    return st;
  };

  before(async () => {
    base = tempDir('fanotifyd-policy-');
    allowed = path.join(base, 'allowed');
    fs.mkdirSync(allowed);
    fs.mkdirSync(path.join(base, 'other'));
    fs.symlinkSync(path.join(base, 'other'), path.join(allowed, 'escape'));
    policyFile = path.join(base, 'policy.json');
    auditFile = path.join(base, 'audit.jsonl');
    writePolicy([{ match: 'local', paths: [allowed], scopes: ['inode'], permission: false, maxWatches: 2, getInfo: false }]);
    daemon = await startDaemon(['--policy', policyFile, '--audit-file', auditFile]);
    client = connect(daemon.address);
  });
  after(async () => {
    client.close();
    expect(await daemon.stop()).to.equal(0);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('allows what the rule allows', async () => {
    const s = new WatchStream(client, { marks: [{ path: allowed, events: ['EVENT_TYPE_OPEN'] }] });
    await s.subscribed();
    s.cancel();
  });

  it('refuses paths outside the rule, also through ".." and symlinks, naming the rule', async () => {
    for (const p of [path.join(base, 'other'), `${allowed}/../other`, path.join(allowed, 'escape')]) {
      const st = await refusal({ marks: [{ path: p, events: ['EVENT_TYPE_OPEN'] }] });
      expect(grpc.status[st.code], p).to.equal('PERMISSION_DENIED');
      expect(st.details).to.match(/policy rule #0 \("local"\) does not allow marks on .*\/other/);
    }
  });

  it('refuses other scopes, permission classes and GetInfo, and audits the denial', async () => {
    let st = await refusal({ marks: [{ path: allowed, scope: 'MARK_SCOPE_FILESYSTEM', events: ['EVENT_TYPE_OPEN'] }] });
    expect(st.details).to.match(/does not allow filesystem marks/);
    st = await refusal({ group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: allowed, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    expect(st.details).to.match(/does not allow permission events/);
    const err: any = await getInfo(client).catch((e) => e);
    expect(grpc.status[err.code]).to.equal('PERMISSION_DENIED');
    const denied = await waitForLog(daemon, (l) => l.msg === 'denied' && l.what === 'GetInfo');
    expect(denied.identity).to.equal('local');
    // The audit trail has each refusal, with who asked and the rule's reason.
    // Written asynchronously, after earlier tests' refusals: wait for this one's last.
    const denials = () => fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.kind === 'denied');
    const records: any[] = await waitFor(() => denials().some((r) => r.what === 'GetInfo') && denials(), 5000, 'the GetInfo denial in the audit file');
    expect(records.some((r) => /does not allow filesystem marks/.test(r.reason) && r.identity === 'local')).to.equal(true);
    expect(records.some((r) => /does not allow permission events/.test(r.reason))).to.equal(true);
  });

  it('limits concurrent watches per rule', async () => {
    const a = new WatchStream(client, { marks: [{ path: allowed, events: ['EVENT_TYPE_OPEN'] }] });
    const b = new WatchStream(client, { marks: [{ path: allowed, events: ['EVENT_TYPE_OPEN'] }] });
    await Promise.all([a.subscribed(), b.subscribed()]);
    const st = await refusal({ marks: [{ path: allowed, events: ['EVENT_TYPE_OPEN'] }] });
    expect(grpc.status[st.code]).to.equal('RESOURCE_EXHAUSTED');
    expect(st.details).to.match(/allows at most 2 concurrent watches/);
    a.cancel();
    b.cancel();
  });

  it('holds the per-rule limit against 20 concurrent Subscribes in dfid_name mode', async () => {
    // dfid_name mode awaits (a mount fd per marked path) before the group
    // opens: a limit counted only once the watch is open lets them all by.
    const streams = Array.from({ length: 20 }, () => new WatchStream(client, { report_mode: 'REPORT_MODE_DFID_NAME', marks: [{ path: allowed, events: ['EVENT_TYPE_CREATE'] }] }));
    try {
      const subscribed = (s: WatchStream) => s.responses.some((r) => r.subscribed);
      await Promise.all(streams.map((s) => s.until(() => subscribed(s) || s.status, 20_000, 'Subscribed or a status')));
      expect(streams.filter(subscribed).length, 'watches opened').to.equal(2);
      const refused = streams.filter((s) => s.status);
      expect(refused.map((s) => grpc.status[s.status!.code])).to.deep.equal(Array(18).fill('RESOURCE_EXHAUSTED'));
      expect(refused[0].status!.details).to.match(/policy rule #0 \("local"\) allows at most 2 concurrent watches/);
    } finally {
      for (const s of streams) s.cancel();
    }
    // The next test counts against the same rule: wait until these are gone.
    for (const s of streams.filter((x) => x.responses.some((r) => r.subscribed))) {
      const id = s.responses.find((r) => r.subscribed).subscribed.watch_id;
      await waitForLog(daemon, (l) => l.msg === 'watch closed' && l.watch === id);
    }
  });

  it('re-reads the policy on SIGHUP without dropping open watches', async () => {
    const kept = new WatchStream(client, { marks: [{ path: allowed, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    await kept.subscribed();
    // The rules in force refuse GetInfo: the reload is what allows it.
    const refused: any = await getInfo(client).catch((e) => e);
    expect(grpc.status[refused.code]).to.equal('PERMISSION_DENIED');
    writePolicy([{ match: 'loc*', paths: ['/'], scopes: ['inode', 'filesystem'], permission: true, maxWatches: 10, getInfo: true }]);
    // Only log lines after this signal count: SIGHUP is handled in its own time.
    let from = daemon.logs.length;
    daemon.proc.kill('SIGHUP');
    const reloaded = await waitFor(() => logSince(from, 'policy reloaded'), 5000, 'the "policy reloaded" log line');
    expect(reloaded.policy).to.equal(policyFile);
    const info = await getInfo(client);
    expect(info.kernel_release).to.be.a('string');
    // The watch opened under the old rules still reports.
    fs.writeFileSync(path.join(allowed, 'f'), 'x');
    const cat = await runChild('cat', [path.join(allowed, 'f')]).done;
    expect(cat.code).to.equal(0);
    await kept.until(() => kept.events.find((e) => e.process.pid === cat.pid), 5000, 'an event on the kept watch after the reload');
    expect(kept.status).to.equal(undefined);
    // A broken file keeps the rules in force.
    fs.writeFileSync(policyFile, '{ not json');
    from = daemon.logs.length;
    daemon.proc.kill('SIGHUP');
    const failed = await waitFor(() => logSince(from, 'policy reload failed; keeping the previous rules'), 5000, 'the "policy reload failed" log line');
    expect(failed.level).to.equal('error');
    expect((await getInfo(client)).kernel_release).to.be.a('string');
    kept.cancel();
  });
});
