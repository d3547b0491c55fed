// npm run bench: fanotifyd against the kernel's own limits, in one run.
// Every daemon figure stands beside its baseline from the same run, as a
// ratio, because absolute numbers drift between machines and runs.
//   node dist/bench/run.js [--quick] [--reps N] [--only permission,cache,scale,notify,idle]
// BENCH_RATES (comma-separated events/s) and BENCH_MODES (fd,dfid_name,dfid_name_nopidfd) set
// the notification case's rates and report modes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startDaemon, tempDir, type Daemon } from '../test/fixtures/harness';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'bench', 'build');
const CLIENTS = path.join(__dirname, 'clients.js');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const REPS = Number(args[args.indexOf('--reps') + 1]) || (QUICK ? 1 : 5);
const PERM_OPS = QUICK ? 2_000 : 20_000;
const NOTIFY_SECONDS = QUICK ? 0.2 : 2;
const RATES = QUICK ? [25_000] : (process.env.BENCH_RATES ?? "25000,50000,100000,200000,400000").split(",").map(Number);
const ONLY = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1].split(',')) : undefined;
const runs = (name: string) => !ONLY || ONLY.has(name);
/** Report modes of the notification case, as the telemetry client's ReportMode number. */
/** Notification modes: the ReportMode number, and whether the collector sets skip_pid_verification. */
const MODES: Record<string, [number, boolean]> = { fd: [1, false], dfid_name: [2, false], dfid_name_nopidfd: [2, true] };
const NOTIFY_MODES = (process.env.BENCH_MODES ?? (QUICK ? 'fd' : 'fd,dfid_name,dfid_name_nopidfd')).split(',');
const NFILES = 1000;
/** Distinct files for the notification case: the kernel merges an event into an identical one still queued, so too few files would read as loss. */
const NOTIFY_FILES = QUICK ? 1000 : 50_000;

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

async function permissionCase(daemon: Daemon, dir: string, parallel: number): Promise<Json> {
  const out: Json = { none: [], c: [], daemon: [] };
  for (let rep = 0; rep < REPS; rep++) {
    out.none.push(await load(dir, PERM_OPS, { parallel }));
    const c = await startReady(path.join(BUILD, 'responder'), [dir]);
    out.c.push(await load(dir, PERM_OPS, { parallel }));
    await stopReady(c);
    const pol = await startReady(process.execPath, [CLIENTS, 'policy', daemon.address, dir]);
    const [d0, p0, m0] = [procStat(daemon.proc.pid!), procStat(pol.proc.pid!), machineStat()];
    const run = await load(dir, PERM_OPS, { parallel });
    const [d1, p1, m1] = [procStat(daemon.proc.pid!), procStat(pol.proc.pid!), machineStat()];
    // Where the CPU went: the daemon's and the client's share per decision, and the machine's idle time.
    run.daemon_cpu_us_per_op = ((d1.cpuMs - d0.cpuMs) * 1000) / run.ops;
    run.client_cpu_us_per_op = ((p1.cpuMs - p0.cpuMs) * 1000) / run.ops;
    run.machine_idle_pct = (100 * (m1.idle - m0.idle)) / (m1.total - m0.total);
    out.daemon.push(run);
    await stopReady(pol);
  }
  return out;
}

/**
 * The verdict cache: a policy client that allows with cache set. The first
 * pass over NFILES files asks the client about each; later opens of the
 * unchanged files are answered by the kernel's ignore marks, never asked.
 */
async function cacheCase(daemon: Daemon, dir: string): Promise<Json> {
  const none = await load(dir, PERM_OPS);
  const pol = await startReady(process.execPath, [CLIENTS, 'policy-cache', daemon.address, dir]);
  const first = await load(dir, NFILES);
  const cached = await load(dir, PERM_OPS);
  const got = await stopReady(pol);
  // The client's answers: NFILES if every later open was answered by the kernel's cache.
  return { none, first_pass: first, cached, opens: NFILES + PERM_OPS, client_answered: got.answered };
}

