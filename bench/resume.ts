// What named watches cost, before and after, in one run:
//   node dist/bench/resume.js [--before PATH/TO/dist/src/daemon/main.js] [--reps N]
// 1. Daemon CPU per event of a notification collector at BENCH_RESUME_RATE
//    (100,000 opens/s by default), alternating between: the --before
//    daemon (a build without sequences or journals), this build's unnamed
//    watch (sequence numbers only), and this build's named watch (sequence
//    numbers, the replay journal and the fan-out, one stream). The
//    collector is the same telemetry-wire client every time; a daemon
//    without named watches ignores Subscribe.name.
// 2. Replay: a named watch whose stream went away holds BENCH_REPLAY_EVENTS
//    (100,000) events; a stream attaches from the oldest and reads to the
//    last sequence. The time is from its Attach to its last event.
// BENCH_RESUME_BUFFER=N starts this build's daemon with --resume-buffer-bytes N:
// a buffer the 200,000 events of a run overfill shows the journal recycling
// its chunks (its steady state) rather than filling fresh memory.
// Prints one JSON object.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, getInfo, startDaemon, tempDir, WatchStream, type Daemon } from '../test/fixtures/harness';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'bench', 'build');
const CLIENTS = path.join(__dirname, 'clients.js');
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const BEFORE = opt('--before');
const REPS = Number(opt('--reps') ?? 3);
const RATE = Number(process.env.BENCH_RESUME_RATE ?? 100_000);
const SECONDS = 2;
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY_EVENTS ?? 100_000);
/** Distinct files: the kernel merges an open into an identical one still queued. */
const FILES = 50_000;

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = Record<string, any>;

function startReady(cmd: string, argv: string[]): Promise<{ proc: ChildProcess; result: Promise<Json> }> {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv[0]} not ready in 20 s`)), 20_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve({ proc, result: new Promise<Json>((res) => proc.on('close', () => res(JSON.parse(out.split('ready\n')[1].trim() || '{}')))) });
      }
    });
    proc.on('exit', (code) => code && reject(new Error(`${argv.join(' ')} exited ${code}`)));
  });
}

function load(dir: string, n: number, rate: number): Promise<Json> {
  return new Promise((resolve, reject) => {
    const p = spawn('timeout', ['120', path.join(BUILD, 'load'), dir, String(FILES), String(n), String(rate)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(stat[11]) + Number(stat[12])) * 1000) / 100;
}

async function watchesClosed(daemon: Daemon): Promise<void> {
  const client = connect(daemon.address);
  try {
    for (let i = 0; i < 200 && (await getInfo(client)).active_watches > 0; i++) await new Promise((r) => setTimeout(r, 20));
  } finally {
    client.close();
  }
}

/** One collector run: the daemon's CPU per event delivered, and whether every open was delivered. */
async function collect(daemon: Daemon, dir: string, subscribeExtra: object): Promise<Json> {
  const n = RATE * SECONDS;
  const before = cpuMs(daemon.proc.pid!);
  const tel = await startReady(process.execPath, [CLIENTS, 'telemetry-wire', daemon.address, dir, '2', '', JSON.stringify(subscribeExtra)]);
  const l = await load(dir, n, RATE);
  await new Promise((r) => setTimeout(r, 1000));
  tel.proc.kill('SIGTERM');
  const got = await tel.result;
  await watchesClosed(daemon);
  const cpu = cpuMs(daemon.proc.pid!) - before;
  // Per event read: a collector that falls behind (this VM's two cores are shared) makes an unnamed watch drop, which costs less than delivering.
  const read = got.events + got.droppedClient;
  return {
    achieved_rate: Math.round(l.ops_per_s),
    delivered: got.events,
    dropped_client: got.droppedClient,
    kernel_overflows: got.kernelOverflows,
    lossless: got.events === n,
    cpu_us_per_event: read ? (cpu * 1000) / read : null,
  };
}

/** Fill a lingering named watch with REPLAY_EVENTS events, then time a stream that attaches and reads them all. */
async function replay(daemon: Daemon, dir: string, rep: number): Promise<Json> {
  const client = connect(daemon.address);
  const name = `replay-${rep}`;
  try {
    const s = new WatchStream(client, { marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }], report_mode: 'REPORT_MODE_DFID_NAME', name, linger_ms: 120_000 });
    await s.subscribed();
    s.cancel();
    await load(dir, REPLAY_EVENTS, 0);
    // The daemon reads the kernel's queue into the journal within milliseconds of the load's end.
    await new Promise((r) => setTimeout(r, 1000));
    const before = cpuMs(daemon.proc.pid!);
    const a = await startReady(process.execPath, [CLIENTS, 'attach-wire', daemon.address, name]);
    const r = await a.result;
    return { ...r, daemon_cpu_ms: cpuMs(daemon.proc.pid!) - before };
  } finally {
    client.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  fs.mkdirSync(BUILD, { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-o', path.join(BUILD, 'load'), path.join(ROOT, 'bench', 'c', 'load.c')]);
  const dir = tempDir('fanotifyd-bench-resume-');
  // The replay watches linger on a directory of their own, out of the collector runs' way.
  const replayDir = tempDir('fanotifyd-bench-replay-');
  for (let i = 0; i < FILES; i++) {
    fs.writeFileSync(path.join(dir, `f${i}`), '');
    fs.writeFileSync(path.join(replayDir, `f${i}`), '');
  }
  const buffer = process.env.BENCH_RESUME_BUFFER;
  const after = await startDaemon(buffer ? ['--resume-buffer-bytes', buffer] : []);
  const before = BEFORE ? await startDaemon([], { script: BEFORE }) : undefined;
  const runs: Json = { before: [], unnamed: [], named: [], replay: [] };
  try {
    for (let rep = 0; rep < REPS; rep++) {
      if (before) runs.before.push(await collect(before, dir, { name: `bench-${rep}` }));
      runs.unnamed.push(await collect(after, dir, {}));
      runs.named.push(await collect(after, dir, { name: `bench-${rep}` }));
      runs.replay.push(await replay(after, replayDir, rep));
    }
  } finally {
    await after.stop();
    await before?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(replayDir, { recursive: true, force: true });
  }
  const cpu = (k: string) => (runs[k].length ? median(runs[k].map((r: Json) => r.cpu_us_per_event)) : null);
  const summary = {
    rate: RATE,
    resume_buffer_bytes: buffer ?? 'default',
    cpu_us_per_event: { before: cpu('before'), unnamed: cpu('unnamed'), named: cpu('named') },
    named_over_before: before ? cpu('named')! / cpu('before')! : null,
    unnamed_over_before: before ? cpu('unnamed')! / cpu('before')! : null,
    replay_ms: median(runs.replay.map((r: Json) => r.ms)),
    replay_events: median(runs.replay.map((r: Json) => r.events)),
  };
  console.log(JSON.stringify({ summary, runs }, null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
