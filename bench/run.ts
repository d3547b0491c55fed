// npm run bench: fanotifyd against the kernel's own limits, in one run.
// Every daemon figure stands beside its baseline from the same run, as a
// ratio, because absolute numbers drift between machines and runs.
//   node dist/bench/run.js [--quick] [--reps N] [--only permission,rules,cache,rulecache,scale,notify,subtree,filter,export,idle]
// BENCH_RATES (comma-separated events/s) and BENCH_MODES (fd,dfid_name,dfid_name_nopidfd) set
// the notification case's rates and report modes; BENCH_DAEMON_PROFILE=dir
// makes the daemon write a CPU profile of the whole run there, and
// BENCH_DAEMON_NODE_ARGS passes options to the daemon's node.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, getInfo, startDaemon, tempDir, type Daemon } from '../test/fixtures/harness';
import { exportCase, exportReport } from './export';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'bench', 'build');
const CLIENTS = path.join(__dirname, 'clients.js');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const REPS = Number(args[args.indexOf('--reps') + 1]) || (QUICK ? 1 : 5);
const PERM_OPS = QUICK ? 2_000 : 20_000;
/**
 * Repetitions of the longer cases (cache, scale, notifications): fewer
 * than the permission cases' so a full run stays near ten minutes, but
 * more than one, because on these VMs one notification run may deliver
 * half or twice what the next does.
 */
const LONG_REPS = QUICK ? 1 : Math.min(REPS, 3);
const NOTIFY_SECONDS = QUICK ? 0.2 : 2;
const RATES = QUICK ? [25_000] : (process.env.BENCH_RATES ?? "25000,50000,100000,200000,400000").split(",").map(Number);
const ONLY = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1].split(',')) : undefined;
const runs = (name: string) => !ONLY || ONLY.has(name);
/** Report modes of the notification case, as the telemetry client's ReportMode number. */
/** Notification modes: the ReportMode number, and whether the collector sets skip_pid_verification. */
const MODES: Record<string, [number, boolean]> = { fd: [1, false], dfid_name: [2, false], dfid_name_nopidfd: [2, true] };
const NOTIFY_MODES = (process.env.BENCH_MODES ?? (QUICK ? 'fd' : 'fd,dfid_name,dfid_name_nopidfd')).split(',');
const NFILES = 1000;
/**
 * The permission cases' policy client, BENCH_POLICY: policy-wire (default;
 * the wire format, as the ping-pong baseline sends raw bytes) or policy
 * (proto-loader, as most grpc-js clients are written).
 */
const POLICY = process.env.BENCH_POLICY ?? 'policy-wire';
/** The notification collector: telemetry-wire (default) or telemetry (protobufjs decode), BENCH_COLLECTOR. */
const COLLECTOR = process.env.BENCH_COLLECTOR ?? 'telemetry-wire';
/** Distinct files for the notification case: the kernel merges an event into an identical one still queued, so too few files would read as loss. */
const NOTIFY_FILES = QUICK ? 5000 : 50_000;
/** Rates of the subtree case's notification part: where an inode mark is lossless in full runs (docs/performance.md). */
const SUBTREE_RATES = QUICK ? [25_000] : (process.env.BENCH_SUBTREE_RATES ?? '50000,100000').split(',').map(Number);
/** Rate of the filtered-event case: one every collector keeps up with, so both watches see every event. */
const FILTER_RATE = QUICK ? 25_000 : Number(process.env.BENCH_FILTER_RATE ?? 50_000);

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = Record<string, any>;

function buildC(): void {
  fs.mkdirSync(BUILD, { recursive: true });
  for (const name of ['load', 'responder', 'reader']) {
    execFileSync('cc', ['-O2', '-Wall', '-o', path.join(BUILD, name), path.join(ROOT, 'bench', 'c', `${name}.c`)]);
  }
}

/** Start a process and resolve once it prints "ready". */
function startReady(cmd: string, argv: string[]): Promise<{ proc: ChildProcess; result: Promise<Json> }> {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(cmd)} ${argv[0]} not ready in 20 s`)), 20_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        const result = new Promise<Json>((res) => proc.on('close', () => res(JSON.parse(out.split('ready\n')[1].trim() || '{}'))));
        resolve({ proc, result });
      }
    });
    proc.on('exit', (code) => reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}`)));
  });
}

async function stopReady(p: { proc: ChildProcess; result: Promise<Json> }): Promise<Json> {
  p.proc.kill('SIGTERM');
  return p.result;
}

/**
 * Wait until the daemon has closed every watch: a client's exit reaches the
 * daemon a moment later, and until then its group (and ignore marks) still
 * stand in the way of the next baseline.
 */
