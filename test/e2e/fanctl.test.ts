// fanctl against a real daemon: the lines people read, the JSON lines
// programs read, the guard (by the daemon's rules, and with --ask the one
// policy-engine authors start from), the README's guard example, and TLS
// to a remote daemon. Guards with the default subtree scope run only on a
// tmpfs the test mounts: a subtree mark may be a filesystem mark.
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFileRegistry, fromBinary, fromJson, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { expect } from 'chai';
import { DESCRIPTOR_SET } from '../../src/api/proto';
import { makeCerts } from '../fixtures/certs';
import { FANCTL, fanctl } from '../fixtures/fanctl';
import { connect, getInfo, runChild, sh, startDaemon, tempDir, type Daemon } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';


/** SIGINT, and the exit status once fanctl is gone. */
async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
  proc.kill('SIGINT');
  return exited;
}

function fanctlSync(args: string[]) {
  return spawnSync(process.execPath, [FANCTL, ...args], { encoding: 'utf8', timeout: 30_000 });
}

/** A message schema from the build's descriptor set, by @bufbuild/protobuf alone (not through fanctl's code). */
function messageSchema(typeName: string): DescMessage {
  const set = fromBinary(FileDescriptorSetSchema, fs.readFileSync(DESCRIPTOR_SET));
  return createFileRegistry(set).getMessage(typeName)!;
}

