// The export case of npm run bench (--only export): open() -> daemon ->
// fanotify-export -> JetStream acknowledgment, end to end, against the
// lower of two rates measured in the same run:
//   - the daemon's own lossless notification rate (the telemetry-wire
//     collector of the notify case, at rising rates, the highest at which
//     every event arrived);
//   - a bare publisher (export-publisher.ts) with the same client library,
//     window and message size against the same nats-server.
// The end-to-end rate is opens / (first open to the last acknowledgment),
// for BENCH_EXPORT_OPENS opens offered as fast as the load generator goes
// (the daemon's journal holds what the exporter has not taken yet). Also:
// the exporter's CPU per event, publish-to-ack p50/p99 (from its histogram)
// and the stored bytes per event. The end-to-end run is made twice: one
// event per message (the default) and --batch BENCH_EXPORT_BATCH (64), whose
// messages carry what waits for the window as one EventBatch; a broker
// slower per message than the daemon is per event is what batches are for,
// so their rate is set against the daemon's alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { type Daemon, tempDir } from '../test/fixtures/harness';
import { startExporter, subscribeFile } from '../test/fixtures/exporter';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { readStream, startNats } from '../test/fixtures/nats';
import { waitFor } from '../test/fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = Record<string, any>;

const CLIENTS = path.join(__dirname, 'clients.js');
const PUBLISHER = path.join(__dirname, 'export-publisher.js');
const WINDOW = Number(process.env.BENCH_EXPORT_WINDOW ?? 256);
const BATCH = Number(process.env.BENCH_EXPORT_BATCH ?? 64);

export interface ExportBenchOptions {
  quick: boolean;
  /** The C load generator: (dir, files, n, rate 0 = flat out) -> {ops, ops_per_s}. */
  load(dir: string, files: number, n: number, rate: number): Promise<Json>;
  reps: number;
}

function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(stat[11]) + Number(stat[12])) * 1000) / 100;
}

function readyChild(cmd: string, argv: string[]): Promise<{ proc: ChildProcess; result: Promise<Json> }> {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready\n')) resolve({ proc, result: new Promise((res) => proc.on('close', () => res(JSON.parse(out.split('ready\n')[1].trim() || '{}')))) });
    });
    proc.on('exit', (code) => reject(new Error(`${argv[0]} exited ${code}`)));
  });
}

/** Quantile q of a Prometheus histogram, by linear interpolation inside its bucket. */
function histogramQuantile(text: string, name: string, q: number): number | null {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as const);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (!total) return null;
  let prev: readonly [number, number] = [0, 0];
  for (const b of buckets) {
    if (b[1] >= q * total) return b[0] === Infinity ? prev[0] : prev[0] + ((b[0] - prev[0]) * (q * total - prev[1])) / Math.max(1, b[1] - prev[1]);
    prev = b;
  }
  return null;
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => http.get(`http://127.0.0.1:${port}/metrics`, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve(body));
  }).on('error', reject));
}

/** A loopback port nothing listens on now, for the exporter's metrics. */
function freePort(): Promise<number> {
  const server = http.createServer();
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }),
  );
}

/** The highest of `rates` at which the collector got every event (0: none). */
async function daemonLosslessRate(daemon: Daemon, dir: string, files: number, rates: number[], o: ExportBenchOptions): Promise<Json> {
  const tried: Json[] = [];
  for (const rate of rates) {
    // As many opens as distinct files: the kernel merges an open into an identical one still queued.
    const n = Math.min(files, Math.floor(rate * (o.quick ? 0.2 : 2)));
    const tel = await readyChild(process.execPath, [CLIENTS, 'telemetry-wire', daemon.address, dir, '1', '']);
    const l = await o.load(dir, files, n, rate);
    // Longer than the notify case's second: on a loaded machine the last batches may still be on their way.
    await new Promise((r) => setTimeout(r, 3000));
    tel.proc.kill('SIGTERM');
    const got = await tel.result;
    tried.push({ rate, achieved: Math.round(l.ops_per_s), delivered: got.events, lossless: got.events === n });
  }
  const ok = tried.filter((t) => t.lossless).map((t) => t.achieved);
  return { tried, lossless_rate: ok.length ? Math.max(...ok) : 0 };
}

