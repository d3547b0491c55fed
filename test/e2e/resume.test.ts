// fanctl and the client library outlive their streams, against a real
// daemon: a stream cut mid-watch (a unix-socket proxy in a temp dir drops
// every connection) is resumed with no event lost or printed twice,
// counted by sequence; a buffer overrun while fanctl is away prints one
// gap line (and the JSON Gap); a policy engine that goes away leaves its
// events to another one attached to the same watch, which decides them.
// And fanctl resumes a watch the daemon took back from systemd's fd store
// after a kill -9 (test/fixtures/systemd-harness.ts plays systemd). Marks
// only on directories the test made; every opener a child with a time limit.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { expect } from 'chai';
import { runPolicyEngine, FanotifyClient, type ResumableWatch } from '../../src/client';
import { fanctl } from '../fixtures/fanctl';
import { connect, runChild, startDaemon, tempDir, WatchStream, type Daemon } from '../fixtures/harness';
import { SystemdHarness } from '../fixtures/systemd-harness';
import { waitFor } from '../fixtures/wait';


/* eslint-disable @typescript-eslint/no-explicit-any */

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  proc.kill('SIGINT');
  await exited;
}

/**
 * A unix-socket proxy to the daemon: cut() drops every connection through
 * it, as a network blip does; while held, new connections are refused.
 */
class Proxy {
  readonly path: string;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  held = false;