/** 100 watches, each with its own directory and opener, all at once. */
async function scaleCase(daemon: Daemon): Promise<Json> {
  const watches = QUICK ? 10 : 100;
  const perWatch = QUICK ? 50 : 500;
  const dirs = Array.from({ length: watches }, () => tempDir('fanotifyd-bench-scale-'));
  for (const d of dirs) for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
  try {
    const pol = await startReady(process.execPath, [CLIENTS, 'policy-many', daemon.address, dirs.join(',')]);
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
  let events = 0;
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
  const rows: Json[] = [];
  for (const rate of RATES) {
    const n = Math.floor(rate * NOTIFY_SECONDS);
    const row: Json = { rate, opens: n };
    for (const mode of NOTIFY_MODES) {
      if (!(mode in MODES)) throw new Error(`BENCH_MODES: unknown mode ${mode} (${Object.keys(MODES).join(', ')})`);
      const before = procStat(daemon.proc.pid!);
      const tel = await startReady(process.execPath, [CLIENTS, 'telemetry', daemon.address, dir, String(MODES[mode][0]), MODES[mode][1] ? 'skip-pid-verification' : '']);
      const l = await load(dir, n, { rate, files: NOTIFY_FILES });
      await new Promise((r) => setTimeout(r, 1000));
      const got = await stopReady(tel);
      const after = procStat(daemon.proc.pid!);
      row[mode] = {
        achieved_rate: l.ops_per_s,
        delivered: got.events,
        with_path: got.withPath,
        dropped_client: got.droppedClient,
        kernel_overflows: got.kernelOverflows,
        lossless: got.events === n && got.withPath === n,
        cpu_us_per_event: got.events ? ((after.cpuMs - before.cpuMs) * 1000) / got.events : null,
        collector_cpu_us_per_event: got.events ? (got.cpuMs * 1000) / got.events : null,
        rss_mb: after.rssMb,
      };
    }
    const reader = await startReady(path.join(BUILD, 'reader'), [dir]);
    const lc = await load(dir, n, { rate, files: NOTIFY_FILES });
    await new Promise((r) => setTimeout(r, 500));
    const c = await stopReady(reader);
    row.c = { achieved_rate: lc.ops_per_s, events: c.events, overflows: c.overflows, lossless: c.events === n };
    const ft = withFatrace ? await fatraceRun(dir, n, rate) : undefined;
    if (ft) row.fatrace = { events: ft.events, survived: ft.alive };
    rows.push(row);
  }
  return rows;
}

async function main(): Promise<void> {
  buildC();
  const dir = tempDir('fanotifyd-bench-');
  for (let i = 0; i < NFILES; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  const daemon = await startDaemon();
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
    if (runs('permission')) {
      results.permission_1 = await permissionCase(daemon, dir, 1);
      results.permission_8 = await permissionCase(daemon, dir, 8);
      results.pingpong = await pingPong();
    }
    if (runs('cache')) results.cache = await cacheCase(daemon, dir);
    if (runs('scale')) results.scale = await scaleCase(daemon);
    results.rss_after_permission_mb = procStat(daemon.proc.pid!).rssMb;
    if (runs('notify')) {
      const notifyDir = tempDir('fanotifyd-bench-notify-');
      for (let i = 0; i < NOTIFY_FILES; i++) fs.writeFileSync(path.join(notifyDir, `f${i}`), '');
      try {
        results.notify = await notifyCase(daemon, notifyDir);
      } finally {
        fs.rmSync(notifyDir, { recursive: true, force: true });
      }
    }
    if (runs('idle')) {
      const idleS = QUICK ? 1 : 10;
      const a = procStat(daemon.proc.pid!);
      await new Promise((r) => setTimeout(r, idleS * 1000));
      const b = procStat(daemon.proc.pid!);
      results.idle = { seconds: idleS, cpu_ms: b.cpuMs - a.cpuMs, rss_mb: b.rssMb };
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
      console.log(row(`  fanotifyd + remote client ${m}`, c.daemon, m));
    }
    for (const m of ['daemon_cpu_us_per_op', 'client_cpu_us_per_op', 'machine_idle_pct']) console.log(row(`  fanotifyd case ${m}`, c.daemon, m));
    const added = (runs: Json[]) => median(runs.map((x) => x.p50_us)) - median(c.none.map((x: Json) => x.p50_us));
    console.log(`  added p50: C ${f(added(c.c))} us, fanotifyd ${f(added(c.daemon))} us; daemon/C decisions/s ${(median(c.daemon.map((x: Json) => x.ops_per_s)) / median(c.c.map((x: Json) => x.ops_per_s))).toFixed(2)}x`);
    if (key === 'permission_1') {
      const pp = median(r.pingpong.map((x: Json) => x.p50_us));
      console.log(`  bare grpc-js ping-pong p50 ${f(pp)} us; fanotifyd added p50 / ping-pong p50 = ${(added(c.daemon) / pp).toFixed(2)}x (target <= 1.5x)`);
      // The remote path holds both round trips: kernel <-> daemon (what the C responder pays) and daemon <-> client (the ping-pong).
      console.log(`  fanotifyd added p50 / (C responder added p50 + ping-pong p50) = ${(added(c.daemon) / (added(c.c) + pp)).toFixed(2)}x`);
    }
  }
  const vc = r.cache;
  if (vc) {
    console.log(`\nVerdict cache: first pass over ${NFILES} files p50 ${f(vc.first_pass.p50_us)} us; then ${vc.cached.ops} opens of the unchanged files p50 ${f(vc.cached.p50_us)} us, p99 ${f(vc.cached.p99_us)} us, ${f(vc.cached.ops_per_s)}/s (no fanotify: p50 ${f(vc.none.p50_us)} us, ${f(vc.none.ops_per_s)}/s); the client answered ${vc.client_answered} of ${vc.opens}`);
  }
  const sc = r.scale;
  if (sc) console.log(`\nScale: ${sc.watches} watches, ${sc.opens} permission-checked opens at once: ${f(sc.decisions_per_s)} decisions/s, open() p50 ${f(sc.p50_us)} us, p99 ${f(sc.p99_us)} us (target < 5 ms); slowest watch ${sc.slowest_watch_s.toFixed(2)} s, fastest ${sc.fastest_watch_s.toFixed(2)} s`);
  if (r.notify) {
    console.log('\nNotifications at fixed rates (opens -> events with path and process at a remote client)');
    console.log('  rate/s   mode               achieved  delivered (ok = lossless)  dropped(reported)  kernel-ovf  cpu us/ev  collector  rss MB');
    for (const n of r.notify) {
      for (const mode of NOTIFY_MODES) {
        const d = n[mode];
        console.log(
          `  ${String(n.rate).padEnd(8)} ${mode.padEnd(17)} ${f(d.achieved_rate).padStart(9)}  ${`${d.delivered}/${n.opens}${d.lossless ? ' ok' : ''}`.padStart(16)}` +
            `${String(d.dropped_client).padStart(19)} ${String(d.kernel_overflows).padStart(11)} ${(d.cpu_us_per_event === null ? '-' : f(d.cpu_us_per_event)).padStart(10)} ${(d.collector_cpu_us_per_event === null ? '-' : f(d.collector_cpu_us_per_event)).padStart(10)} ${f(d.rss_mb).padStart(7)}`,
        );
      }
      console.log(`  ${String(n.rate).padEnd(8)} C reader          ${f(n.c.achieved_rate).padStart(9)}  ${`${n.c.events}/${n.opens}${n.c.lossless ? ' ok' : ''}`.padStart(16)}  (${n.c.overflows} overflows)`);
      if (n.fatrace) console.log(`  ${String(n.rate).padEnd(8)} fatrace           ${`${n.fatrace.events}/${n.opens}`.padStart(27)}${n.fatrace.survived ? '' : ' (fatrace died)'}`);
    }
  }
  if (r.idle) console.log(`\nIdle: ${r.idle.cpu_ms} ms CPU in ${r.idle.seconds} s; RSS ${f(r.idle.rss_mb)} MB`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