async function endToEnd(daemon: Daemon, nats: { url: string; storeDir: string }, dir: string, n: number, o: ExportBenchOptions, run: string, batch: number): Promise<Json> {
  const port = await freePort();
  const stream = `BENCH${run}`;
  const e = await startExporter([
    ...['--daemon', daemon.address, '--subscribe', subscribeFile(dir, ['EVENT_TYPE_OPEN']), '--nats', nats.url, '--stream', stream, '--prefix', `bench${run}`, '--node', 'bench'],
    ...['--watch', `bench${run}`, '--window', String(WINDOW), '--batch', String(batch), '--metrics', `127.0.0.1:${port}`, '--linger-ms', '500'],
  ]);
  await waitFor(() => e.logs.some((l) => l.msg === 'subscribed'), 20_000, 'the exporter to subscribe');
  const cpu0 = cpuMs(e.proc.pid!);
  const t0 = performance.now();
  const l = await o.load(dir, n, n, 0);
  // Done when every open is stored, or when the kernel dropped some (an
  // Overflow record; the daemon shares the CPUs with the rest here) and the
  // exporter has nothing left: no lag, nothing in flight or read ahead.
  // Polled on NATS (the end of the last stored record's sequence range), one
  // connection for it all: the exporter's metrics are read only to confirm,
  // since a scrape every 50 ms would load the process being measured.
  const nc = await connect({ servers: nats.url.replace('nats://', '') });
  const jsm = await jetstreamManager(nc);
  const cursor = async () => Number(/^fanotify_export_cursor_sequence (\d+)$/m.exec(await scrape(port))?.[1] ?? 0);
  let stored = 0;
  let last = t0;
  await waitFor(
    async () => {
      const m = await jsm.streams.getMessage(stream, { last_by_subj: `bench${run}.bench.>` }).catch(() => null);
      const now = Number(m?.header.get('Fanotify-Sequence').split('-').pop() ?? 0);
      if (now > stored) [stored, last] = [now, performance.now()];
      if (stored >= n && (await cursor()) >= n) return true;
      if (performance.now() - last < 2000) return false;
      const text = await scrape(port);
      return ['lag_sequences', 'in_flight', 'queued'].every((k) => new RegExp(`^fanotify_export_${k} 0$`, 'm').test(text));
    },
    600_000,
    `${n} events acknowledged, or the exporter idle`,
    50,
  );
  await nc.close();
  const secs = (last - t0) / 1000;
  const cpu = cpuMs(e.proc.pid!) - cpu0;
  const text = await scrape(port);
  await e.stop();
  // Its watch lingers 500 ms, reading every open of dir: gone before the next measurement.
  await new Promise((r) => setTimeout(r, 1500));
  const messages = await readStream(nats.url, stream);
  const eventBytes = messages.reduce((s, m) => s + m.data.length, 0) / stored;
  const bytes = spawnSync('du', ['-sb', path.join(nats.storeDir, 'jetstream', '$G', 'streams', stream)], { encoding: 'utf8' }).stdout.split('\t')[0];
  return {
    opens_per_s_offered: Math.round(l.ops_per_s),
    batch,
    stored,
    messages: messages.length,
    end_to_end_per_s: Math.round(stored / secs),
    exporter_cpu_us_per_event: (cpu * 1000) / stored,
    ack_p50_ms: (histogramQuantile(text, 'fanotify_export_ack_latency_seconds', 0.5) ?? 0) * 1000,
    ack_p99_ms: (histogramQuantile(text, 'fanotify_export_ack_latency_seconds', 0.99) ?? 0) * 1000,
    stored_bytes_per_event: Number(bytes) / stored,
    event_bytes: eventBytes,
  };
}

