// fanctl against a real daemon: the lines people read, and the guard that
// policy-engine authors start from.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { globToRegExp } from '../../src/cli/fanctl';
import { runChild, sh, sleep, startDaemon, tempDir, type Daemon } from '../fixtures/harness';

const FANCTL = path.resolve(__dirname, '..', '..', 'src', 'cli', 'fanctl.js');

/** fanctl as a child, its stdout lines collected. */
function fanctl(args: string[]): { proc: ChildProcess; lines: string[]; stderr: () => string; ready: Promise<void> } {
  const proc = spawn(process.execPath, [FANCTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  let buf = '';
  proc.stdout!.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const ready = new Promise<void>((resolve) =>
    proc.stderr!.on('data', (d) => {
      err += d;
      if (err.includes('watching')) resolve();
    }),
  );
  return { proc, lines, stderr: () => err, ready };
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('e2e: fanctl', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let dir: string;
  before(async () => {
    daemon = await startDaemon();
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
  });

  it('health exits 0 while the daemon serves', () => {
    const r = spawnSync(process.execPath, [FANCTL, 'health', '--target', daemon.address], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.equal('SERVING');
  });

  it('watch prints one fatrace-like line per event and exits cleanly on SIGINT', async () => {
    const w = fanctl(['watch', dir, '--events', 'open', '--target', daemon.address]);
    await w.ready;
    // The opener stays alive until its line is printed, so its name can be read from /proc.
    const opener = sh(`read x < ${path.join(dir, 'public')}; sleep 10`, 20_000);
    await until(() => w.lines.some((l) => l.includes(`sh(${opener.pid}): OPEN ${path.join(dir, 'public')}`)), 5000, 'the OPEN line');
    opener.kill();
    w.proc.kill('SIGINT');
    const code = await new Promise((resolve) => w.proc.on('exit', resolve));
    expect(code).to.equal(0);
  });

  it('guard denies matching paths, allows the rest, and prints each denial', async () => {
    const g = fanctl(['guard', dir, '--deny', '**/secret', '--target', daemon.address]);
    await g.ready;
    const denied = await runChild('cat', [path.join(dir, 'secret')]).done;
    const allowed = await runChild('cat', [path.join(dir, 'public')]).done;
    expect(denied.code).to.not.equal(0);
    expect(denied.stderr).to.match(/Operation not permitted/);
    expect(allowed.code).to.equal(0);
    await until(() => g.lines.some((l) => l.startsWith('DENY ') && l.includes(path.join(dir, 'secret'))), 5000, 'the DENY line');
    expect(g.lines.filter((l) => l.startsWith('DENY '))).to.have.length(1);
    g.proc.kill('SIGINT');
    await new Promise((resolve) => g.proc.on('exit', resolve));
  });

  it('says what failed, with the status name, and exits non-zero', () => {
    const missing = spawnSync(process.execPath, [FANCTL, 'watch', path.join(dir, 'nope'), '--target', daemon.address], { encoding: 'utf8', timeout: 20_000 });
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
    const w = fanctl(['watch', dir, dirB, '--events', 'open', '--target', daemon.address, '--target', b.address]);
    try {
      await until(() => (w.stderr().match(/watching/g) ?? []).length === 2, 10_000, 'both targets watching');
      fs.writeFileSync(path.join(dirB, 'g'), 'x');
      const opener = sh(`read x < ${path.join(dir, 'public')}; read x < ${path.join(dirB, 'g')}; sleep 10`, 20_000);
      await until(() => w.lines.some((l) => l.startsWith(`[${daemon.address}] `) && l.includes(path.join(dir, 'public'))), 5000, 'a line from target A');
      // Both daemons watch both dirs, so B reports the open in dirB too.
      await until(() => w.lines.some((l) => l.startsWith(`[${b.address}] `) && l.includes(path.join(dirB, 'g'))), 5000, 'a line from target B');
      opener.kill();
      expect(await b.stop()).to.equal(0);
      await until(() => /lost .*reconnecting/.test(w.stderr()), 5000, 'B reported lost');
      b = await startDaemon([], { socketPath: sockB });
      await until(() => w.lines.some((l) => l.startsWith(`[${b.address}] RECONNECTED after`)), 15_000, 'B reconnected');
      const again = sh(`read x < ${path.join(dirB, 'g')}; sleep 10`, 20_000);
      await until(() => w.lines.filter((l) => l.startsWith(`[${b.address}] `) && l.includes(`sh(${again.pid})`)).length > 0, 5000, 'an event from B after reconnecting');
      again.kill();
    } finally {
      w.proc.kill('SIGINT');
      await new Promise((resolve) => w.proc.on('exit', resolve));
      await b.stop();
      fs.rmSync(dirB, { recursive: true, force: true });
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('matches globs per path segment', () => {
    expect(globToRegExp('/srv/*.key').test('/srv/a.key')).to.equal(true);
    expect(globToRegExp('/srv/*.key').test('/srv/x/a.key')).to.equal(false);
    expect(globToRegExp('/srv/**/a.key').test('/srv/x/y/a.key')).to.equal(true);
    expect(globToRegExp('**/secret').test('/tmp/d/secret')).to.equal(true);
    expect(globToRegExp('/a.b').test('/axb')).to.equal(false);
  });
});
