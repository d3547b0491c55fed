// The unix socket the daemon listens on: its mode, its directory, and what
// happens to whatever already sits at its path.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { HTTP2_PREFACE } from '../../src/daemon/listeners';
import { connect, DAEMON, getInfo, runChild, startDaemon, tempDir, WatchStream } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

/** A raw connection to a unix socket that never closes its own side. */
function rawConnect(sockPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: sockPath, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Milliseconds until the daemon has closed the connection for good: its
 * FIN, and then a write that fails (a half-closed connection would still
 * take it). Rejects after ms.
 */
function closedByDaemon(s: net.Socket, ms = 5000): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon kept the connection open for ${ms} ms`)), ms);
    s.on('error', () => undefined);
    s.resume(); // whatever the daemon sends (SETTINGS, GOAWAY), then its FIN
    s.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
    s.once('end', () => {
      const probe = () => {
        if (s.destroyed) return;
        s.write('x');
        setTimeout(probe, 50);
      };
      probe();
    });
  });
}

describe('e2e: listening', function () {
  this.timeout(30_000);
  let base: string;
  beforeEach(() => {
    base = tempDir('fanotifyd-listen-');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  it('creates the socket 0660 in a new 0750 directory', async () => {
    const sock = path.join(base, 'run', 'fanotifyd.sock');
    const d = await startDaemon([], { socketPath: sock });
    try {
      expect(fs.statSync(sock).mode & 0o777).to.equal(0o660);
      expect(fs.statSync(path.dirname(sock)).mode & 0o777).to.equal(0o750);
    } finally {
      expect(await d.stop()).to.equal(0);
    }
  });

  it('replaces a stale socket left by a crashed run', async () => {
    const sock = path.join(base, 'fanotifyd.sock');
    // A socket file nobody listens on, as a killed daemon leaves behind.
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(sock)})`]);
    expect(fs.lstatSync(sock).isSocket()).to.equal(true);
    const d = await startDaemon([], { socketPath: sock });
    expect(await d.stop()).to.equal(0);
  });

  it('refuses to touch a path that is not a socket, or a live socket', async () => {
    const file = path.join(base, 'not-a-socket');
    fs.writeFileSync(file, 'keep me');
    const r = spawnSync(process.execPath, [DAEMON, '--listen', `unix:${file}`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/not a socket; refusing to remove it/);
    expect(fs.readFileSync(file, 'utf8')).to.equal('keep me');

    const sock = path.join(base, 'live.sock');
    const first = await startDaemon([], { socketPath: sock });
    try {
      const second = spawnSync(process.execPath, [DAEMON, '--listen', `unix:${sock}`], { encoding: 'utf8', timeout: 20_000 });
      expect(second.status).to.equal(1);
      expect(second.stderr).to.match(/another process is serving this socket/);
    } finally {
      expect(await first.stop()).to.equal(0);
    }
  });

  it('refuses plain TCP off loopback and bad flags, naming the flag', () => {
    const tcp = spawnSync(process.execPath, [DAEMON, '--listen', '0.0.0.0:7000'], { encoding: 'utf8', timeout: 20_000 });
    expect(tcp.status).to.equal(2);
    expect(tcp.stderr).to.match(/^fanotifyd: --listen: 0\.0\.0\.0:7000: plain TCP is allowed only on loopback/);
    const bad = spawnSync(process.execPath, [DAEMON, '--verdict-timeout-ms', 'soon'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.equal('fanotifyd: --verdict-timeout-ms: "soon" is not a positive integer\n');
  });

  it('checks every setting and the files it names before binding anything: exit 2, one plain line, no socket', async () => {
    const run = path.join(base, 'run');
    const sock = `unix:${path.join(run, 'fanotifyd.sock')}`;
    // A CA and a server certificate it signed, and files that are not what they should be.
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: base, stdio: ['ignore', 'ignore', 'pipe'] });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ca');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2');
    fs.writeFileSync(path.join(base, 'garbage.pem'), 'not a certificate\n');
    fs.writeFileSync(path.join(base, 'policy.json'), JSON.stringify({ rules: [{ match: 'local' }, { match: 'x', scopes: ['inode', 'disk'] }] }));
    fs.writeFileSync(path.join(base, 'config.json'), JSON.stringify({ metrics: '192.0.2.1:9464' }));
    const f = (name: string) => path.join(base, name);
    const tls = (cert: string, key: string, ca: string) => ['--listen', '127.0.0.1:0', '--tls-cert', f(cert), '--tls-key', f(key), '--tls-client-ca', f(ca)];
    const cases: Array<[string[], RegExp]> = [
      [['--metrics', '192.0.2.1:9464'], /^--metrics: 192\.0\.2\.1:9464: give a loopback HOST:PORT/],
      [['--metrics', 'localhost'], /^--metrics: localhost: expected unix:\/path or HOST:PORT$/],
      [['--config', f('config.json')], /^config \S+config\.json: metrics: 192\.0\.2\.1:9464: give a loopback/],
      [['--socket-group', 'fanotifyd-no-such-group'], /^--socket-group: no group "fanotifyd-no-such-group" in \/etc\/group$/],
      [tls('missing.crt', 'server.key', 'ca.crt'), /^--tls-cert: ENOENT: no such file or directory/],
      [tls('server.crt', 'server.key', 'run-not-a-file'), /^--tls-client-ca: ENOENT/],
      [tls('server.crt', 'server.key', '.'), /^--tls-client-ca: EISDIR/],
      [tls('garbage.pem', 'server.key', 'ca.crt'), /^--tls-cert: \S+garbage\.pem does not hold a PEM certificate/],
      [tls('server.crt', 'garbage.pem', 'ca.crt'), /^--tls-key: \S+garbage\.pem does not hold a PEM private key/],
      [tls('server.crt', 'ca.key', 'ca.crt'), /^--tls-key: \S+ca\.key is not the key of the certificate in \S+server\.crt$/],
      [['--policy', f('policy.json')], /^policy \S+policy\.json: rules\[1\]\.scopes\[1\]: "disk" is not one of inode, mount, filesystem, mount_namespace, subtree$/],
      [['--audit-file', base], /^--audit-file: EISDIR/],
    ];
    for (const [args, re] of cases) {
      const r = await runChild(process.execPath, [DAEMON, '--listen', sock, ...args], 20_000).done;
      expect(r.signal, 'killed by the time limit').to.equal(null);
      const what = `${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).to.equal(2);
      const lines = r.stderr.split('\n');
      expect(lines.length, what).to.equal(2);
      expect(lines[1], what).to.equal('');
      expect(lines[0].slice('fanotifyd: '.length), what).to.match(re);
      expect(fs.existsSync(run), `${what}: the socket's directory was created`).to.equal(false);
    }
  });

  it('an address in use fails the start with exit 1, and leaves no socket behind', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    const sock = path.join(base, 'fanotifyd.sock');
    try {
      const r = spawnSync(process.execPath, [DAEMON, '--listen', `unix:${sock}`, '--metrics', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/"msg":"cannot listen"/);
      expect(r.stderr).to.match(/--metrics 127\.0\.0\.1:\d+: listen EADDRINUSE/);
      expect(fs.existsSync(sock)).to.equal(false);
      // The second of two listeners: the first one's socket is removed again.
      const tcp = spawnSync(process.execPath, [DAEMON, '--listen', `unix:${sock}`, '--listen', `127.0.0.1:${port}`, '--insecure'], { encoding: 'utf8', timeout: 20_000 });
      expect(tcp.status, tcp.stderr).to.equal(1);
      expect(tcp.stderr).to.match(/--listen 127\.0\.0\.1:\d+: listen EADDRINUSE/);
      expect(fs.existsSync(sock)).to.equal(false);
    } finally {
      holder.close();
    }
  });

  it('closes a connection that holds no stream for --idle-timeout-ms', async () => {
    const d = await startDaemon(['--idle-timeout-ms', '500']);
    const client = connect(d.address);
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
      // READY until the daemon sends GOAWAY, then IDLE.
      await waitFor(() => client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY, 5000, 'the daemon to end the idle connection');
    } finally {
      client.close();
      expect(await d.stop()).to.equal(0);
    }
  });

  it('closes connections that send no HTTP/2 preface within --handshake-timeout-ms; a client keeps working', async () => {
    // The idle timeout (300 s by default) is not what closes them.
    const d = await startDaemon(['--handshake-timeout-ms', '300']);
    const sock = d.address.slice('unix:'.length);
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const client = connect(d.address);
    const raw: net.Socket[] = [];
    try {
      const w = new WatchStream(client, { marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
      await w.subscribed();
      const silent = await rawConnect(sock);
      const half = await rawConnect(sock);
      raw.push(silent, half);
      half.write(HTTP2_PREFACE.subarray(0, 12));
      const closed = Promise.all([closedByDaemon(silent), closedByDaemon(half)]);
      // Served while both wait for their deadline...
      const info = await getInfo(client);
      expect(info.active_watches).to.equal(1);
      // ...which is not before the timeout, and well within 5 s.
      for (const ms of await closed) expect(ms).to.be.within(250, 5000);
      // The client's own connection and stream are untouched.
      const r = await runChild('cat', [path.join(dir, 'f')]).done;
      await w.until(() => w.events.find((e) => e.process.pid === r.pid), 10_000, 'an event after the raw connections closed');
      expect(w.status).to.equal(undefined);
      expect(client.getChannel().getConnectivityState(false)).to.equal(grpc.connectivityState.READY);
      // A new client connects as ever: the preface passes the gate unchanged.
      const fresh = connect(d.address);
      expect((await getInfo(fresh)).active_watches).to.equal(1);
      fresh.close();
      w.cancel();
    } finally {
      for (const s of raw) s.destroy();
      client.close();
      expect(await d.stop()).to.equal(0);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closes connections past --max-connections at once, and takes new ones when some close', async () => {
    const d = await startDaemon(['--max-connections', '3']);
    const sock = d.address.slice('unix:'.length);
    const client = connect(d.address);
    const raw: net.Socket[] = [];
    try {
      await getInfo(client);
      // Two more connections that do speak HTTP/2: with the client's, the listener is full.
      for (let i = 0; i < 2; i++) {
        const s = await rawConnect(sock);
        s.write(HTTP2_PREFACE);
        raw.push(s);
      }
      // The daemon accepts in the order the connections were made, so it
      // has counted these two by the time it takes the next one.
      const extra = await rawConnect(sock);
      raw.push(extra);
      // The default handshake timeout is 10 s: this is the limit closing it.
      expect(await closedByDaemon(extra, 5000)).to.be.below(5000);
      expect((await getInfo(client)).kernel_release).to.be.a('string');
      raw[0].destroy();
      // Taken once the daemon has seen that close; refused until then.
      const info = await waitFor(
        async () => {
          const fresh = connect(d.address);
          try {
            return await getInfo(fresh);
          } finally {
            fresh.close();
          }
        },
        5000,
        'a new connection to be served',
      );
      expect(info.kernel_release).to.be.a('string');
    } finally {
      for (const s of raw) s.destroy();
      client.close();
      expect(await d.stop()).to.equal(0);
    }
  });

  it('ends a Watch stream that sends no Subscribe within --handshake-timeout-ms', async () => {
    const d = await startDaemon(['--handshake-timeout-ms', '300']);
    const client = connect(d.address);
    try {
      const idle = new WatchStream(client);
      const t0 = Date.now();
      const st = await idle.ended(5000);
      expect(grpc.status[st.code]).to.equal('DEADLINE_EXCEEDED');
      expect(st.details).to.match(/no Subscribe within 300 ms/);
      expect(Date.now() - t0).to.be.within(250, 5000);
      // A stream that subscribes in time is not touched by it.
      const dir = tempDir();
      const w = new WatchStream(client, { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] });
      await w.subscribed();
      // Its handshake timer, had it kept one, fires before that of a
      // stream opened after it: wait for that one's end.
      const later = new WatchStream(client);
      expect(grpc.status[(await later.ended(5000)).code]).to.equal('DEADLINE_EXCEEDED');
      expect(w.status).to.equal(undefined);
      w.cancel();
      fs.rmSync(dir, { recursive: true, force: true });
    } finally {
      client.close();
      expect(await d.stop()).to.equal(0);
    }
  });

  it('closes a connection that is not HTTP/2 at once', async () => {
    const d = await startDaemon();
    const s = await rawConnect(d.address.slice('unix:'.length));
    try {
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      // The default handshake timeout is 10 s: this is the gate refusing the bytes.
      expect(await closedByDaemon(s, 5000)).to.be.below(5000);
    } finally {
      s.destroy();
      expect(await d.stop()).to.equal(0);
    }
  });

  it('drops a connection whose peer never closes its side after the idle timeout, and exits 0 on SIGTERM with such peers', async () => {
    const d = await startDaemon(['--idle-timeout-ms', '300', '--handshake-timeout-ms', '300']);
    const sock = d.address.slice('unix:'.length);
    const raw: net.Socket[] = [];
    try {
      // The preface and an empty SETTINGS frame, then silence: an HTTP/2
      // connection without streams, whose peer ignores GOAWAY and FIN.
      const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
      const idle = await rawConnect(sock);
      raw.push(idle);
      idle.write(Buffer.concat([HTTP2_PREFACE, settings]));
      expect(await closedByDaemon(idle)).to.be.below(5000);
      // At shutdown: one peer before the preface, one after it, neither
      // closing its side. stop() sends SIGKILL after 10 s: exit code 0
      // means the daemon stopped by itself.
      const early = await rawConnect(sock);
      const late = await rawConnect(sock);
      raw.push(early, late);
      // The daemon's SETTINGS back means it has taken the preface (and,
      // accepting in order, the early connection too).
      const answered = new Promise((resolve) => late.once('data', resolve));
      late.write(Buffer.concat([HTTP2_PREFACE, settings]));
      await answered;
      late.resume();
      expect(await d.stop()).to.equal(0);
    } finally {
      for (const s of raw) s.destroy();
      await d.stop();
    }
  });

  it('serves plain TCP on loopback only with --insecure, and warns', async () => {
    const d = await startDaemon(['--listen', '127.0.0.1:0', '--insecure']);
    try {
      expect(d.logs.join('\n')).to.match(/"listen":\[[^\]]*"127\.0\.0\.1:\d+"/);
      expect(d.logs.some((l) => l.includes('"level":"warn"') && l.includes('plain TCP listener'))).to.equal(true);
    } finally {
      expect(await d.stop()).to.equal(0);
    }
  });
});