/** The case; `skipped` says why when nats-server is missing. */
export async function exportCase(daemon: Daemon, o: ExportBenchOptions): Promise<Json> {
  if (spawnSync('nats-server', ['--version']).error) return { skipped: 'nats-server is not installed (apt-get install nats-server)' };
  const n = o.quick ? 2_000 : Number(process.env.BENCH_EXPORT_OPENS ?? 50_000);
  const dir = tempDir('fanotifyd-bench-export-');
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  const nats = await startNats();
  const result: Json = { opens: n, window: WINDOW, batch: BATCH, end_to_end: [], batched: [], publisher: [], daemon: [] };
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      const e2e = await endToEnd(daemon, nats, dir, n, o, String(rep), 1);
      result.end_to_end.push(e2e);
      result.batched.push(await endToEnd(daemon, nats, dir, n, o, `${rep}B`, BATCH));
      // The bare publisher sends what the exporter sent: one message per event, of the measured protobuf size.
      const size = Math.max(1, Math.round(e2e.event_bytes ?? 0)) || 200;
      const pub = await readyChild(process.execPath, [PUBLISHER, nats.url, `PUB${rep}`, `pub${rep}.x`, String(n), String(WINDOW), String(size)]);
      result.publisher.push(await pub.result);
      result.daemon.push(await daemonLosslessRate(daemon, dir, n, o.quick ? [10_000] : [20_000, 40_000, 80_000], o));
    }
  } finally {
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The report's lines: each rate as a median of the reps, and the ratio the issue asks for. */
export function exportReport(r: Json): string[] {
  const e2e = median(r.end_to_end.map((x: Json) => x.end_to_end_per_s));
  const pub = median(r.publisher.map((x: Json) => x.acked_per_s));
  const daemon = median(r.daemon.map((x: Json) => x.lossless_rate));
  const floor = Math.min(pub, daemon || Infinity);
  const m = (k: string, from = r.end_to_end) => median(from.map((x: Json) => x[k]));
  return [
    `\nExport to NATS JetStream (${r.opens} opens, window ${r.window}; medians of ${r.end_to_end.length} rep(s))`,
    `  end to end, open() -> JetStream ack      ${Math.round(e2e)} events/s (stored ${r.end_to_end.map((x: Json) => x.stored).join(', ')} of ${r.opens} opens: the rest lost to the kernel's queue, in an Overflow record)`,
    `  bare publisher, same client/window/size  ${Math.round(pub)} acks/s (p50 ${m('p50_ms', r.publisher).toFixed(2)} ms, p99 ${m('p99_ms', r.publisher).toFixed(2)} ms, ${m('cpu_us_per_msg', r.publisher).toFixed(1)} us CPU/msg)`,
    `  daemon lossless notification rate        ${daemon} events/s (highest lossless of the rates tried)`,
    `  ratio end to end / lower of the two      ${(e2e / floor).toFixed(2)}x`,
    `  exporter CPU ${m('exporter_cpu_us_per_event').toFixed(1)} us/event; publish-to-ack p50 ${m('ack_p50_ms').toFixed(2)} ms, p99 ${m('ack_p99_ms').toFixed(2)} ms; ${m('event_bytes').toFixed(0)} payload bytes/event, ${m('stored_bytes_per_event').toFixed(0)} stored bytes/event`,
    ...batchedReport(r, daemon),
  ];
}

function batchedReport(r: Json, daemon: number): string[] {
  if (!r.batched?.length) return [];
  const m = (k: string) => median(r.batched.map((x: Json) => x[k]));
  const rate = m('end_to_end_per_s');
  return [
    `  with --batch ${r.batch}: end to end          ${Math.round(rate)} events/s in ${(m('stored') / m('messages')).toFixed(1)} events/message; ${(rate / (daemon || Infinity)).toFixed(2)}x the daemon's lossless rate`,
    `    exporter CPU ${m('exporter_cpu_us_per_event').toFixed(1)} us/event; publish-to-ack p50 ${m('ack_p50_ms').toFixed(2)} ms, p99 ${m('ack_p99_ms').toFixed(2)} ms; ${m('event_bytes').toFixed(0)} payload bytes/event, ${m('stored_bytes_per_event').toFixed(0)} stored bytes/event`,
  ];
}