  constructor(
    dir: string,
    private readonly upstream: string,
  ) {
    this.path = path.join(dir, 'proxy.sock');
    this.server = net.createServer((client) => {
      if (this.held) return client.destroy();
      const up = net.connect(this.upstream);
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(up).pipe(client);
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Why this daemon cannot be resumed from (no named watches, no Attach), or undefined. */
async function resumeMissing(daemon: Daemon, dir: string): Promise<string | undefined> {
  const client = connect(daemon.address);
  try {
    const s = new WatchStream(client, { name: 'probe', linger_ms: 1000, marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'] }] });
    const sub = await Promise.race([s.subscribed(), s.ended().then(() => undefined)]).catch(() => undefined);
    s.cancel();
    if (!sub) return `the daemon refused a named Subscribe: ${s.status?.details}`;
    if (!sub.name) return 'the daemon keeps no named watches (Subscribed.name is empty)';
    return undefined;
  } finally {
    client.close();
  }
}

/** One open of each file `from`..`to - 1` (f<i>), by one child process: distinct files, so the kernel merges none. */
function openFiles(dir: string, from: number, to: number) {
  const script = `const fs=require('fs');for(let i=${from};i<${to};i++)fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/f'+i,'r'))`;
  return runChild(process.execPath, ['-e', script], 30_000).done;
}

function makeFiles(dir: string, n: number): void {
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
}

/** The events among fanctl --json lines (not gap lines), and the gap lines. */
function parse(lines: string[]): { events: any[]; gaps: any[] } {
  const all = lines.map((l) => JSON.parse(l));
  return { events: all.filter((x) => !x.gap), gaps: all.filter((x) => x.gap).map((x) => x.gap) };
}

describe('e2e: watches that survive their streams', function () {
  this.timeout(90_000);
  let daemon: Daemon;
  let dir: string;
  let sockDir: string;
  let proxy: Proxy;
  let missing: string | undefined;

  before(async () => {
    daemon = await startDaemon();
    const probeDir = tempDir();
    missing = await resumeMissing(daemon, probeDir);
    fs.rmSync(probeDir, { recursive: true, force: true });
    if (missing) console.log(`    (skipped: ${missing})`);
  });
  after(async () => {
    expect(await daemon.stop()).to.equal(0);
  });
  beforeEach(async function () {
    if (missing) this.skip();
    dir = tempDir();
    sockDir = tempDir('fanotifyd-proxy-');
    proxy = new Proxy(sockDir, daemon.address.slice('unix:'.length));
    await proxy.listen();
  });
  afterEach(async () => {
    if (missing) return;
    await proxy.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(sockDir, { recursive: true, force: true });
  });

  it('fanctl watch resumes after its connection is cut: every open once, no sequence twice', async () => {
    const n = 2000;
    makeFiles(dir, n);
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--json', '--name', 'resume-cut', '--linger', '30s', '--target', `unix:${proxy.path}`]);
    try {
      await waitFor(() => w.stderr().includes('watching'), 10_000, 'fanctl watching');
      const first = openFiles(dir, 0, n / 2);
      await waitFor(() => w.lines.length >= n / 4, 10_000, 'a quarter of the events');
      proxy.cut();
      // Opens go on while fanctl is away; the daemon keeps them for it.
      expect((await first).code).to.equal(0);
      expect((await openFiles(dir, n / 2, n)).code).to.equal(0);
      await waitFor(() => w.lines.length >= n, 30_000, `all ${n} events (${w.lines.length} so far; stderr: ${w.stderr()})`);
      const { events, gaps } = parse(w.lines);
      expect(gaps).to.deep.equal([]);
      const seqs = events.map((e) => BigInt(e.sequence));
      expect(new Set(seqs.map(String)).size, 'no sequence twice').to.equal(seqs.length);
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'sequences increasing').to.equal(true);
      const paths = events.map((e) => e.path).sort();
      expect(paths).to.deep.equal(Array.from({ length: n }, (_, i) => path.join(dir, `f${i}`)).sort());
      expect(w.stderr()).to.match(/lost .*reconnecting/);
      expect(w.stderr()).to.match(/resumed/);
    } finally {
      await stop(w.proc);
    }
  });

  it('prints one gap line, and the JSON Gap, when the daemon could not keep everything while fanctl was away', async function () {
    // A daemon of its own with a small resume buffer.
    const small = await startDaemon(['--resume-buffer-bytes', '4096']).catch((e: Error) => e);
    if (small instanceof Error) {
      console.log(`    (skipped: the daemon refused --resume-buffer-bytes: ${small.message.split('\n')[0]})`);
      return this.skip();
    }
    const p = new Proxy(tempDir('fanotifyd-proxy-'), small.address.slice('unix:'.length));
    await p.listen();
    const n = 2000;
    makeFiles(dir, n + 10);
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--json', '--name', 'resume-gap', '--linger', '30s', '--target', `unix:${p.path}`]);
    try {
      await waitFor(() => w.stderr().includes('watching'), 10_000, 'fanctl watching');
      expect((await openFiles(dir, 0, 1)).code).to.equal(0);
      await waitFor(() => w.lines.length >= 1, 10_000, 'the first event');
      p.held = true;
      p.cut();
      await waitFor(() => /lost/.test(w.stderr()), 10_000, 'fanctl lost its stream');
      expect((await openFiles(dir, 1, n)).code).to.equal(0);
      p.held = false;
      await waitFor(() => parse(w.lines).gaps.length > 0, 30_000, `the gap (stderr: ${w.stderr()})`);
      expect((await openFiles(dir, n, n + 10)).code).to.equal(0);
      await waitFor(() => parse(w.lines).events.some((e) => e.path === path.join(dir, `f${n + 9}`)), 10_000, 'the events after the gap');
      const { events, gaps } = parse(w.lines);
      expect(gaps).to.have.length(1);
      const [from, to] = [BigInt(gaps[0].fromSequence), BigInt(gaps[0].toSequence)];
      expect(to >= from).to.equal(true);
      const seqs = events.map((e) => BigInt(e.sequence));
      expect(seqs.filter((s) => s >= from && s <= to), 'no event inside the gap').to.deep.equal([]);
      expect(new Set(seqs.map(String)).size, 'no sequence twice').to.equal(seqs.length);
      // What was neither printed nor in the gap was lost without a word.
      expect(events.length + Number(to - from + 1n), 'every sequence accounted for').to.be.at.least(n + 10);
      expect(w.stderr()).to.match(/GAP: \d+ events lost \(sequences \d+-\d+\)/);
    } finally {
      await stop(w.proc);
      await p.close();
      await small.stop();
    }
  });

  it('fanctl\'s default linger fits a daemon whose --max-linger-ms is lower; a --linger given past it is refused, naming the flag', async () => {
    const strict = await startDaemon(['--max-linger-ms', '1000']);
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--target', strict.address]);
    try {
      await waitFor(() => w.stderr().includes('watching'), 10_000, `fanctl watching (stderr: ${w.stderr()})`);
      const asked = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--linger', '30s', '--target', strict.address]);
      const code = await new Promise((resolve) => asked.proc.on('exit', resolve));
      expect(code).to.equal(1);
      expect(asked.stderr()).to.match(/INVALID_ARGUMENT: .*--max-linger-ms/);
    } finally {
      await stop(w.proc);
      await strict.stop();
    }
  });

  it('a policy engine that goes away leaves its pending events to another attached to the watch, which decides them', async () => {
    fs.writeFileSync(path.join(dir, 'public'), 'p');
    fs.writeFileSync(path.join(dir, 'secret'), 's');
    // DENY on timeout, with a deadline past the openers' time limit: an event left to the timeout fails its opener.
    const subscribe = {
      group_class: 'GROUP_CLASS_CONTENT' as const,
      name: 'engines',
      linger_ms: 30_000,
      verdict_timeout_ms: 60_000,
      timeout_decision: 'DECISION_DENY' as const,
      marks: [{ path: dir, scope: 'MARK_SCOPE_INODE' as const, events: ['EVENT_TYPE_OPEN_PERM' as const], on_child: true }],
    };
    // Engine A holds what it gets and answers nothing.
    const held: string[] = [];
    const a = new FanotifyClient(daemon.address);
    const b = new FanotifyClient(daemon.address);
    let engineA: ResumableWatch | undefined;
    let engineB: ResumableWatch | undefined;
    try {
      engineA = a.resumableWatch(subscribe, { events: (evs) => held.push(...evs.map((e) => e.path)), subscribed: () => held.push('subscribed') });
      await waitFor(() => held.includes('subscribed'), 10_000, 'engine A subscribed');
      const opener = runChild('cat', [path.join(dir, 'public')], 20_000);
      await waitFor(() => held.includes(path.join(dir, 'public')), 10_000, 'engine A holding the open');
      // Engine B joins the watch by its name, and decides: secret denied, the rest allowed.
      const decided: string[] = [];
      let joined = '';
      engineB = runPolicyEngine(b, subscribe, (ev) => (decided.push(ev.path), ev.path.endsWith('/secret') ? 'DECISION_DENY' : 'DECISION_ALLOW'), { subscribed: (_s, how) => (joined = how) });
      await waitFor(() => joined, 10_000, 'engine B attached');
      expect(joined).to.equal('attached');
      // A goes away (its stream ends): its pending event moves to B.
      engineA.cancel();
      a.close();
      const r = await opener.done;
      expect(r.code, r.stderr).to.equal(0);
      expect(decided).to.include(path.join(dir, 'public'));
      // And B goes on deciding.
      const denied = await runChild('cat', [path.join(dir, 'secret')], 20_000).done;
      expect(denied.stderr).to.match(/Operation not permitted/);
    } finally {
      engineA?.cancel();
      engineB?.cancel();
      await engineB?.done;
      a.close();
      b.close();
    }
  });

  it('fanctl guard: a second engine with the same --name joins, and decides once the first is killed', async () => {
    fs.writeFileSync(path.join(dir, 'public'), 'p');
    fs.writeFileSync(path.join(dir, 'secret'), 's');
    const args = ['guard', dir, '--ask', '--scope', 'inode', '--deny', 'secret', '--name', 'fanctl-engines', '--linger', '30s', '--target', daemon.address];
    const g1 = fanctl(args);
    const g2 = fanctl(args);
    try {
      await waitFor(() => g1.stderr().includes('watching') || g2.stderr().includes('watching'), 10_000, 'one guard watching');
      await waitFor(() => /joined the running watch/.test(g1.stderr() + g2.stderr()), 10_000, 'the other guard joined');
      const [first, second] = g1.stderr().includes('watching') ? [g1, g2] : [g2, g1];
      first.proc.kill('SIGKILL');
      for (let i = 0; i < 3; i++) {
        const denied = await runChild('cat', [path.join(dir, 'secret')], 20_000).done;
        expect(denied.stderr).to.match(/Operation not permitted/);
        const allowed = await runChild('cat', [path.join(dir, 'public')], 20_000).done;
        expect(allowed.code, allowed.stderr).to.equal(0);
      }
      await waitFor(() => second.lines.some((l) => l.startsWith('DENY ')), 5000, 'the second guard printing a denial');
    } finally {
      await stop(g1.proc);
      await stop(g2.proc);
    }
  });
});

describe('e2e: fanctl resumes after a daemon restart (fd store)', function () {
  this.timeout(90_000);
  let sd: SystemdHarness | undefined;
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await sd?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of the daemon: fanctl watch resumes the restored watch and prints the opens made meanwhile once each', async () => {
    const n = 200;
    makeFiles(dir, 3 * n);
    sd = new SystemdHarness();
    await sd.start();
    const w = fanctl(['watch', dir, '--scope', 'inode', '--events', 'open', '--json', '--name', 'restart-watch', '--linger', '60s', '--target', sd.address]);
    try {
      await waitFor(() => w.stderr().includes('watching'), 10_000, 'fanctl watching');
      await sd.until(() => sd!.storedFds === 1, 'FDSTORE of the watch');
      expect((await openFiles(dir, 0, n)).code).to.equal(0);
      await waitFor(() => w.lines.length >= n, 10_000, 'the events before the kill');
      await sd.kill('SIGKILL');
      // Made while no daemon runs: queued in the kernel for the stored group.
      expect((await openFiles(dir, n, 2 * n)).code).to.equal(0);
      await sd.start();
      await waitFor(() => /resumed/.test(w.stderr()), 30_000, `fanctl resumed (stderr: ${w.stderr()})`);
      expect((await openFiles(dir, 2 * n, 3 * n)).code).to.equal(0);
      const want = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => path.join(dir, `f${from + i}`));
      await waitFor(() => want(n, 3 * n).every((p) => parse(w.lines).events.some((e) => e.path === p)), 20_000, 'the opens during and after the restart');
      const { events } = parse(w.lines);
      expect(new Set(events.map((e) => e.sequence)).size, 'no sequence twice').to.equal(events.length);
      expect(new Set(events.map((e) => e.path)).size, 'no open printed twice').to.equal(events.length);
      expect(w.stderr()).to.not.match(/RECONNECTED/);
    } finally {
      await stop(w.proc);
    }
  });
});
