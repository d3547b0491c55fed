// TCP with TLS: a client must present a certificate from the configured CA,
// and is named by it. Every certificate here is made by the test.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { fanotifyClientConstructor } from '../../src/api/proto';
import { startDaemon, tempDir, waitForLog, WatchStream, type Daemon } from '../fixtures/harness';

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for localhost, and client certificates good and bad. */
function makeCerts(dir: string): void {
  for (const ca of ['ca', 'otherca']) {
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=${ca}`);
  }
  const issue = (name: string, ca: string, subj: string, ext: string, dates?: [string, string]) => {
    openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    if (!dates) {
      openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
      return;
    }
    // An expired certificate needs explicit dates, which only `openssl ca` takes.
    fs.mkdirSync(path.join(dir, 'db'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'db', 'index.txt'), '');
    fs.writeFileSync(path.join(dir, 'ca.cnf'), `[ca]\ndefault_ca=d\n[d]\ndir=db\ndatabase=db/index.txt\nnew_certs_dir=db\nserial=db/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`);
    fs.writeFileSync(path.join(dir, 'db', 'serial'), '1000\n');
    openssl(dir, 'ca', '-batch', '-config', 'ca.cnf', '-cert', `${ca}.crt`, '-keyfile', `${ca}.key`, '-in', `${name}.csr`, '-out', `${name}.crt`, '-startdate', dates[0], '-enddate', dates[1], '-extfile', `${name}.ext`);
  };
  issue('server', 'ca', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue('client', 'ca', '/CN=policy-engine', 'subjectAltName=URI:spiffe://example.org/policy\nextendedKeyUsage=clientAuth\n');
  issue('intruder', 'ca', '/CN=intruder', 'subjectAltName=URI:spiffe://example.org/intruder\nextendedKeyUsage=clientAuth\n');
  issue('stranger', 'otherca', '/CN=stranger', 'extendedKeyUsage=clientAuth\n');
  // A comma in a CN: joined with other names by commas, it would read as two names, "CN=x" and "local".
  issue('comma', 'ca', '/CN=x,local', 'extendedKeyUsage=clientAuth\n');
  issue('expired', 'ca', '/CN=expired', 'extendedKeyUsage=clientAuth\n', ['20200101000000Z', '20200102000000Z']);
}

describe('e2e: TLS with client certificates', function () {
  this.timeout(60_000);
  let dir: string;
  let daemon: Daemon;
  let address: string;
  const read = (f: string) => fs.readFileSync(path.join(dir, f));

  before(async () => {
    dir = tempDir('fanotifyd-tls-');
    makeCerts(dir);
    // Only the policy engine's SPIFFE id may do anything over TCP; "local"
    // (the unix socket) may call GetInfo; the certificate named "CN=x,local" may not.
    const policy = path.join(dir, 'policy.json');
    const rules = [
      { match: 'URI:spiffe://example.org/policy', paths: ['/'], scopes: ['inode'], permission: true, getInfo: true },
      { match: 'local', getInfo: true },
      { match: 'CN=x,local', getInfo: false },
    ];
    fs.writeFileSync(policy, JSON.stringify({ rules }));
    daemon = await startDaemon(['--policy', policy, '--listen', '127.0.0.1:0', '--tls-cert', path.join(dir, 'server.crt'), '--tls-key', path.join(dir, 'server.key'), '--tls-client-ca', path.join(dir, 'ca.crt'), '--handshake-timeout-ms', '500']);
    const port = /"127\.0\.0\.1:(\d+)"/.exec(daemon.logs.join('\n'))![1];
    address = `localhost:${port}`;
  });
  after(async () => {
    expect(await daemon.stop()).to.equal(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const client = (key?: string): any => {
    const Ctor = fanotifyClientConstructor();
    const creds = key ? grpc.credentials.createSsl(read('ca.crt'), read(`${key}.key`), read(`${key}.crt`)) : grpc.credentials.createSsl(read('ca.crt'));
    return new Ctor(address, creds);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const info = (c: any): Promise<any> =>
    new Promise((resolve) => c.GetInfo({}, { deadline: Date.now() + 5000 }, (e: grpc.ServiceError | null, r: unknown) => resolve(e ?? r)));

  it('closes a connection that stalls before or after its TLS handshake; a client keeps working', async () => {
    const port = Number(address.split(':')[1]);
    const closed = (sock: net.Socket) => new Promise<number>((resolve) => sock.once('close', () => resolve(Date.now())));
    const t0 = Date.now();
    // One never starts TLS; one completes the handshake with a good certificate and then sends nothing.
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => undefined);
    const silent = tls.connect({ host: '127.0.0.1', port, ca: read('ca.crt'), key: read('client.key'), cert: read('client.crt'), servername: 'localhost', ALPNProtocols: ['h2'] });
    silent.on('error', () => undefined);
    const handshaken = new Promise<boolean>((resolve) => {
      silent.once('secureConnect', () => resolve(true));
      silent.once('close', () => resolve(false));
    });
    const [rawClosed, silentClosed] = [closed(raw), closed(silent)];
    expect(await handshaken).to.equal(true);
    const c = client('client');
    const r = await info(c);
    expect(r.kernel_release, String(r)).to.be.a('string');
    // --handshake-timeout-ms is 500: each is closed after it, well before 5 s.
    for (const at of await Promise.all([rawClosed, silentClosed])) expect(at - t0).to.be.within(400, 5000);
    expect((await info(c)).kernel_release).to.be.a('string');
    c.close();
  });

  it('serves a client with a certificate from the CA, and names it by the certificate', async () => {
    const c = client('client');
    const r = await info(c);
    expect(r.kernel_release).to.be.a('string');
    const dirToWatch = tempDir();
    try {
      const s = new WatchStream(c, { marks: [{ path: dirToWatch, events: ['EVENT_TYPE_OPEN'] }] });
      const sub = await s.subscribed();
      s.cancel();
      const opened = await waitForLog(daemon, (l) => l.msg === 'watch opened' && l.watch === sub.watch_id);
      expect(opened.identity).to.equal('certificate');
      expect(opened.names).to.deep.equal(['CN=policy-engine', 'URI:spiffe://example.org/policy']);
    } finally {
      c.close();
      fs.rmSync(dirToWatch, { recursive: true, force: true });
    }
  });

  it('refuses a certificate from the CA whose identity the policy does not name, after the handshake', async () => {
    const c = client('intruder');
    const r = await info(c);
    expect(grpc.status[r.code]).to.equal('PERMISSION_DENIED');
    const dirToWatch = tempDir();
    try {
      const s = new WatchStream(c, { marks: [{ path: dirToWatch, events: ['EVENT_TYPE_OPEN'] }] });
      const st = await s.ended();
      expect(grpc.status[st.code]).to.equal('PERMISSION_DENIED');
      const denied = await waitForLog(daemon, (l) => l.msg === 'denied' && l.names?.includes('CN=intruder') && l.what === 'Subscribe');
      expect(denied.identity).to.equal('certificate');
      expect(denied.names).to.deep.equal(['CN=intruder', 'URI:spiffe://example.org/intruder']);
      expect(st.details).to.equal('no policy rule matches client certificate ["CN=intruder","URI:spiffe://example.org/intruder"]');
    } finally {
      c.close();
      fs.rmSync(dirToWatch, { recursive: true, force: true });
    }
  });

  it('matches a rule against whole names: a certificate whose CN is "x,local" is not "local"', async () => {
    const c = client('comma');
    const r = await info(c);
    c.close();
    expect(r, 'GetInfo was allowed by the rule for "local"').to.be.instanceOf(Error);
    expect(grpc.status[r.code]).to.equal('PERMISSION_DENIED');
    expect(r.details).to.equal('policy rule #2 ("CN=x,local") does not allow GetInfo');
  });

  for (const [what, key] of [
    ['no client certificate', undefined],
    ['a certificate from another CA', 'stranger'],
    ['an expired certificate', 'expired'],
  ] as const) {
    it(`refuses ${what} at the handshake`, async () => {
      const c = client(key);
      const r = await info(c);
      c.close();
      expect(r).to.be.instanceOf(Error);
      expect(grpc.status[r.code]).to.equal('UNAVAILABLE');
    });
  }
});
