// The event pump alone, in process: fanotifyd's read path (event pump,
// decoder, enrichment, response) answering ALLOW at once, against the C
// responder, same opener, same run. No gRPC: this isolates the choice of
// pump from the transport. node dist/bench/pump.js [ops] [reps]
//
// node dist/bench/pump.js notify [ops] [rate] [fd|dfid_name]: the
// notification path alone: FAN_OPEN events read, enriched and
// encoded exactly as for a client, with the daemon's CPU time per event.
// BENCH_PROFILE=file.cpuprofile writes a CPU profile of the load alone;
// BENCH_PIDFD=0 leaves FAN_REPORT_PIDFD out, to measure what pidfds cost;
// BENCH_SINK=stalled gives the watch a client that takes nothing (a queue
// of 16,384 or BENCH_QUEUE, then every event dropped), to measure the drop
// path and what a queued event holds in memory (heap_used_mb);
// BENCH_EXCLUDE=events|path|comm gives the watch an exclude that leaves
// every event out (by event type, by a path glob, by the opener's command
// name), to measure what a filtered-out event costs against a run without.
// BENCH_COALESCE_MS=N coalesces with that window (the opens go round
// 50,000 files, or BENCH_FILES, so with the default every event has a key
// of its own: the worst case, the held map full and sending on the oldest).
// BENCH_NAMED=1 makes it a named watch: every event numbered and kept in the
// replay journal (64 MiB, or BENCH_JOURNAL_BYTES), read by one stream's cursor;
// BENCH_BUDGET_BYTES=N draws its chunks from a daemon-wide budget of N
// (--resume-buffer-total-bytes): below the journal's bytes, every chunk
// opened past N takes one back through the budget.
// BENCH_CONTAINER_CGROUP=dir runs the load generator as a container's
// process: moved into that cgroup (name it as a runtime does, e.g.
// .../libpod-<64 hex>) and in a mount namespace of its own, to measure what
// attributing events to a container costs (docs/performance.md).
// In the permission case (no "notify"), BENCH_RULE=1 lets a rule on the
// event type allow every open in the daemon instead of the in-process client.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import * as K from '../src/kernel/constants';
import { EventPump } from '../src/kernel/pump';
import { silentLogger } from '../src/common/log';
import { JournalBudget } from '../src/watch/journal-budget';
import { Watch } from '../src/watch/watch';
import type { ReportMode } from '../src/kernel/group';
import type { MatchSpec, SelectionSpec, SharedOptions, WatchEvent } from '../src/watch/types';
import { HandleResolver } from '../src/host/handle-resolver';
import { encodeEvent, eventBatch, withSequence } from '../src/api/wire';
import { tempDir } from '../test/fixtures/harness';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.join(ROOT, 'bench', 'build');
const OPS = Number(process.argv[2]) || 20_000;
const REPS = Number(process.argv[3]) || 5;

