// The service manager's side of a restart, without systemd: the notify
// messages as a datagram socket receives them, FDNAME escaping, the
// $LISTEN_* checks, and the definitions' store under a temp state directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { silentLogger } from '../../src/common/log';
import * as ffi from '../../src/kernel/ffi';
import { bindUnix, dgramSocket, parseRights, recvWithFds } from '../../src/kernel/unix-dgram';
import { listenFds } from '../../src/daemon/listen-fds';
import { fdName, SdNotify } from '../../src/daemon/sd-notify';
import { restoredSequence, storeName, WatchStore, type WatchDefinition } from '../../src/daemon/watch-store';
import { tempDir } from '../fixtures/harness';

describe('unit: sd_notify, the fd store and watch definitions', () => {
  let dir: string;
  let sock: number;
  let sd: SdNotify | undefined;

  beforeEach(() => {
    dir = tempDir();
    sock = dgramSocket();
    bindUnix(sock, path.join(dir, 'notify'));
  });
  afterEach(() => {
    sd?.close();
    sd = undefined;
    ffi.closeFd(sock);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is off without $NOTIFY_SOCKET, or with one that is neither a path nor @abstract', () => {
    expect(SdNotify.fromEnv({}, silentLogger)).to.equal(undefined);
    expect(SdNotify.fromEnv({ NOTIFY_SOCKET: 'vsock:2:9' }, silentLogger)).to.equal(undefined);
  });

  it('sends READY=1 with MAINPID, and FDSTORE=1 with the fd attached', () => {
    sd = SdNotify.fromEnv({ NOTIFY_SOCKET: path.join(dir, 'notify') }, silentLogger)!;
    sd.ready('serving');
    const ready = recvWithFds(sock)!;
    expect(ready.data.toString().split('\n')).to.include.members(['READY=1', `MAINPID=${process.pid}`]);
    expect(ready.fds).to.deep.equal([]);
    fs.writeFileSync(path.join(dir, 'kept'), 'k');
    const file = fs.openSync(path.join(dir, 'kept'), 'r');
    try {
      expect(sd.store('w.1', file)).to.equal(true);
      const stored = recvWithFds(sock)!;
      expect(stored.data.toString()).to.equal('FDSTORE=1\nFDNAME=w.1\nFDPOLL=0');
      expect(stored.fds).to.have.length(1);
      expect(fs.fstatSync(stored.fds[0]).ino).to.equal(fs.fstatSync(file).ino);
      ffi.closeFds(stored.fds);
    } finally {
      fs.closeSync(file);
    }
    expect(recvWithFds(sock)).to.equal(undefined);
  });

  it('pings the watchdog at half of WATCHDOG_USEC, and not when WATCHDOG_PID names another process', () => {
    sd = SdNotify.fromEnv({ NOTIFY_SOCKET: path.join(dir, 'notify') }, silentLogger)!;
    expect(sd.startWatchdog({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) })).to.equal(undefined);
    expect(sd.startWatchdog({})).to.equal(undefined);
    expect(sd.startWatchdog({ WATCHDOG_USEC: '30000000' })).to.equal(15_000);
    expect(recvWithFds(sock)!.data.toString()).to.equal('WATCHDOG=1');
  });

  it('escapes what systemd refuses in an FDNAME, and keeps names of different owners apart', () => {
    expect(fdName('guard')).to.equal('guard');
    expect(fdName('a:b c%d/é')).to.equal('a%3Ab%20c%25d/%C3%A9');
    const long = storeName('x'.repeat(400), 'local');
    expect(long.length).to.be.at.most(255);
    expect(storeName('guard', 'local')).to.not.equal(storeName('guard', 'certificate:cn=a'));
    expect(storeName('guard', 'local')).to.match(/^guard\.[0-9a-f]{12}$/);
  });

  it('takes $LISTEN_FDS only when $LISTEN_PID is this process, and clears the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '1', LISTEN_FDNAMES: 'x' };
    expect(listenFds(env)).to.deep.equal([]);
    expect(env).to.deep.equal({});
  });

  it('reads SCM_RIGHTS fds out of a control buffer, and stops at a cut-short header', () => {
    const c = Buffer.alloc(32);
    c.writeBigUInt64LE(24n, 0);
    c.writeInt32LE(1, 8);
    c.writeInt32LE(1, 12);
    c.writeInt32LE(7, 16);
    c.writeInt32LE(9, 20);
    expect(parseRights(c, 24)).to.deep.equal([7, 9]);
    c.writeBigUInt64LE(400n, 0);
    expect(parseRights(c, 24)).to.deep.equal([]);
  });

  /** A stored DENY watch of `dir`, its block reserved up to 65,537. */
  const definition = (): WatchDefinition => ({
    version: 1,
    fdName: 'guard.0123456789ab',
    name: 'guard',
    identity: { kind: 'local', names: [] },
    lingerMs: 1000,
    subscribe: {
      group_class: 'GROUP_CLASS_CONTENT',
      marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
      timeout_decision: 'DECISION_DENY',
      name: 'guard',
      linger_ms: 1000,
    } as unknown as WatchDefinition['subscribe'],
    groupClass: 'content',
    timeoutDecision: 'deny',
    groupFlags: 0x87,
    nextSequence: '65537',
    fdLimit: 65536,
    pid: 1,
  });

  it('writes definitions whole, and reads a bad one as an error for that watch alone', async () => {
    const store = new WatchStore(dir);
    await store.init();
    const def = definition();
    await store.write(def);
    fs.writeFileSync(path.join(store.dir, 'bad.json'), '{"version":1,');
    fs.writeFileSync(path.join(store.dir, 'other.json'), JSON.stringify({ ...def, fdName: 'someone-else' }));
    const all = (await store.readAll()).sort((a, b) => a.fdName.localeCompare(b.fdName));
    expect(all.map((e) => [e.fdName, e.def !== undefined])).to.deep.equal([
      ['bad', false],
      ['guard.0123456789ab', true],
      ['other', false],
    ]);
    expect(all[1].def).to.deep.equal(def);
    await store.remove(def.fdName);
    expect(fs.readdirSync(store.dir).sort()).to.deep.equal(['bad.json', 'other.json']);
  });

  it('a definition with the exact next sequence restores there; one without (a crash, an older writer) past its block', async () => {
    const store = new WatchStore(dir);
    await store.init();
    const blockOnly = definition();
    await store.write(blockOnly);
    const [read] = await store.readAll();
    expect(read.def).to.not.have.property('exactNextSequence');
    expect(restoredSequence(read.def!)).to.deep.equal({ first: 65537, exact: false });

    const handedOff = { ...definition(), exactNextSequence: '2002' };
    await store.write(handedOff);
    const [again] = await store.readAll();
    expect(again.def).to.deep.equal(handedOff);
    expect(restoredSequence(again.def!)).to.deep.equal({ first: 2002, exact: true });

    fs.writeFileSync(path.join(store.dir, `${handedOff.fdName}.json`), JSON.stringify({ ...handedOff, exactNextSequence: 2002 }));
    const [bad] = await store.readAll();
    expect(bad.def).to.equal(undefined);
    expect(bad.error).to.match(/exactNextSequence/);
  });

  it('keeps the marks added since the Subscribe, for the grant check after a restore; a malformed one fails that watch', async () => {
    const store = new WatchStore(dir);
    await store.init();
    const withMarks = { ...definition(), addedMarks: [{ path: '/srv/extra', scope: 'inode' as const, mask: 0x20, flags: 0 }] };
    await store.write(withMarks);
    const [read] = await store.readAll();
    expect(read.def).to.deep.equal(withMarks);
    fs.writeFileSync(path.join(store.dir, `${withMarks.fdName}.json`), JSON.stringify({ ...withMarks, addedMarks: [{ path: '/srv/extra', scope: 'everything', mask: 0x20, flags: 0 }] }));
    const [bad] = await store.readAll();
    expect(bad.def).to.equal(undefined);
    expect(bad.error).to.match(/addedMarks/);
  });
});
