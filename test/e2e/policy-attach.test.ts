// Attach grants over mTLS: a client whose policy rule has `attach` covering
// a watch's name joins a named watch another client created, and gets its
// events and answers its permission events; a client without the grant, or
// with it but without the paths the watch holds, is refused naming what is
// missing. Every certificate is made by the test; the permission mark is on
// a directory the test made, and its opener is a child with a time limit.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { fanotifyClientConstructor } from '../../src/api/proto';
import { runChild, startDaemon, tempDir, WatchStream, type Client, type Daemon } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */

const CLIENTS = ['alice', 'bob', 'carol', 'dave'] as const;
type Who = (typeof CLIENTS)[number];

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for localhost, and a client certificate CN=<name> for each client. */
function makeCerts(dir: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ca');
  const issue = (name: string, ext: string) => {
    openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  issue('localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  for (const c of CLIENTS) issue(c, 'extendedKeyUsage=clientAuth\n');
}

function attach(client: Client, msg: object): WatchStream {
  const s = new WatchStream(client);
  s.call.write({ attach: msg });
  return s;
}

describe('e2e: attaching to another client\'s named watch under a policy grant (mTLS)', function () {
  this.timeout(60_000);
  let base: string;
  let shared: string;
  let outside: string;
  let auditFile: string;
  let daemon: Daemon;
  let address: string;
  const clients: Client[] = [];
  const streams: WatchStream[] = [];
  const client = (who: Who): Client => {
    const read = (f: string) => fs.readFileSync(path.join(base, f));
    const Ctor = fanotifyClientConstructor();
    const c = new Ctor(address, grpc.credentials.createSsl(read('ca.crt'), read(`${who}.key`), read(`${who}.crt`)), { 'grpc.use_local_subchannel_pool': 1 }) as Client;
    clients.push(c);
    return c;
  };
  const track = (s: WatchStream) => (streams.push(s), s);
  const audit = (): any[] => fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const touch = (f: string) => fs.closeSync(fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_CREAT, 0o600));

  before(async () => {
    base = tempDir('fanotifyd-attach-');
    shared = path.join(base, 'shared');
    outside = path.join(base, 'outside');
    fs.mkdirSync(shared);
    fs.mkdirSync(outside);
    makeCerts(base);
    auditFile = path.join(base, 'audit.jsonl');
    const policy = path.join(base, 'policy.json');
    const rules = [
      { match: 'CN=alice', paths: [base], permission: true, maxWatches: 4 },
      // maxWatches 0: bob may open no watch of his own, and attaching counts as none.
      { match: 'CN=bob', paths: [shared], permission: true, maxWatches: 0, attach: ['fleet-*'] },
      { match: 'CN=carol', paths: [shared], permission: true },
      { match: 'CN=dave', paths: [outside], permission: true, attach: ['fleet-*'] },
    ];
    fs.writeFileSync(policy, JSON.stringify({ rules }));
    daemon = await startDaemon([
      '--policy', policy, '--audit-file', auditFile, '--listen', '127.0.0.1:0',
      '--tls-cert', path.join(base, 'localhost.crt'), '--tls-key', path.join(base, 'localhost.key'), '--tls-client-ca', path.join(base, 'ca.crt'),
    ]);
    address = `localhost:${/"127\.0\.0\.1:(\d+)"/.exec(daemon.logs.join('\n'))![1]}`;
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    expect(await daemon.stop()).to.equal(0);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('lets a granted client join and read a lingering watch; refuses one without the grant, and one without the paths naming them', async () => {
    const alice = client('alice');
    const created = track(new WatchStream(alice, { marks: [{ path: shared, events: ['EVENT_TYPE_OPEN'], on_child: true }], name: 'fleet-1', linger_ms: 30_000 }));
    const sub = await created.subscribed();
    created.cancel();
    // Lingering with no stream: an event now is kept for whoever attaches.
    touch(path.join(shared, 'before'));

    const bob = track(attach(client('bob'), { name: 'fleet-1' }));
    const joined = await bob.subscribed();
    expect(joined).to.include({ watch_id: sub.watch_id, name: 'fleet-1', attached: true });
    touch(path.join(shared, 'after'));
    await bob.until(() => bob.events.some((e) => e.path === path.join(shared, 'after')), 10_000, 'the live event');
    const paths = bob.events.map((e) => e.path).filter((p) => p.startsWith(shared + '/'));
    expect(paths.slice(0, 2)).to.deep.equal([path.join(shared, 'before'), path.join(shared, 'after')]);

    // Joined, not owned: the marks and rules stay the creator's.
    bob.call.write({ add_mark: { request_id: '1', mark: { path: shared, events: ['EVENT_TYPE_OPEN'] } } });
    const result = await bob.until(() => bob.responses.find((m) => m.mark_result)?.mark_result, 10_000, 'the AddMark result');
    expect(grpc.status[result.code]).to.equal('PERMISSION_DENIED');
    expect(result.message).to.match(/under policy rule #1 \("CN=bob"\) \(attach "fleet-\*"\).*only the client that created the watch may change its marks or rules/);

    const carol = track(attach(client('carol'), { name: 'fleet-1' }));
    const refusedCarol = await carol.ended();
    expect(grpc.status[refusedCarol.code]).to.equal('PERMISSION_DENIED');
    expect(refusedCarol.details).to.equal('the watch named "fleet-1" belongs to another client; policy rule #2 ("CN=carol") does not allow attaching to it (it has no attach)');

    const dave = track(attach(client('dave'), { name: 'fleet-1' }));
    const refusedDave = await dave.ended();
    expect(grpc.status[refusedDave.code]).to.equal('PERMISSION_DENIED');
    expect(refusedDave.details).to.equal(
      `policy rule #3 ("CN=dave") allows attaching to the watch named "fleet-1" of client certificate ["CN=alice"] (attach "fleet-*"), but not what it watches: it does not allow marks on ${shared} (allowed: ${outside})`,
    );

    // The audit trail has the attach with both identities and the grant, and each refusal with who asked.
    const records = await waitFor(() => {
      const all = audit();
      return all.some((r) => r.kind === 'denied' && r.names?.includes('CN=dave')) && all;
    }, 5000, 'the denials in the audit file');
    const attached = records.find((r) => r.kind === 'watch_attached' && r.names?.includes('CN=bob'));
    expect(attached).to.include({ watch: sub.watch_id, name: 'fleet-1', identity: 'certificate', grant: 'policy rule #1 ("CN=bob")', glob: 'fleet-*' });
    expect(attached.owner).to.deep.equal({ identity: 'certificate', names: ['CN=alice'] });
    const denied = records.filter((r) => r.kind === 'denied' && r.what === 'Attach');
    expect(denied.map((r) => r.names)).to.deep.equal([['CN=carol'], ['CN=dave']]);
    expect(denied[1].reason).to.equal(refusedDave.details);
  });

  it('checks a grant against the marks the creator added since, too', async () => {
    const alice = client('alice');
    const created = track(new WatchStream(alice, { marks: [{ path: shared, events: ['EVENT_TYPE_OPEN'] }], name: 'fleet-2', linger_ms: 30_000 }));
    await created.subscribed();
    const first = track(attach(client('bob'), { name: 'fleet-2' }));
    await first.subscribed();
    const result = (id: string) => created.until(() => created.responses.find((m) => m.mark_result?.request_id === id)?.mark_result, 10_000, `the AddMark result ${id}`);
    // While bob is attached under a grant that does not cover it, the mark would widen what he gets: refused, naming him.
    created.call.write({ add_mark: { request_id: '1', mark: { path: outside, events: ['EVENT_TYPE_OPEN'] } } });
    const refusedMark = await result('1');
    expect(grpc.status[refusedMark.code]).to.equal('PERMISSION_DENIED');
    expect(refusedMark.message).to.match(/^client certificate \["CN=bob"\] is attached to this watch under a policy grant that does not cover this mark/);
    first.cancel();
    // Once the daemon has seen bob's stream end (a moment after the cancel), the same mark is taken.
    let id = 1;
    const added = await waitFor(
      async () => {
        id++;
        created.call.write({ add_mark: { request_id: String(id), mark: { path: outside, events: ['EVENT_TYPE_OPEN'] } } });
        const r = await result(String(id));
        return grpc.status[r.code] === 'OK' ? r : undefined;
      },
      10_000,
      'the mark added once bob\'s stream ended',
      100,
    );
    expect(grpc.status[added.code]).to.equal('OK');
    const again = track(attach(client('bob'), { name: 'fleet-2' }));
    const st = await again.ended();
    expect(grpc.status[st.code]).to.equal('PERMISSION_DENIED');
    expect(st.details).to.match(new RegExp(`\\(attach "fleet-\\*"\\), but not what it watches: it does not allow marks on ${outside} \\(allowed: ${shared}\\)$`));
  });

  it('takes verdicts from a granted engine on another client\'s permission watch, but not their cache', async () => {
    const alice = client('alice');
    const file = path.join(shared, 'guarded');
    fs.writeFileSync(file, 'x');
    const created = track(
      new WatchStream(alice, {
        group_class: 'GROUP_CLASS_CONTENT',
        marks: [{ path: shared, events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
        name: 'fleet-guard',
        linger_ms: 30_000,
        verdict_timeout_ms: 20_000,
        timeout_decision: 'DECISION_DENY',
      }),
    );
    await created.subscribed();
    created.cancel();
    const bob = track(attach(client('bob'), { name: 'fleet-guard' }));
    // ALLOW with cache: under a grant the cache (an ignore mark in alice's group) is not taken.
    bob.onEvent = (ev) => ev.needs_verdict && bob.call.write({ verdicts: { verdicts: [{ id: ev.id, decision: 'DECISION_ALLOW', cache: true }] } });
    await bob.subscribed();
    // Lingering alone it would deny at once: the read succeeding is bob's ALLOW.
    for (let i = 0; i < 2; i++) {
      const r = await runChild('cat', [file], 15_000).done;
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('x');
    }
    // Both opens asked: the first ALLOW did not stop the kernel asking about the file again.
    expect(bob.events.filter((e) => e.path === file).length).to.equal(2);
  });
});
