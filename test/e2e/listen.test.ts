// The unix socket the daemon listens on: its mode, its directory, and what
// happens to whatever already sits at its path.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { connect, DAEMON, sleep, startDaemon, tempDir } from '../fixtures/harness';

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
    expect(tcp.stderr).to.match(/--listen 0\.0\.0\.0:7000: plain TCP is allowed only on loopback/);
    const bad = spawnSync(process.execPath, [DAEMON, '--verdict-timeout-ms', 'soon'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.match(/--verdict-timeout-ms: "soon" is not a positive integer/);
  });

  it('closes a connection that holds no stream for --idle-timeout-ms', async () => {
    const d = await startDaemon(['--idle-timeout-ms', '500']);
    const client = connect(d.address);
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
      const t0 = Date.now();
      // READY (2) until the daemon sends GOAWAY, then IDLE (0).
      while (client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY && Date.now() - t0 < 5000) await sleep(25);
      expect(client.getChannel().getConnectivityState(false)).to.not.equal(grpc.connectivityState.READY);
    } finally {
      client.close();
      expect(await d.stop()).to.equal(0);
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