async function watchesClosed(daemon: Daemon): Promise<void> {
  const client = connect(daemon.address);
  try {
    for (let i = 0; i < 100 && (await getInfo(client)).active_watches > 0; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    client.close();
  }
}

/** Run the C load generator; several at once when parallel > 1. */
async function load(dir: string, n: number, opts: { rate?: number; parallel?: number; files?: number } = {}): Promise<Json> {
  const par = opts.parallel ?? 1;
  const runs = await Promise.all(
    Array.from({ length: par }, () => {
      const argv = [dir, String(opts.files ?? NFILES), String(Math.floor(n / par)), String(opts.rate ? opts.rate / par : 0)];
      return new Promise<Json>((resolve, reject) => {
        const p = spawn('timeout', ['120', path.join(BUILD, 'load'), ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
      });
    }),
  );
  const ops = runs.reduce((s, r) => s + r.ops, 0);
  const secs = Math.max(...runs.map((r) => r.secs));
  return {
    ops,
    ops_per_s: ops / secs,
    p50_us: median(runs.map((r) => r.p50_us)),
    p99_us: Math.max(...runs.map((r) => r.p99_us)),
    errors: runs.reduce((s, r) => s + r.errors, 0),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function stats(xs: number[]) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

function procStat(pid: number): { cpuMs: number; rssMb: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return { cpuMs: (ticks * 1000) / 100, rssMb: rss / 1024 };
}

/** Jiffies of all CPUs together from /proc/stat: total and idle (idle + iowait). */
function machineStat(): { total: number; idle: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + f[4] };
}

/**
 * Permission opens against their baselines: no fanotify and the C
 * responder, then the daemon with a remote policy client answering each
 * event (variants.client) and with a Rule ALLOW deciding each in the
 * daemon (variants.rule), alternating within each repetition.
 */
async function permissionCase(daemon: Daemon, dir: string, parallel: number, variants: { client: boolean; rule: boolean }): Promise<Json> {
  const out: Json = { none: [], c: [], ...(variants.client ? { daemon: [] } : {}), ...(variants.rule ? { rule: [] } : {}) };
  for (let rep = 0; rep < REPS; rep++) {
    out.none.push(await load(dir, PERM_OPS, { parallel }));
    const c = await startReady(path.join(BUILD, 'responder'), [dir]);
    out.c.push(await load(dir, PERM_OPS, { parallel }));
    await stopReady(c);
    if (variants.client) out.daemon.push(await daemonRun(daemon, dir, parallel, [POLICY, daemon.address, dir]));
    if (variants.rule) out.rule.push(await daemonRun(daemon, dir, parallel, ['policy-rules', daemon.address, dir]));
  }
  return out;
}

/** One load under a watch held by a client started with clientArgs, with the CPU each side used. */
async function daemonRun(daemon: Daemon, dir: string, parallel: number, clientArgs: string[]): Promise<Json> {
  const pol = await startReady(process.execPath, [CLIENTS, ...clientArgs]);
  const [d0, p0, m0] = [procStat(daemon.proc.pid!), procStat(pol.proc.pid!), machineStat()];
  const run = await load(dir, PERM_OPS, { parallel });
  const [d1, p1, m1] = [procStat(daemon.proc.pid!), procStat(pol.proc.pid!), machineStat()];
  // Where the CPU went: the daemon's and the client's share per decision, and the machine's idle time.
  run.daemon_cpu_us_per_op = ((d1.cpuMs - d0.cpuMs) * 1000) / run.ops;
  run.client_cpu_us_per_op = ((p1.cpuMs - p0.cpuMs) * 1000) / run.ops;
  run.machine_idle_pct = (100 * (m1.idle - m0.idle)) / (m1.total - m0.total);
  run.client = await stopReady(pol);
  await watchesClosed(daemon);
  return run;
}

/**
 * Whether the daemon decides by Subscribe.rules: a few opens under a watch
 * whose one rule allows everything; a daemon that ignores rules sends them
 * to the client instead (which answers them). Returns why not, or undefined.
 */
async function rulesMissing(daemon: Daemon, dir: string): Promise<string | undefined> {
  const pol = await startReady(process.execPath, [CLIENTS, 'policy-rules', daemon.address, dir]);
  await load(dir, 20);
  const got = await stopReady(pol);
  await watchesClosed(daemon);
  return got.asked > 0 ? `rules not supported: the daemon sent ${got.asked} of 20 opens to the client for a verdict` : undefined;
}

/**
 * Rule with cache: a client whose one rule allows everything with cache.
 * The first pass over NFILES files is decided in the daemon, which places
 * an ignore mark for each; later opens of the unchanged files are answered
 * by the kernel, never asked.
 */
async function ruleCacheCase(daemon: Daemon, dir: string): Promise<Json[]> {
  const reps: Json[] = [];
  const cacheRule = JSON.stringify({ rules: [{ match: {}, decision: 'DECISION_ALLOW', cache: true }] });
  for (let rep = 0; rep < LONG_REPS; rep++) {
    const none = await load(dir, PERM_OPS);
    const pol = await startReady(process.execPath, [CLIENTS, 'policy-rules', daemon.address, dir, cacheRule]);
    const d0 = procStat(daemon.proc.pid!);
    const first = await load(dir, NFILES);
    const d1 = procStat(daemon.proc.pid!);
    const cached = await load(dir, PERM_OPS);
    const d2 = procStat(daemon.proc.pid!);
    const got = await stopReady(pol);
    reps.push({
      none,
      first_pass: first,
      cached,
      first_pass_daemon_cpu_us_per_op: ((d1.cpuMs - d0.cpuMs) * 1000) / NFILES,
      cached_daemon_cpu_ms: d2.cpuMs - d1.cpuMs,
      asked: got.asked,
      decided_by_rule: got.stats ? Number(got.stats.decided_by_rule ?? 0) : null,
    });
    await watchesClosed(daemon);
  }
  return reps;
}

/** Mount a tmpfs on a new directory for a case's permission marks; undefined (and why) when it cannot. */
function benchTmpfs(prefix: string): { mnt?: string; why?: string } {
  const mnt = tempDir(prefix);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'fanotifyd-bench', mnt], { stdio: 'pipe' });
    return { mnt };
  } catch (err) {
    fs.rmSync(mnt, { recursive: true, force: true });
    return { why: `cannot mount a tmpfs for it: ${(err as Error).message.split('\n')[0]}` };
  }
}

function dropTmpfs(mnt: string): void {
  // Lazy: a group closing a moment after its client may still hold a directory there.
  execFileSync('umount', ['-l', mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
}

function makeFiles(dir: string, n: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
}

/**
 * A subtree watch on a tmpfs the bench mounts: `inside` is the watched
 * directory, `outside` a sibling on the same filesystem. Permission: opens
 * of the outside files, once each has been touched, against the same
 * opens with no fanotify. Notification: OPEN events from inside delivered
 * by a subtree mark and by an inode mark (on_child) of the same directory,
 * at the same rates.
 */
async function subtreeCase(daemon: Daemon): Promise<Json> {
  const client = connect(daemon.address);
  let scopes: string[];
  try {
    scopes = (await getInfo(client)).mark_scopes;
  } finally {
    client.close();
  }
  if (!scopes.includes('MARK_SCOPE_SUBTREE')) return { skipped: 'scope not supported: GetInfo lists no MARK_SCOPE_SUBTREE' };
  const { mnt, why } = benchTmpfs('fanotifyd-bench-subtree-');
  if (!mnt) return { skipped: why };
  try {
    const inside = path.join(mnt, 'inside');
    const outside = path.join(mnt, 'outside');
    makeFiles(inside, NOTIFY_FILES);
    makeFiles(outside, NFILES);
    const subtreePerm = JSON.stringify({ marks: [{ path: inside, scope: 'MARK_SCOPE_SUBTREE', events: ['EVENT_TYPE_OPEN_PERM'] }] });
    const permission: Json[] = [];
    for (let rep = 0; rep < LONG_REPS; rep++) {
      const none = await load(outside, PERM_OPS);
      const pol = await startReady(process.execPath, [CLIENTS, 'policy-wire', daemon.address, inside, subtreePerm]);
      const first = await load(outside, NFILES);
      const after = await load(outside, PERM_OPS);
      const got = await stopReady(pol);
      await watchesClosed(daemon);
      permission.push({ none, first_touch: first, after, client_answered: got.answered });
    }
    const notify: Json[] = [];
    const subtreeNotify = JSON.stringify({ marks: [{ path: inside, scope: 'MARK_SCOPE_SUBTREE', events: ['EVENT_TYPE_OPEN'] }] });
    for (const rate of SUBTREE_RATES) {
      const n = Math.floor(rate * NOTIFY_SECONDS);
      const row: Json = { rate, opens: n, inode: [], subtree: [] };
      for (let rep = 0; rep < LONG_REPS; rep++) {
        row.inode.push(await collect(daemon, inside, n, rate, ''));
        row.subtree.push(await collect(daemon, inside, n, rate, subtreeNotify));
      }
      notify.push(row);
    }
    return { permission, notify };
  } finally {
    dropTmpfs(mnt);
  }
}

/**
 * The wire collector on dir under a load of n opens at rate; overridesJson
 * changes its Subscribe. The daemon's CPU is taken from the Subscribed to
 * a second after the load (the collector has what it will get), so it is
 * what the events cost, not the group's opening and closing.
 */
async function collect(daemon: Daemon, dir: string, n: number, rate: number, overridesJson: string): Promise<Json> {
  const tel = await startReady(process.execPath, [CLIENTS, 'telemetry-wire', daemon.address, dir, '0', '', overridesJson]);
  const before = procStat(daemon.proc.pid!);
  const l = await load(dir, n, { rate, files: NOTIFY_FILES });
  await new Promise((r) => setTimeout(r, 1000));
  const after = procStat(daemon.proc.pid!);
  const got = await stopReady(tel);
  await watchesClosed(daemon);
  const cpuUs = (after.cpuMs - before.cpuMs) * 1000;
  return {
    achieved_rate: l.ops_per_s,
    delivered: got.events,
    dropped_client: got.droppedClient,
    kernel_overflows: got.kernelOverflows,
    lossless: got.events === n && got.withPath === n,
    daemon_cpu_us_per_open: cpuUs / n,
  };
}

/**
 * The cost of an event a filter drops: the same load of OPEN events under
 * a watch that delivers every one and under one whose exclude matches
 * every path (Match.paths "DIR/**"), daemon CPU per open for each; the
 * excluding watch without the kernel's pidfd per event
 * (skip_pid_verification), which the daemon must close even for an event
 * it drops; and a watch excluding the event type (Match.events OPEN),
 * which the daemon keeps out of its kernel marks, so it reads none.
 */
async function filterCase(daemon: Daemon, dir: string): Promise<Json> {
  const n = Math.floor(FILTER_RATE * NOTIFY_SECONDS);
  const exclude = [{ paths: [`${dir}/**`] }];
  const reps: Json[] = [];
  for (let rep = 0; rep < LONG_REPS; rep++) {
    const all = await collect(daemon, dir, n, FILTER_RATE, '');
    const excluded = await collect(daemon, dir, n, FILTER_RATE, JSON.stringify({ exclude }));
    if (excluded.delivered > 0) return { skipped: `filters not supported: a watch excluding every path delivered ${excluded.delivered} of ${n} events` };
    const excludedNoPidfd = await collect(daemon, dir, n, FILTER_RATE, JSON.stringify({ exclude, skip_pid_verification: true }));
    // The collector's mark asks for OPEN alone: the kernel then holds no mark of it at all.
    const byType = await collect(daemon, dir, n, FILTER_RATE, JSON.stringify({ exclude: [{ events: ['EVENT_TYPE_OPEN'] }] }));
    reps.push({ all, excluded, excluded_nopidfd: excludedNoPidfd, excluded_by_type: byType });
  }
  return { rate: FILTER_RATE, opens: n, reps };
}

/**
 * The verdict cache: a policy client that allows with cache set. The first
 * pass over NFILES files asks the client about each; later opens of the
 * unchanged files are answered by the kernel's ignore marks, never asked.
 */
async function cacheCase(daemon: Daemon, dir: string): Promise<Json[]> {
  const reps: Json[] = [];
  for (let rep = 0; rep < LONG_REPS; rep++) {
    const none = await load(dir, PERM_OPS);
    const pol = await startReady(process.execPath, [CLIENTS, 'policy-cache', daemon.address, dir]);
    const first = await load(dir, NFILES);
    const cached = await load(dir, PERM_OPS);
    const got = await stopReady(pol);
    // The client's answers: NFILES if every later open was answered by the kernel's cache.
    reps.push({ none, first_pass: first, cached, opens: NFILES + PERM_OPS, client_answered: got.answered });
    // The ignore marks live as long as the group, which closes with its
    // client's stream: the next repetition starts uncached again.
    await watchesClosed(daemon);
  }
  return reps;
}

/** 100 watches, each with its own directory and opener, all at once; LONG_REPS times. */
async function scaleCase(daemon: Daemon): Promise<Json[]> {
  const reps: Json[] = [];
  for (let rep = 0; rep < LONG_REPS; rep++) reps.push(await scaleOnce(daemon));
  return reps;
}

async function scaleOnce(daemon: Daemon): Promise<Json> {
  const watches = QUICK ? 10 : 100;
  const perWatch = QUICK ? 50 : 500;
  const dirs = Array.from({ length: watches }, () => tempDir('fanotifyd-bench-scale-'));
  for (const d of dirs) for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
  try {
    const pol = await startReady(process.execPath, [CLIENTS, 'policy-wire', daemon.address, dirs.join(',')]);
    const t0 = Date.now();
    const runs = await Promise.all(dirs.map((d) => loadFiles(d, 10, perWatch)));
    const secs = (Date.now() - t0) / 1000;
    await stopReady(pol);
    const durations = runs.map((r) => r.secs);
    return {
      watches,
      opens: watches * perWatch,
      decisions_per_s: (watches * perWatch) / secs,
      p99_us: Math.max(...runs.map((r) => r.p99_us)),
      p50_us: median(runs.map((r) => r.p50_us)),
      slowest_watch_s: Math.max(...durations),
      fastest_watch_s: Math.min(...durations),
    };
  } finally {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

function loadFiles(dir: string, files: number, n: number): Promise<Json> {
  return new Promise((resolve, reject) => {
    const p = spawn('timeout', ['120', path.join(BUILD, 'load'), dir, String(files), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

async function pingPong(): Promise<Json[]> {
  const runs: Json[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const sock = path.join(tempDir('fanotifyd-bench-'), 'echo.sock');
    const server = await startReady(process.execPath, [CLIENTS, 'pingpong-server', sock]);
    const client = await startReady(process.execPath, [CLIENTS, 'pingpong-client', sock, String(PERM_OPS)]);
    runs.push(await client.result);
    await stopReady(server);
    fs.rmSync(path.dirname(sock), { recursive: true, force: true });
  }
  return runs;
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * fatrace (Debian's package) on the same workload: it marks the whole mount
 * of its working directory, so its output is filtered to the load
 * generator's opens under dir. Reports how many it printed and whether it
 * was still alive at the end (it exits on a queue overflow).
 */
async function fatraceRun(dir: string, n: number, rate: number): Promise<Json> {
  const out = path.join(tempDir('fanotifyd-bench-fatrace-'), 'out.txt');
  const proc = spawn('fatrace', ['-c', '-f', 'O', '-C', 'load', '-o', out], { cwd: dir, stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  await load(dir, n, { rate, files: NOTIFY_FILES });
  await new Promise((r) => setTimeout(r, 1000));
  const alive = proc.exitCode === null && proc.signalCode === null;
  proc.kill('SIGINT');
  await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.on('close', r)));
  let events: number;
  try {
    events = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.includes(dir)).length;
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
  return { events, alive };
}

async function notifyCase(daemon: Daemon, dir: string): Promise<Json[]> {
  const withFatrace = !QUICK && hasCommand('fatrace');
  if (!withFatrace && !QUICK) console.error('bench: fatrace not installed (apt-get install fatrace); its column is left out');
  for (const mode of NOTIFY_MODES) if (!(mode in MODES)) throw new Error(`BENCH_MODES: unknown mode ${mode} (${Object.keys(MODES).join(', ')})`);
  const rows: Json[] = [];
  for (const rate of RATES) {
    const n = Math.floor(rate * NOTIFY_SECONDS);
    // Each field holds one entry per repetition; the repetitions alternate
    // between the modes and the baselines, so a slow minute of the VM
    // does not fall on one of them alone.
    const row: Json = { rate, opens: n, c: [], ...(withFatrace ? { fatrace: [] } : {}) };
    for (const mode of NOTIFY_MODES) row[mode] = [];
    for (let rep = 0; rep < LONG_REPS; rep++) await notifyRep(daemon, dir, rate, n, row, withFatrace);
    rows.push(row);
  }
  return rows;
}

/** One repetition at one rate: every mode, then the C reader, then fatrace, each appended to its list in row. */
async function notifyRep(daemon: Daemon, dir: string, rate: number, n: number, row: Json, withFatrace: boolean): Promise<void> {
  for (const mode of NOTIFY_MODES) {
    const before = procStat(daemon.proc.pid!);
    const tel = await startReady(process.execPath, [CLIENTS, COLLECTOR, daemon.address, dir, String(MODES[mode][0]), MODES[mode][1] ? 'skip-pid-verification' : '']);
    const l = await load(dir, n, { rate, files: NOTIFY_FILES });
    await new Promise((r) => setTimeout(r, 1000));
    const got = await stopReady(tel);
    await watchesClosed(daemon);
    const after = procStat(daemon.proc.pid!);
    row[mode].push({
      achieved_rate: l.ops_per_s,
      delivered: got.events,
      with_path: got.withPath,
      dropped_client: got.droppedClient,
      kernel_overflows: got.kernelOverflows,
      lossless: got.events === n && got.withPath === n,
      cpu_us_per_event: got.events ? ((after.cpuMs - before.cpuMs) * 1000) / got.events : null,
      collector_cpu_us_per_event: got.events ? (got.cpuMs * 1000) / got.events : null,
      rss_mb: after.rssMb,
    });
  }
  const reader = await startReady(path.join(BUILD, 'reader'), [dir]);
  const lc = await load(dir, n, { rate, files: NOTIFY_FILES });
  await new Promise((r) => setTimeout(r, 500));
  const c = await stopReady(reader);
  row.c.push({ achieved_rate: lc.ops_per_s, events: c.events, overflows: c.overflows, lossless: c.events === n });
  if (withFatrace) {
    const ft = await fatraceRun(dir, n, rate);
    row.fatrace.push({ events: ft.events, survived: ft.alive });
  }
}

/**
 * Every case asked for, into results. A case whose feature this daemon
 * lacks (rules, the subtree scope, filters) says why in results.skipped
 * and the run goes on: CI runs --quick against whatever the branch has.
 */
async function runCases(daemon: Daemon, dir: string, results: Json): Promise<void> {
  const skipped: Json = (results.skipped = {});
  const rulesWhy = runs('rules') || runs('rulecache') ? await rulesMissing(daemon, dir) : undefined;
  if (rulesWhy) {
    for (const c of ['rules', 'rulecache']) if (runs(c)) skipped[c] = rulesWhy;
    console.error(`bench: ${rulesWhy}; the rule cases are skipped`);
  }
  const variants = { client: runs('permission'), rule: runs('rules') && !rulesWhy };
  if (variants.client || variants.rule) {
    results.permission_1 = await permissionCase(daemon, dir, 1, variants);
    results.permission_8 = await permissionCase(daemon, dir, 8, variants);
  }
  if (runs('permission')) results.pingpong = await pingPong();
  if (runs('cache')) results.cache = await cacheCase(daemon, dir);
  if (runs('rulecache') && !rulesWhy) results.rule_cache = await ruleCacheCase(daemon, dir);
  if (runs('scale')) results.scale = await scaleCase(daemon);
  results.rss_after_permission_mb = procStat(daemon.proc.pid!).rssMb;
  if (runs('subtree')) {
    const st = await subtreeCase(daemon);
    if (st.skipped) {
      skipped.subtree = st.skipped;
      console.error(`bench: subtree case skipped: ${st.skipped}`);
    } else results.subtree = st;
  }
  if (runs('notify') || runs('filter')) {
    const notifyDir = tempDir('fanotifyd-bench-notify-');
    makeFiles(notifyDir, NOTIFY_FILES);
    try {
      if (runs('notify')) results.notify = await notifyCase(daemon, notifyDir);
      if (runs('filter')) {
        const fc = await filterCase(daemon, notifyDir);
        if (fc.skipped) {
          skipped.filter = fc.skipped;
          console.error(`bench: filter case skipped: ${fc.skipped}`);
        } else results.filter = fc;
      }
    } finally {
      fs.rmSync(notifyDir, { recursive: true, force: true });
    }
  }
}

/** The export case (bench/export.ts), with this file's load generator. */
async function runExport(daemon: Daemon, results: Json): Promise<void> {
  const ex = await exportCase(daemon, { quick: QUICK, reps: LONG_REPS, load: (dir, files, n, rate) => load(dir, n, { rate, files }) });
  if (ex.skipped) {
    results.skipped.export = ex.skipped;
    console.error(`bench: export case skipped: ${ex.skipped}`);
  } else results.export = ex;
}

async function main(): Promise<void> {
  buildC();
  const dir = tempDir('fanotifyd-bench-');
  for (let i = 0; i < NFILES; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  // BENCH_DAEMON_PROFILE=dir: the daemon writes a CPU profile there when it
  // stops; BENCH_DAEMON_NODE_ARGS: more options for the daemon's node.
  const prof = process.env.BENCH_DAEMON_PROFILE;
  const nodeArgs = [...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), ...(process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const daemon = await startDaemon([], { nodeArgs });
  const results: Json = {
    date: new Date().toISOString(),
    commit: (() => {
      try {
        return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    kernel: os.release(),
    node: process.version,
    quick: QUICK,
    reps: REPS,
  };
  try {
    await runCases(daemon, dir, results);
    if (runs('export')) await runExport(daemon, results);
    if (runs('idle')) {
      // Two windows: the first starts as the last case ends, when V8 may
      // still be collecting and shrinking the heap that load grew; the
      // second is the daemon at rest.
      const idleS = QUICK ? 1 : 10;
      const a = procStat(daemon.proc.pid!);
      await new Promise((r) => setTimeout(r, idleS * 1000));
      const b = procStat(daemon.proc.pid!);
      await new Promise((r) => setTimeout(r, idleS * 1000));
      const c = procStat(daemon.proc.pid!);
      results.idle = { seconds: idleS, cpu_ms: b.cpuMs - a.cpuMs, cpu_ms_second_window: c.cpuMs - b.cpuMs, rss_mb: c.rssMb };
    }
  } finally {
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  report(results);
  const outDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${results.date.replace(/[:.]/g, '-')}${QUICK ? '-quick' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify(results, null, 2));
  console.log(`\nwrote ${path.relative(ROOT, file)}`);
}

function report(r: Json): void {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const row = (name: string, runs: Json[], key: string) => {
    const s = stats(runs.map((x) => x[key]));
    return `${name.padEnd(34)} ${f(s.median).padStart(9)}  (${f(s.min)}-${f(s.max)})`;
  };
  console.log(`fanotifyd bench  commit ${r.commit}  kernel ${r.kernel}  ${r.machine.cpus} CPUs  reps ${r.reps}${r.quick ? '  QUICK' : ''}`);
  for (const [label, key] of [['1 opener', 'permission_1'], ['8 openers', 'permission_8']] as const) {
    const c = r[key];
    if (!c) continue;
    console.log(`\nPermission round trip, ${label} (open() latency, us; decisions/s)`);
    for (const m of ['p50_us', 'p99_us', 'ops_per_s']) {
      console.log(row(`  no fanotify ${m}`, c.none, m));
      console.log(row(`  C responder ${m}`, c.c, m));
      if (c.daemon) console.log(row(`  fanotifyd + remote client ${m}`, c.daemon, m));
      if (c.rule) console.log(row(`  fanotifyd, decided by a rule ${m}`, c.rule, m));
    }
    const added = (runs: Json[]) => median(runs.map((x) => x.p50_us)) - median(c.none.map((x: Json) => x.p50_us));
    const vsC = (runs: Json[]) => median(runs.map((x) => x.ops_per_s)) / median(c.c.map((x: Json) => x.ops_per_s));
    if (c.rule) {
      console.log(row('  rule case daemon_cpu_us_per_op', c.rule, 'daemon_cpu_us_per_op'));
      console.log(
        `  decided by a rule: ${vsC(c.rule).toFixed(2)}x the C responder's decisions/s (target >= 0.7x); added p50 ${f(added(c.rule))} us = ` +
          `${(added(c.rule) / added(c.c)).toFixed(2)}x the C responder's ${f(added(c.c))} us (target <= 1.5x)`,
      );
    }
    if (!c.daemon) continue;
    for (const m of ['daemon_cpu_us_per_op', 'client_cpu_us_per_op', 'machine_idle_pct']) console.log(row(`  fanotifyd case ${m}`, c.daemon, m));
    console.log(`  added p50: C ${f(added(c.c))} us, fanotifyd ${f(added(c.daemon))} us; daemon/C decisions/s ${vsC(c.daemon).toFixed(2)}x`);
    if (key === 'permission_1' && r.pingpong) {
      const pp = median(r.pingpong.map((x: Json) => x.p50_us));
      console.log(`  bare grpc-js ping-pong p50 ${f(pp)} us; fanotifyd added p50 / ping-pong p50 = ${(added(c.daemon) / pp).toFixed(2)}x (target <= 1.5x)`);
      // The remote path holds both round trips: kernel <-> daemon (what the C responder pays) and daemon <-> client (the ping-pong).
      console.log(`  fanotifyd added p50 / (C responder added p50 + ping-pong p50) = ${(added(c.daemon) / (added(c.c) + pp)).toFixed(2)}x`);
    }
  }
  /** Median, and the min-max when the reps differ; counts as integers. */
  const range = (xs: number[], count = false) => {
    const st = stats(xs);
    const g = count ? (x: number) => String(Math.round(x)) : f;
    return st.min === st.max ? g(st.median) : `${g(st.median)} (${g(st.min)}-${g(st.max)})`;
  };
  const col = (runs: Json[], pick: (x: Json) => number) => range(runs.map(pick));
  const vc: Json[] | undefined = r.cache;
  if (vc) {
    const v0 = vc[0];
    console.log(`\nVerdict cache (reps: ${vc.length}): first pass over ${NFILES} files p50 ${col(vc, (x) => x.first_pass.p50_us)} us; then ${v0.cached.ops} opens of the unchanged files p50 ${col(vc, (x) => x.cached.p50_us)} us, p99 ${col(vc, (x) => x.cached.p99_us)} us, ${col(vc, (x) => x.cached.ops_per_s)}/s (no fanotify: p50 ${col(vc, (x) => x.none.p50_us)} us, ${col(vc, (x) => x.none.ops_per_s)}/s); the client answered ${range(vc.map((x) => x.client_answered), true)} of ${v0.opens}`);
  }
  const rc: Json[] | undefined = r.rule_cache;
  if (rc) {
    const ratio = median(rc.map((x) => x.cached.ops_per_s)) / median(rc.map((x) => x.none.ops_per_s));
    console.log(
      `\nRule with cache (reps: ${rc.length}): first pass over ${NFILES} files decided in the daemon, p50 ${col(rc, (x) => x.first_pass.p50_us)} us, ${col(rc, (x) => x.first_pass_daemon_cpu_us_per_op)} us of daemon CPU each; ` +
        `then ${rc[0].cached.ops} opens of the unchanged files p50 ${col(rc, (x) => x.cached.p50_us)} us, ${col(rc, (x) => x.cached.ops_per_s)}/s (no fanotify: p50 ${col(rc, (x) => x.none.p50_us)} us, ${col(rc, (x) => x.none.ops_per_s)}/s) = ` +
        `${ratio.toFixed(2)}x (target >= 0.8x); daemon CPU in that phase ${col(rc, (x) => x.cached_daemon_cpu_ms)} ms; decided by rule (GetStats) ${rc.map((x) => x.decided_by_rule ?? 'n/a').join(', ')}`,
    );
  }
  const sc: Json[] | undefined = r.scale;
  if (sc) {
    console.log(`\nScale (reps: ${sc.length}): ${sc[0].watches} watches, ${sc[0].opens} permission-checked opens at once: ${col(sc, (x) => x.decisions_per_s)} decisions/s, open() p50 ${col(sc, (x) => x.p50_us)} us, p99 ${col(sc, (x) => x.p99_us)} us (target < 5 ms); slowest watch ${col(sc, (x) => x.slowest_watch_s)} s, fastest ${col(sc, (x) => x.fastest_watch_s)} s`);
  }
  if (r.notify) {
    console.log(`\nNotifications at fixed rates (opens -> events with path and process at a remote client); median (min-max) of ${r.notify[0].c.length} rep(s); ok k/n: lossless in k of n reps`);
    console.log(`  ${'rate/s'.padEnd(8)} ${'mode'.padEnd(17)} ${'achieved'.padStart(9)}  ${'delivered'.padEnd(28)} ${'ok'.padStart(4)}  ${'dropped (reported)'.padEnd(28)} ${'kernel-ovf'.padStart(10)} ${'cpu us/ev'.padStart(10)} ${'collector'.padStart(10)} ${'rss MB'.padStart(7)}`);
    console.log('  (achieved, cpu us/ev (daemon, per delivered event) and collector: medians; kernel-ovf and C reader overflows: sums over the reps; rss: the largest)');
    const okOf = (runs: Json[]) => `${runs.filter((x) => x.lossless).length}/${runs.length}`;
    for (const n of r.notify) {
      for (const mode of NOTIFY_MODES) {
        const d: Json[] = n[mode];
        const num = (k: string) => d.map((x) => x[k]).filter((x) => x !== null);
        console.log(
          `  ${String(n.rate).padEnd(8)} ${mode.padEnd(17)} ${f(median(num('achieved_rate'))).padStart(9)}  ${range(num('delivered'), true).padEnd(28)} ${okOf(d).padStart(4)}` +
            `  ${range(num('dropped_client'), true).padEnd(28)} ${String(num('kernel_overflows').reduce((a, b) => a + b, 0)).padStart(10)} ${(num('cpu_us_per_event').length ? f(median(num('cpu_us_per_event'))) : '-').padStart(10)} ${(num('collector_cpu_us_per_event').length ? f(median(num('collector_cpu_us_per_event'))) : '-').padStart(10)} ${f(Math.max(...num('rss_mb'))).padStart(7)}`,
        );
      }
      console.log(`  ${String(n.rate).padEnd(8)} C reader          ${f(median(n.c.map((x: Json) => x.achieved_rate))).padStart(9)}  ${range(n.c.map((x: Json) => x.events), true).padEnd(28)} ${okOf(n.c).padStart(4)}  (${n.c.reduce((a: number, x: Json) => a + x.overflows, 0)} overflows)`);
      if (n.fatrace) {
        const died = n.fatrace.filter((x: Json) => !x.survived).length;
        console.log(`  ${String(n.rate).padEnd(8)} fatrace           ${''.padStart(9)}  ${range(n.fatrace.map((x: Json) => x.events), true).padEnd(28)} ${`${n.fatrace.filter((x: Json) => x.events === n.opens).length}/${n.fatrace.length}`.padStart(4)}${died ? `  (died in ${died})` : ''}`);
      }
    }
    // The targets' questions, answered from the medians of this run.
    for (const mode of NOTIFY_MODES) {
      const lossless = r.notify.filter((n: Json) => n[mode].every((x: Json) => x.lossless)).map((n: Json) => n.rate);
      const vsC = r.notify.map((n: Json) => `${n.rate}: ${(median(n[mode].map((x: Json) => x.delivered)) / Math.max(1, median(n.c.map((x: Json) => x.events)))).toFixed(2)}x`);
      const vsF = r.notify[0].fatrace ? r.notify.map((n: Json) => `${n.rate}: ${(median(n[mode].map((x: Json) => x.delivered)) / Math.max(1, median(n.fatrace.map((x: Json) => x.events)))).toFixed(2)}x`) : [];
      console.log(`  ${mode}: lossless in every rep at ${lossless.length ? lossless.join(', ') : 'no rate'} /s; delivered vs C reader ${vsC.join(', ')}${vsF.length ? `; vs fatrace ${vsF.join(', ')}` : ''}`);
    }
  }
  reportSubtree(r.subtree, f, col, range);
  const fl: Json | undefined = r.filter;
  if (fl) {
    const cpu = (k: string) => col(fl.reps, (x) => x[k].daemon_cpu_us_per_open);
    const excluded = median(fl.reps.map((x: Json) => x.excluded.daemon_cpu_us_per_open));
    console.log(
      `\nFiltered-out notifications (reps: ${fl.reps.length}): ${fl.opens} opens at ${fl.rate}/s; daemon CPU per open ${cpu('all')} us delivering every event (${col(fl.reps, (x) => x.all.delivered)} delivered), ` +
        `${cpu('excluded')} us with an exclude matching every path (target <= 2 us: ${excluded <= 2 ? 'met' : 'not met'}), ${cpu('excluded_nopidfd')} us for the same without pidfds` +
        (fl.reps[0].excluded_by_type ? `, ${cpu('excluded_by_type')} us with an exclude on the event type (kept out of the kernel marks)` : ''),
    );
  }
  if (r.export) for (const line of exportReport(r.export)) console.log(line);
  for (const [name, why] of Object.entries(r.skipped ?? {})) console.log(`\nSkipped ${name}: ${why}`);
  if (r.idle) console.log(`\nIdle: ${r.idle.cpu_ms} ms CPU in the ${r.idle.seconds} s after the last case, ${r.idle.cpu_ms_second_window} ms in the ${r.idle.seconds} s after that; RSS ${f(r.idle.rss_mb)} MB`);
}

type Fmt = (x: number) => string;
type Col = (runs: Json[], pick: (x: Json) => number) => string;

function reportSubtree(st: Json | undefined, f: Fmt, col: Col, range: (xs: number[], count?: boolean) => string): void {
  if (!st) return;
  const p: Json[] = st.permission;
  const ratio = median(p.map((x) => x.after.ops_per_s)) / median(p.map((x) => x.none.ops_per_s));
  console.log(
    `\nSubtree (reps: ${p.length}): opens of ${NFILES} files outside the watched directory on the same tmpfs, after their first touch (p50 ${col(p, (x) => x.first_touch.p50_us)} us): ` +
      `${col(p, (x) => x.after.ops_per_s)}/s, p50 ${col(p, (x) => x.after.p50_us)} us, against ${col(p, (x) => x.none.ops_per_s)}/s with no fanotify = ${ratio.toFixed(2)}x (target >= 0.8x); ` +
      `the client answered ${range(p.map((x) => x.client_answered), true)}`,
  );
  for (const row of st.notify) {
    const ok = (runs: Json[]) => `${runs.filter((x) => x.lossless).length}/${runs.length}`;
    const line = (name: string, runs: Json[]) =>
      `${name} ${range(runs.map((x) => x.delivered), true)} delivered, lossless ${ok(runs)}, daemon ${f(median(runs.map((x) => x.daemon_cpu_us_per_open)))} us/open`;
    console.log(`  ${row.rate}/s, ${row.opens} opens inside: ${line('inode mark', row.inode)}; ${line('subtree mark', row.subtree)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