describe('e2e: fanctl', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let dir: string;
  /** The daemon's GetInfo lists MARK_SCOPE_SUBTREE: fanctl's default scope works. */
  let subtree: boolean;
  before(async () => {
    daemon = await startDaemon();
    const client = connect(daemon.address);
    try {
      subtree = (await getInfo(client)).mark_scopes.includes('MARK_SCOPE_SUBTREE');
    } finally {
      client.close();
    }
  });
  after(async () => {
    expect(await daemon.stop()).to.equal(0);
  });
  beforeEach(() => {
    dir = tempDir();
    fs.writeFileSync(path.join(dir, 'secret'), 's');
    fs.writeFileSync(path.join(dir, 'public'), 'p');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('info prints the kernel and what it supports', () => {
    const r = spawnSync(process.execPath, [FANCTL, 'info', '--target', daemon.address], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(0);
    expect(r.stdout).to.include(`kernel ${fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`);
    expect(r.stdout).to.match(/events: .*open_perm/);
    const json = fanctlSync(['info', '--json', '--target', daemon.address]);
    expect(json.status).to.equal(0);
    const info = fromJson(messageSchema('fanotify.v1.GetInfoResponse'), JSON.parse(json.stdout)) as unknown as { eventTypes: number[] };
    expect(info.eventTypes.length).to.be.greaterThan(0);
  });

  it('health exits 0 while the daemon serves', () => {
    const r = spawnSync(process.execPath, [FANCTL, 'health', '--target', daemon.address], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.equal('SERVING');
  });

  it('watch prints one fatrace-like line per event and exits cleanly on SIGINT', async () => {
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--target', daemon.address]);
    await w.ready;
    // The opener stays alive until its line is printed, so its name can be read from /proc.
    const opener = sh(`read x < ${path.join(dir, 'public')}; sleep 10`, 20_000);
    await waitFor(() => w.lines.some((l) => l.includes(`sh(${opener.pid}): OPEN ${path.join(dir, 'public')}`)), 5000, 'the OPEN line');
    opener.kill();
    w.proc.kill('SIGINT');
    const code = await new Promise((resolve) => w.proc.on('exit', resolve));
    expect(code).to.equal(0);
  });

  it('guard denies matching paths, allows the rest, and prints each denial', async () => {
    const g = fanctl(['guard', dir, '--scope', 'inode', '--deny', '**/secret', '--target', daemon.address]);
    await g.ready;
    const denied = await runChild('cat', [path.join(dir, 'secret')]).done;
    const allowed = await runChild('cat', [path.join(dir, 'public')]).done;
    expect(denied.code).to.not.equal(0);
    expect(denied.stderr).to.match(/Operation not permitted/);
    expect(allowed.code).to.equal(0);
    await waitFor(() => g.lines.some((l) => l.startsWith('DENY ') && l.includes(path.join(dir, 'secret'))), 5000, 'the DENY line');
    expect(g.lines.filter((l) => l.startsWith('DENY '))).to.have.length(1);
    g.proc.kill('SIGINT');
    await new Promise((resolve) => g.proc.on('exit', resolve));
  });

  it('says what failed, with the status name, and exits non-zero', () => {
    const missing = spawnSync(process.execPath, [FANCTL, 'watch', path.join(dir, 'nope'), '--scope', 'inode', '--target', daemon.address], { encoding: 'utf8', timeout: 20_000 });
    expect(missing.status).to.equal(1);
    expect(missing.stderr).to.match(/^fanctl: NOT_FOUND: .*ENOENT/m);
    const down = spawnSync(process.execPath, [FANCTL, 'info', '--target', `unix:${dir}/no.sock`], { encoding: 'utf8', timeout: 30_000 });
    expect(down.status).to.equal(1);
    expect(down.stderr).to.match(/^fanctl: UNAVAILABLE: /m);
  });

  it('merges several targets, tags each line, and reconnects a target that comes back', async () => {
    const other = tempDir('fanotifyd-sock-');
    const sockB = path.join(other, 'b.sock');
    let b = await startDaemon([], { socketPath: sockB });
    const dirB = tempDir();
    const w = fanctl(['watch', dir, dirB, '--scope', 'inode', '--events', 'open', '--target', daemon.address, '--target', b.address]);
    try {
      await waitFor(() => (w.stderr().match(/watching/g) ?? []).length === 2, 10_000, 'both targets watching');
      fs.writeFileSync(path.join(dirB, 'g'), 'x');
      const opener = sh(`read x < ${path.join(dir, 'public')}; read x < ${path.join(dirB, 'g')}; sleep 10`, 20_000);
      await waitFor(() => w.lines.some((l) => l.startsWith(`[${daemon.address}] `) && l.includes(path.join(dir, 'public'))), 5000, 'a line from target A');
      // Both daemons watch both dirs, so B reports the open in dirB too.
      await waitFor(() => w.lines.some((l) => l.startsWith(`[${b.address}] `) && l.includes(path.join(dirB, 'g'))), 5000, 'a line from target B');
      opener.kill();
      expect(await b.stop()).to.equal(0);
      await waitFor(() => /lost .*reconnecting/.test(w.stderr()), 5000, 'B reported lost');
      b = await startDaemon([], { socketPath: sockB });
      await waitFor(() => w.lines.some((l) => l.startsWith(`[${b.address}] RECONNECTED after`)), 15_000, 'B reconnected');
      const again = sh(`read x < ${path.join(dirB, 'g')}; sleep 10`, 20_000);
      await waitFor(() => w.lines.filter((l) => l.startsWith(`[${b.address}] `) && l.includes(`sh(${again.pid})`)).length > 0, 5000, 'an event from B after reconnecting');
      again.kill();
    } finally {
      w.proc.kill('SIGINT');
      await new Promise((resolve) => w.proc.on('exit', resolve));
      await b.stop();
      fs.rmSync(dirB, { recursive: true, force: true });
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  // .gitignore's rules: a name pattern matches in any directory, and "**"
  // is zero or more directories, so both reach a file directly in the dir.
  for (const glob of ['*.key', '<dir>/**/*.key']) {
    it(`guard --deny '${glob}' denies <dir>/x.key and allows <dir>/x.txt`, async () => {
      fs.writeFileSync(path.join(dir, 'x.key'), 'k');
      fs.writeFileSync(path.join(dir, 'x.txt'), 't');
      const g = fanctl(['guard', dir, '--scope', 'inode', '--deny', glob.replace('<dir>', dir), '--target', daemon.address]);
      try {
        await g.ready;
        const denied = await runChild('cat', [path.join(dir, 'x.key')]).done;
        const allowed = await runChild('cat', [path.join(dir, 'x.txt')]).done;
        expect(denied.stderr).to.match(/Operation not permitted/);
        expect(denied.code).to.not.equal(0);
        expect(allowed.code, allowed.stderr).to.equal(0);
        expect(allowed.stdout).to.equal('t');
        await waitFor(() => g.lines.some((l) => l.startsWith('DENY ') && l.endsWith(` ${path.join(dir, 'x.key')}`)), 5000, 'the DENY line');
        expect(g.lines.filter((l) => l.startsWith('DENY '))).to.have.length(1);
      } finally {
        g.proc.kill('SIGINT');
        await new Promise((resolve) => g.proc.on('exit', resolve));
      }
    });
  }

  it('watch --json prints one fanotify.v1.Event per line in protobuf JSON, which the canonical parser reads', async () => {
    const Event = messageSchema('fanotify.v1.Event');
    const file = path.join(dir, 'public');
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open,close_nowrite', '--json', '--target', daemon.address]);
    try {
      await w.ready;
      const opener = sh(`read x < ${file}; sleep 10`, 20_000);
      await waitFor(() => w.lines.some((l) => l.includes('EVENT_TYPE_CLOSE_NOWRITE')), 5000, 'the CLOSE_NOWRITE line');
      opener.kill();
      for (const line of w.lines) {
        const json = JSON.parse(line);
        // Strict: an unknown field, a snake_case name or a wrong type throws.
        const ev = fromJson(Event, json) as unknown as { path: string; pathBytes: Uint8Array; process?: { pid: number }; id: bigint };
        expect(ev.path).to.equal(file);
        expect(Buffer.from(ev.pathBytes).toString()).to.equal(file);
        expect(ev.process?.pid).to.equal(opener.pid);
        expect(json.pathBytes).to.equal(Buffer.from(file).toString('base64'));
        expect(json.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
        expect(json.id).to.be.a('string');
        expect(json).to.not.have.any.keys('path_bytes', 'needs_verdict', 'is_dir');
      }
      // The kernel may merge the open and the close into one event: enum names either way.
      const types = w.lines.flatMap((l) => JSON.parse(l).types);
      expect(types).to.include.members(['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_NOWRITE']);
    } finally {
      w.proc.kill('SIGINT');
      await new Promise((resolve) => w.proc.on('exit', resolve));
    }
  });

  it('guard --ask --json prints each denied event, which waited for fanctl\'s verdict, in protobuf JSON', async () => {
    const Event = messageSchema('fanotify.v1.Event');
    const g = fanctl(['guard', dir, '--ask', '--scope', 'inode', '--deny', 'secret', '--json', '--target', daemon.address]);
    try {
      await g.ready;
      const denied = await runChild('cat', [path.join(dir, 'secret')]).done;
      expect(denied.stderr).to.match(/Operation not permitted/);
      await waitFor(() => g.lines.length > 0, 5000, 'the denial line');
      const ev = fromJson(Event, JSON.parse(g.lines[0])) as unknown as { path: string; needsVerdict: boolean };
      expect(ev.path).to.equal(path.join(dir, 'secret'));
      expect(ev.needsVerdict).to.equal(true);
    } finally {
      g.proc.kill('SIGINT');
      await new Promise((resolve) => g.proc.on('exit', resolve));
    }
  });

  // Needs the daemon's rules (Subscribe.rules): a daemon without them sends
  // every event for fanctl to answer, and this fails on needsVerdict.
  it('guard sends its globs as the daemon\'s rules: a denial arrives decided, naming its rule, and nothing waits for fanctl', async () => {
    const Event = messageSchema('fanotify.v1.Event');
    fs.writeFileSync(path.join(dir, 'x.pem'), 'k');
    // Rules in reverse order of the globs, then allow-all: *.pem is rule 1.
    const g = fanctl(['guard', dir, '--scope', 'inode', '--deny', '*.pem', '--deny', 'secret', '--json', '--target', daemon.address]);
    try {
      await g.ready;
      const denied = await runChild('cat', [path.join(dir, 'x.pem')]).done;
      expect(denied.stderr).to.match(/Operation not permitted/);
      const allowed = await runChild('cat', [path.join(dir, 'public')]).done;
      expect(allowed.code, allowed.stderr).to.equal(0);
      await waitFor(() => g.lines.length > 0, 5000, 'the denial line');
      const json = JSON.parse(g.lines[0]);
      const ev = fromJson(Event, json) as unknown as { path: string; needsVerdict: boolean; decision: number; rule: number };
      expect(ev.path).to.equal(path.join(dir, 'x.pem'));
      expect(json).to.deep.include({ decision: 'DECISION_DENY', rule: 1 });
      expect(ev.needsVerdict).to.equal(false);
      expect(g.lines).to.have.length(1);
    } finally {
      await stop(g.proc);
    }
  });

  describe('on a tmpfs the test mounts', () => {
    let mnt: string;
    beforeEach(() => {
      mnt = tempDir('fanotifyd-fanctl-tmpfs-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'fanotifyd-test', mnt]);
      fs.mkdirSync(path.join(mnt, 'a', 'b'), { recursive: true });
      for (const f of ['x.key', 'x.txt', 'a/b/y.key', 'a/b/y.txt']) fs.writeFileSync(path.join(mnt, f), f);
    });
    afterEach(() => {
      // Lazy: the daemon may hold a directory fd there a moment after fanctl exits.
      execFileSync('umount', ['-l', mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
    });

    /** cat each file; true where the open was denied. */
    async function denied(files: string[]): Promise<boolean[]> {
      const out: boolean[] = [];
      for (const f of files) {
        const r = await runChild('cat', [path.join(mnt, f)]).done;
        if (r.code !== 0) expect(r.stderr, f).to.match(/Operation not permitted/);
        else expect(r.stdout, f).to.equal(f);
        out.push(r.code !== 0);
      }
      return out;
    }

    it('the README\'s guard example with --scope inode guards the directory\'s own files, not those below', async () => {
      const g = fanctl(['guard', mnt, '--scope', 'inode', '--deny', `${mnt}/**/*.key`, '--target', daemon.address]);
      try {
        await g.ready;
        expect(await denied(['x.key', 'x.txt', 'a/b/y.key', 'a/b/y.txt'])).to.deep.equal([true, false, false, false]);
        await waitFor(() => g.lines.some((l) => l.startsWith('DENY ') && l.endsWith(` ${mnt}/x.key`)), 5000, 'the DENY line');
        expect(g.lines.filter((l) => l.startsWith('DENY '))).to.have.length(1);
      } finally {
        await stop(g.proc);
      }
    });

    // README: fanctl guard /srv --deny '/srv/**/*.key', here with the tmpfs for /srv.
    it('the README\'s guard example as written denies .key files at the top and two levels down', async function () {
      if (!subtree) {
        console.log('      skipped: the daemon has no MARK_SCOPE_SUBTREE (fanctl guard\'s default scope)');
        this.skip();
      }
      const g = fanctl(['guard', mnt, '--deny', `${mnt}/**/*.key`, '--target', daemon.address]);
      try {
        await g.ready;
        expect(await denied(['x.key', 'x.txt', 'a/b/y.key', 'a/b/y.txt'])).to.deep.equal([true, false, true, false]);
        for (const f of ['x.key', 'a/b/y.key']) await waitFor(() => g.lines.some((l) => l.startsWith('DENY ') && l.endsWith(` ${mnt}/${f}`)), 5000, `the DENY line of ${f}`);
        expect(g.lines.filter((l) => l.startsWith('DENY '))).to.have.length(2);
        // Allowed files stay allowed on the next open (cached by the daemon's rule, or answered again).
        expect(await denied(['x.txt', 'a/b/y.txt', 'a/b/y.key'])).to.deep.equal([false, false, true]);
      } finally {
        expect(await stop(g.proc)).to.equal(0);
      }
    });

    it('watch reports opens two levels down by default', async function () {
      if (!subtree) {
        console.log('      skipped: the daemon has no MARK_SCOPE_SUBTREE (fanctl watch\'s default scope)');
        this.skip();
      }
      const w = fanctl(['watch', mnt, '--events', 'open', '--target', daemon.address]);
      try {
        await w.ready;
        const opener = sh(`read x < ${mnt}/a/b/y.txt; sleep 10`, 20_000);
        await waitFor(() => w.lines.some((l) => l.includes(`sh(${opener.pid}): OPEN ${mnt}/a/b/y.txt`)), 5000, 'the OPEN line');
        opener.kill();
      } finally {
        expect(await stop(w.proc)).to.equal(0);
      }
    });
  });

  it('refuses bad usage with exit 2 and a line saying what to fix', () => {
    const bad = fanctlSync(['watch', dir, '--events', 'open,opne', '--target', daemon.address]);
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.match(/^fanctl: option '--events <list>' argument 'open,opne' is invalid\. "opne" is not one of: /m);
    const missing = fanctlSync(['info', '--target', 'localhost:1', '--tls-ca', path.join(dir, 'nope.pem')]);
    expect(missing.status).to.equal(2);
    expect(missing.stderr).to.match(/^fanctl: cannot read the TLS CA file .*nope\.pem: ENOENT/m);
  });

  describe('to a daemon on TCP with TLS', () => {
    let certs: string;
    let tlsDaemon: Daemon;
    let tcp: string;
    const file = (f: string) => path.join(certs, f);
    const withCert = () => ['--tls-cert', file('client.crt'), '--tls-key', file('client.key'), '--tls-ca', file('ca.crt')];

    before(async () => {
      certs = tempDir('fanotifyd-tls-');
      // A name the address 127.0.0.1 does not match: only --tls-server-name makes it verify.
      makeCerts(certs, 'DNS:fanotifyd.test');
      tlsDaemon = await startDaemon(['--listen', '127.0.0.1:0', '--tls-cert', file('server.crt'), '--tls-key', file('server.key'), '--tls-client-ca', file('ca.crt')]);
      tcp = `127.0.0.1:${/"127\.0\.0\.1:(\d+)"/.exec(tlsDaemon.logs.join('\n'))![1]}`;
    });
    after(async () => {
      expect(await tlsDaemon.stop()).to.equal(0);
      fs.rmSync(certs, { recursive: true, force: true });
    });

    it('info works with a client certificate, the CA and the server name', () => {
      const r = fanctlSync(['info', '--target', tcp, ...withCert(), '--tls-server-name', 'fanotifyd.test']);
      expect(r.stderr).to.equal('');
      expect(r.status).to.equal(0);
      expect(r.stdout).to.include(`kernel ${fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`);
    });

    it('fails UNAVAILABLE with exit 1 when the name does not match, without a client certificate, or in plaintext', () => {
      for (const args of [withCert(), ['--tls-ca', file('ca.crt'), '--tls-server-name', 'fanotifyd.test'], []]) {
        const r = fanctlSync(['info', '--target', tcp, ...args]);
        expect(r.status, args.join(' ')).to.equal(1);
        expect(r.stderr, args.join(' ')).to.match(/^fanctl: UNAVAILABLE: /m);
      }
    });

    it('watches a TLS target and a unix socket at once (TLS on TCP, the socket in plaintext)', async () => {
      const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--target', tcp, '--target', daemon.address, ...withCert(), '--tls-server-name', 'fanotifyd.test']);
      try {
        await waitFor(() => (w.stderr().match(/watching/g) ?? []).length === 2, 10_000, 'both targets watching');
        const opener = sh(`read x < ${path.join(dir, 'public')}; sleep 10`, 20_000);
        for (const t of [tcp, daemon.address]) {
          await waitFor(() => w.lines.some((l) => l.startsWith(`[${t}] `) && l.includes(`sh(${opener.pid}): OPEN ${path.join(dir, 'public')}`)), 5000, `the OPEN line from ${t}`);
        }
        opener.kill();
      } finally {
        w.proc.kill('SIGINT');
        expect(await new Promise((resolve) => w.proc.on('exit', resolve))).to.equal(0);
      }
    });
  });
});