/* eslint-disable @typescript-eslint/no-explicit-any */
function run(cmd: string, argv: string[]): Promise<any> {
  return new Promise((resolve, reject) => {
    const p = spawn('timeout', ['60', cmd, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n').filter(Boolean).pop()!)) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

/** A CPU profile of this process from now until the returned function is called (BENCH_PROFILE=file.cpuprofile). */
async function startProfile(): Promise<() => Promise<object>> {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string) => new Promise<any>((resolve, reject) => session.post(method, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => (await post('Profiler.stop')).profile;
}

/** The load generator's command, as a container's process with BENCH_CONTAINER_CGROUP. */
function loadCommand(cmd: string, argv: string[]): [string, string[]] {
  const cg = process.env.BENCH_CONTAINER_CGROUP;
  if (!cg) return [cmd, argv];
  const join = ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, cmd, ...argv];
  // BENCH_CONTAINER_MNTNS=0: in the cgroup only, so the paths need no translating.
  if (process.env.BENCH_CONTAINER_MNTNS === '0') return [join[0], join.slice(1)];
  return ['unshare', ['-m', '--propagation', 'private', ...join]];
}

const match = (m: Partial<MatchSpec>): MatchSpec => ({ paths: [], exes: [], comms: [], uids: [], gids: [], events: 0, ...m });

/** BENCH_EXCLUDE's filter: every FAN_OPEN of the load generator left out, by what the name says. */
function benchExclude(): SelectionSpec | undefined {
  const by = process.env.BENCH_EXCLUDE;
  if (!by) return undefined;
  const m = { events: match({ events: K.FAN_OPEN }), path: match({ paths: ['f*'] }), comm: match({ comms: ['load'] }) }[by];
  if (!m) throw new Error(`BENCH_EXCLUDE=${by}: events, path or comm`);
  return { include: [], exclude: [m], rules: [] };
}

async function notify(): Promise<void> {
  const [ops, rate] = [Number(process.argv[3]) || 100_000, Number(process.argv[4]) || 40_000];
  const mode = (process.argv[5] ?? 'fd') as ReportMode;
  const files = Number(process.env.BENCH_FILES ?? 50_000);
  const dir = tempDir('fanotifyd-pump-notify-');
  for (let i = 0; i < files; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  const pump = new EventPump();
  const spec = { groupClass: 'notif' as const, reportMode: mode, marks: [{ path: dir, scope: 'inode' as const, mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] };
  const resolver = mode === 'dfid_name' ? await HandleResolver.open([dir]) : undefined;
  const stalled = process.env.BENCH_SINK === 'stalled';
  // The codec is filled in below, before the first event is read.
  const budget = process.env.BENCH_BUDGET_BYTES ? new JournalBudget(Number(process.env.BENCH_BUDGET_BYTES)) : undefined;
  const journalBytes = Number(process.env.BENCH_JOURNAL_BYTES ?? 64 * 2 ** 20);
  const shared: SharedOptions | undefined = process.env.BENCH_NAMED === '1' ? { lingerMs: 0, journalBytes, budget, owner: { watch: 'bench', name: 'bench' }, codec: { encode: encodeEvent } } : undefined;
  const w = new Watch('bench', spec, { reportPidfd: process.env.BENCH_PIDFD !== '0', evictable: true }, { verdictTimeoutMs: 10_000, timeoutDecision: 'allow', maxBatchEvents: 1024, queueCapacity: stalled ? Number(process.env.BENCH_QUEUE ?? 16_384) : 1 << 20, selection: benchExclude(), coalesceMs: Number(process.env.BENCH_COALESCE_MS ?? 0), shared }, pump, silentLogger, resolver);
  let events = 0;
  let bytes = 0;
  let queuedWithPath = 0;
  const encode = (it: WatchEvent) => {
    if (it.ev.path) queuedWithPath++;
    return encodeEvent(it);
  };
  if (shared) shared.codec = { encode, withSequence };
  w.attach({
    encode,
    sendEvents: (encoded, count) => {
      events += count;
      bytes += eventBatch(encoded).length;
      return !stalled;
    },
    sendOverflow: () => true,
  });
  const profile = process.env.BENCH_PROFILE ? await startProfile() : undefined;
  const cpu0 = process.cpuUsage();
  const l = await run(...loadCommand(path.join(BUILD, 'load'), [dir, String(files), String(ops), String(rate)]));
  await new Promise((r) => setTimeout(r, 500));
  const cpu = process.cpuUsage(cpu0);
  if (profile) fs.writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify(await profile()));
  const stats = w.snapshot();
  // With node --expose-gc, the live heap and ArrayBuffers while the queue still holds its events.
  global.gc?.();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  const heapUsedMb = heapUsed / 2 ** 20;
  // The queue's encoded events are ArrayBuffers, outside the JS heap.
  const arrayBuffersMb = arrayBuffers / 2 ** 20;
  w.close('disconnect');
  await pump.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ mode, named: shared !== undefined, budget_drops: budget?.forcedDrops, ops, rate: l.ops_per_s, events, read: stats.eventsRead, queued: stats.queued, heap_used_mb: heapUsedMb, array_buffers_mb: arrayBuffersMb, dropped: stats.notificationsDropped, filtered: stats.filtered, coalesced: stats.coalesced, cpu_us_per_event_read: (cpu.user + cpu.system) / stats.eventsRead, user_us_per_event_read: cpu.user / stats.eventsRead, sys_us_per_event_read: cpu.system / stats.eventsRead, events_per_wake: events / pump.wakeups, queued_with_path: queuedWithPath, kernel_overflows: stats.kernelOverflows, bytes_per_event: bytes / events, cpu_us_per_event: (cpu.user + cpu.system) / events, user_us: cpu.user / events, sys_us: cpu.system / events }));
}

const idBytes = Buffer.alloc(4);

async function main(): Promise<void> {
  if (process.argv[2] === 'notify') return notify();
  fs.mkdirSync(BUILD, { recursive: true });
  for (const name of ['load', 'responder']) execFileSync('cc', ['-O2', '-o', path.join(BUILD, name), path.join(ROOT, 'bench', 'c', `${name}.c`)]);
  const dir = tempDir('fanotifyd-pump-');
  for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  const load = () => run(path.join(BUILD, 'load'), [dir, '100', String(OPS)]);
  const rows: Record<string, any[]> = { c: [], pump: [] };
  let cpuPerEvent = 0;
  for (let rep = 0; rep < REPS; rep++) {
    const c = spawn(path.join(BUILD, 'responder'), [dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => c.stdout.once('data', r));
    rows.c.push(await load());
    c.kill('SIGTERM');
    await new Promise((r) => c.on('close', r));

    const pump = new EventPump();
    const selection = process.env.BENCH_RULE === '1' ? { include: [], exclude: [], rules: [{ match: match({ events: K.FAN_OPEN_PERM }), decision: 'allow' as const, report: false, cache: false, errno: 0 }] } : undefined;
    const w = new Watch('bench', { groupClass: 'content', marks: [{ path: dir, scope: 'inode', mask: K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, { verdictTimeoutMs: 10_000, timeoutDecision: 'allow', maxBatchEvents: 1024, queueCapacity: 1 << 20, selection }, pump, silentLogger);
    // The pump alone: nothing is encoded but each event's id, read back
    // when the batch goes.
    w.attach({
      encode: (it) => {
        idBytes.writeUInt32LE(it.id);
        return { bytes: idBytes };
      },
      sendEvents: (encoded, count) => {
        for (let i = 0; i < count; i++) w.verdict(encoded.readUInt32LE(4 * i), 'allow');
        return true;
      },
      sendOverflow: () => true,
    });
    const cpu0 = process.cpuUsage();
    rows.pump.push(await load());
    const cpu = process.cpuUsage(cpu0);
    cpuPerEvent = (cpu.user + cpu.system) / OPS;
    w.close('disconnect');
    await pump.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const summary = (k: string) => ({ ops_per_s: med(rows[k].map((r) => r.ops_per_s)), p50_us: med(rows[k].map((r) => r.p50_us)), p99_us: med(rows[k].map((r) => r.p99_us)) });
  const c = summary('c');
  const p = summary('pump');
  console.log(JSON.stringify({ ops: OPS, reps: REPS, c, pump: p, ratio_ops: p.ops_per_s / c.ops_per_s, pump_cpu_us_per_event: cpuPerEvent }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
