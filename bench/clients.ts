// Benchmark peers, each run as its own process so the daemon and the
// client never share a CPU by accident:
//   policy ADDR DIR           answers every OPEN_PERM under DIR with ALLOW at once
//   policy-cache ADDR DIR     the same, with verdicts cached in the kernel
//   policy-wire ADDR DIR[,DIR...] [JSON]  the same as policy, reading ids and writing verdicts in the
//                             wire format; a stream per directory (the scale case)
//   policy-rules ADDR DIR [JSON]  leaves every OPEN_PERM under DIR to a Rule ALLOW in the daemon
//   telemetry ADDR DIR [MODE] [skip-pid-verification] counts OPEN notifications under DIR (MODE: ReportMode number)
//   telemetry-wire ADDR DIR [MODE] [skip-pid-verification] [JSON]  the same, reading the wire format itself
// JSON: fields merged over the client's own Subscribe (marks of another
// scope, rules, filters), as protobufjs's fromObject reads them.
//   attach-wire ADDR NAME     attaches to the named watch from its oldest buffered event and
//                             reads, in the wire format, up to the last sequence Subscribed named;
//                             prints how long that took
//   pingpong-server SOCK      bare grpc-js bidirectional echo (the transport's limit)
//   pingpong-client SOCK N    N round trips against it
// Each prints "ready" when set up and one JSON line of counts when done
// (the policy clients, collectors and echo server on SIGTERM).
import * as grpc from '@grpc/grpc-js';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { FANOTIFY_PROTO, PROTO_DIR } from '../src/api/proto';
import { connect } from '../test/fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
const [mode, addr, arg] = process.argv.slice(2);

/** The optional JSON argument at argv[i]: Subscribe fields that replace the client's own. */
function overrides(i: number): object {
  const json = process.argv[i];
  return json ? JSON.parse(json) : {};
}

function onTerm(report: () => object): void {
  process.on('SIGTERM', () => {
    process.stdout.write(JSON.stringify(report()) + '\n', () => process.exit(0));
  });
}

/**
 * A Watch call with requests encoded by protobufjs and each response turned
 * into what `response` makes of its bytes, without proto-loader's
 * conversion to plain objects (enum names, 64-bit strings, defaults filled in).
 */
function rawWatch(response: (root: protobuf.Root) => (b: Buffer) => unknown): grpc.ClientDuplexStream<any, any> {
  const root = new protobuf.Root();
  root.resolvePath = (_o, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
  root.loadSync(FANOTIFY_PROTO, { keepCase: true });
  const Req = root.lookupType('fanotify.v1.WatchRequest');
  const Ctor = grpc.makeGenericClientConstructor(
    {
      Watch: {
        path: '/fanotify.v1.Fanotify/Watch',
        requestStream: true,
        responseStream: true,
        // Bytes already in the wire format go as they are.
        requestSerialize: (m: object) => (Buffer.isBuffer(m) ? m : Buffer.from(Req.encode(Req.fromObject(m)).finish())),
        requestDeserialize: (b: Buffer) => Req.decode(b),
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: response(root),
      },
    },
    'Fanotify',
  );
  // A 64 KiB HTTP/2 window (the default) lets the daemon send less than one
  // full batch per round trip; a collector raises it.
  return (new Ctor(addr, grpc.credentials.createInsecure(), { 'grpc-node.flow_control_window': 16 * 1024 * 1024 }) as any).Watch();
}

/** Responses decoded by protobufjs into message objects: what a collector that only stores events needs. */
function leanWatch(): grpc.ClientDuplexStream<any, any> {
  return rawWatch((root) => {
    const Res = root.lookupType('fanotify.v1.WatchResponse');
    return (b) => Res.decode(b);
  });
}

/** What a collector that only counts needs of one WatchResponse. */
interface Tally {
  subscribed?: true;
  events?: { events: number; withPath: number; withComm: number };
  overflow?: { source: number; dropped: number };
}

/**
 * Protobuf wire reading, no objects per event: a collector that stores or
 * forwards events as they came can check each one this way and copy the
 * bytes on. Unknown fields are skipped by wire type, as protobuf says.
 */
class WireReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  }
  /** The next field as [number, wire type, start, end] (start/end of a LEN payload). */
  field(): [number, number, number, number] {
    const tag = this.varint();
    const wt = tag & 7;
    const start = this.pos;
    if (wt === 0) this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 5) this.pos += 4;
    else if (wt === 2) {
      const len = this.varint();
      this.pos += len;
      if (this.pos > this.end) throw new Error('field overruns its message');
      return [Math.floor(tag / 8), wt, this.pos - len, this.pos];
    } else throw new Error(`wire type ${wt}`);
    return [Math.floor(tag / 8), wt, start, this.pos];
  }
}

// Field numbers in fanotify.proto.
const WR_SUBSCRIBED = 1;
const WR_EVENTS = 2;
const WR_OVERFLOW = 3;
const EV_PATH = 4;
const EV_PROCESS = 8;
const PR_COMM = 5;

/** The varint at buf[pos]. */
function varintAt(buf: Buffer, pos: number): number {
  return new WireReader(buf, pos).varint();
}

/** Call f with the bounds of each Event of the EventBatch in buf[start, end). */
function eachEvent(buf: Buffer, start: number, end: number, f: (es: number, ee: number) => void): void {
  const batch = new WireReader(buf, start, end);
  while (batch.pos < batch.end) {
    const [bn, bwt, es, ee] = batch.field();
    if (bn === 1 && bwt === 2) f(es, ee);
  }
}

function tally(buf: Buffer): Tally {
  const t: Tally = {};
  const r = new WireReader(buf);
  while (r.pos < r.end) {
    const [num, wt, s, e] = r.field();
    if (wt !== 2) continue;
    if (num === WR_SUBSCRIBED) t.subscribed = true;
    else if (num === WR_EVENTS) {
      const c = { events: 0, withPath: 0, withComm: 0 };
      eachEvent(buf, s, e, (es, ee) => {
        c.events++;
        const ev = new WireReader(buf, es, ee);
        while (ev.pos < ev.end) {
          const [en, ewt, ps, pe] = ev.field();
          if (en === EV_PATH && ewt === 2 && pe > ps) c.withPath++;
          else if (en === EV_PROCESS && ewt === 2) {
            const pr = new WireReader(buf, ps, pe);
            while (pr.pos < pr.end) {
              const [pn, pwt, cs, ce] = pr.field();
              if (pn === PR_COMM && pwt === 2 && ce > cs) c.withComm++;
            }
          }
        }
      });
      t.events = c;
    } else if (num === WR_OVERFLOW) {
      const o = { source: 0, dropped: 0 };
      const ov = new WireReader(buf, s, e);
      while (ov.pos < ov.end) {
        const [on, owt, vs] = ov.field();
        if (owt !== 0) continue;
        if (on === 1) o.source = varintAt(buf, vs);
        else if (on === 2) o.dropped = varintAt(buf, vs);
      }
      t.overflow = o;
    }
  }
  return t;
}

/** Responses tallied from the wire (WireReader), no object per event. */
function wireWatch(): grpc.ClientDuplexStream<any, any> {
  return rawWatch(() => tally);
}

function watch(subscribe: object, onMessage: (msg: any, call: grpc.ClientDuplexStream<any, any>) => void, lean = false): void {
  const call = lean ? leanWatch() : connect(addr).Watch();
  call.on('data', (msg: any) => {
    if (msg.subscribed) console.log('ready');
    onMessage(msg, call);
  });
  call.on('error', (e: Error) => {
    console.error(`watch failed: ${e.message}`);
    process.exit(1);
  });
  call.write({ subscribe });
}

/** Answers ALLOW at once; with cache, asks the kernel to remember it (an ignore mark until the file changes). */
function policy(cache = false): void {
  let answered = 0;
  const subscribe = { group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_ALLOW', max_batch_events: 1024, marks: [{ path: arg, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] };
  // One VerdictBatch per EventBatch: verdicts are batched like events.
  watch(subscribe, (msg, call) => {
    const evs = msg.events?.events;
    if (!evs) return;
    const verdicts = evs.filter((e: any) => e.needs_verdict).map((e: any) => ({ id: e.id, decision: 'DECISION_ALLOW', cache }));
    answered += verdicts.length;
    if (verdicts.length) call.write({ verdicts: { verdicts } });
  });
  onTerm(() => ({ answered }));
}

const EV_ID = 1;
const EV_NEEDS_VERDICT = 7;
const WQ_VERDICTS = 2;
const VB_VERDICTS = 1;
const VD_ID = 1;
const VD_DECISION = 2;
const DECISION_ALLOW = 1;

/** The ids of the events of one WatchResponse that need a verdict, read from the wire. */
function idsNeedingVerdict(buf: Buffer): number[] {
  const ids: number[] = [];
  const r = new WireReader(buf);
  while (r.pos < r.end) {
    const [num, wt, s, e] = r.field();
    if (num !== WR_EVENTS || wt !== 2) continue;
    eachEvent(buf, s, e, (es, ee) => {
      let id = 0;
      let needs = false;
      const ev = new WireReader(buf, es, ee);
      while (ev.pos < ev.end) {
        const [en, ewt, vs] = ev.field();
        if (ewt !== 0) continue;
        if (en === EV_ID) id = varintAt(buf, vs);
        else if (en === EV_NEEDS_VERDICT) needs = varintAt(buf, vs) !== 0;
      }
      if (needs) ids.push(id);
    });
  }
  return ids;
}

function varintBytes(v: number, out: number[]): void {
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** WatchRequest{verdicts: VerdictBatch{verdicts: [{id, decision: ALLOW}...]}} in the wire format. */
function allowAll(ids: number[]): Buffer {
  const batch: number[] = [];
  for (const id of ids) {
    const v: number[] = [VD_ID << 3];
    varintBytes(id, v);
    v.push(VD_DECISION << 3, DECISION_ALLOW);
    batch.push((VB_VERDICTS << 3) | 2);
    varintBytes(v.length, batch);
    for (const b of v) batch.push(b);
  }
  const msg: number[] = [(WQ_VERDICTS << 3) | 2];
  varintBytes(batch.length, msg);
  return Buffer.concat([Buffer.from(msg), Buffer.from(batch)]);
}

// OverflowSource numbers in the proto.
const OVERFLOW_KERNEL = 1;
const OVERFLOW_CLIENT = 2;

/**
 * policy() without proto-loader or protobufjs on the event path (ids read
 * and verdicts written in the wire format): what a lean policy engine
 * costs. One stream per directory listed (comma-separated) in arg, so the
 * scale case's 100 watches share the one process.
 */
function policyWire(): void {
  let answered = 0;
  let ready = 0;
  const dirs = arg.split(',');
  for (const dir of dirs) {
    const call = rawWatch(() => (b) => b);
    call.on('data', (b: Buffer) => {
      if (b.length && b[0] === ((WR_SUBSCRIBED << 3) | 2) && ++ready === dirs.length) console.log('ready');
      const ids = idsNeedingVerdict(b);
      answered += ids.length;
      if (ids.length) call.write(allowAll(ids));
    });
    call.on('error', (e: Error) => {
      console.error(`watch on ${dir} failed: ${e.message}`);
      process.exit(1);
    });
    call.write({ subscribe: { group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_ALLOW', max_batch_events: 1024, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }], ...overrides(5) } });
  }
  onTerm(() => ({ answered }));
}

/**
 * A policy client that leaves its decisions to the daemon: one Rule ALLOW
 * over every event, without cache unless the JSON argument says otherwise.
 * An event that still comes for a verdict means the daemon ignored the
 * rules: it is answered ALLOW and counted (asked), so the bench can say
 * so. On SIGTERM it asks for the watch's counters (GetStats) and reports
 * them (null from a daemon without GetStats) with its own.
 */
function policyRules(): void {
  let asked = 0;
  let events = 0;
  let stats: object | null = null;
  let stopping = false;
  let report: (() => void) | undefined;
  let Res!: protobuf.Type;
  const call = rawWatch((root) => {
    Res = root.lookupType('fanotify.v1.WatchResponse');
    return (b) => Res.decode(b);
  });
  call.on('data', (msg: any) => {
    if (msg.subscribed) console.log('ready');
    const evs: any[] = msg.events?.events ?? [];
    events += evs.length;
    const ids = evs.filter((e) => e.needs_verdict).map((e) => e.id);
    asked += ids.length;
    if (ids.length) call.write({ verdicts: { verdicts: ids.map((id) => ({ id, decision: DECISION_ALLOW })) } });
    if (msg.stats) {
      stats = Res.toObject(msg, { longs: Number }).stats;
      report?.();
    }
  });
  call.on('error', (e: Error) => {
    if (stopping) return report?.();
    console.error(`watch failed: ${e.message}`);
    process.exit(1);
  });
  call.write({
    subscribe: {
      group_class: 'GROUP_CLASS_CONTENT',
      timeout_decision: 'DECISION_ALLOW',
      max_batch_events: 1024,
      marks: [{ path: arg, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
      rules: [{ match: {}, decision: 'DECISION_ALLOW' }],
      ...overrides(5),
    },
  });
  process.on('SIGTERM', () => {
    stopping = true;
    let reported = false;
    report = () => {
      if (reported) return;
      reported = true;
      process.stdout.write(JSON.stringify({ asked, events, stats }) + '\n', () => process.exit(0));
    };
    // A daemon without GetStats ends the stream (INVALID_ARGUMENT) or never answers.
    setTimeout(report, 1000);
    call.write({ get_stats: { request_id: 1 } });
  });
}

function telemetry(): void {
  const c = { events: 0, withPath: 0, withComm: 0, droppedClient: 0, kernelOverflows: 0 };
  // Optional 4th argument: the ReportMode number (1 fd, 2 dfid_name).
  const reportMode = Number(process.argv[5] ?? 0);
  // Optional 5th argument "skip-pid-verification": no pidfd per event.
  const skip = process.argv[6] === 'skip-pid-verification';
  const subscribe = { max_batch_events: 1024, report_mode: reportMode, skip_pid_verification: skip, marks: [{ path: arg, on_child: true, events: [5 /* EVENT_TYPE_OPEN */] }] };
  watch(
    subscribe,
    (msg) => {
      for (const e of msg.events?.events ?? []) {
        c.events++;
        if (e.path) c.withPath++;
        if (e.process?.comm) c.withComm++;
      }
      if (msg.overflow?.source === OVERFLOW_CLIENT) c.droppedClient += Number(msg.overflow.dropped);
      if (msg.overflow?.source === OVERFLOW_KERNEL) c.kernelOverflows++;
    },
    true,
  );
  const cpu0 = process.cpuUsage();
  onTerm(() => {
    const u = process.cpuUsage(cpu0);
    return { ...c, cpuMs: (u.user + u.system) / 1000 };
  });
}

const ECHO = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

function pingpongServer(): void {
  const server = new grpc.Server();
  server.addService(ECHO, {
    echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(b));
      call.on('end', () => call.end());
    },
  });
  server.bindAsync(`unix:${addr}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('ready');
  });
  onTerm(() => ({}));
}

function pingpongClient(): void {
  const n = Number(arg);
  const Ctor = grpc.makeGenericClientConstructor(ECHO, 'Echo');
  const c = new Ctor(`unix:${addr}`, grpc.credentials.createInsecure()) as any;
  const call = c.echo();
  // A message the size of a one-event batch.
  const msg = Buffer.alloc(200, 1);
  const lat: number[] = [];
  let t0 = 0n;
  let start = 0n;
  call.on('data', () => {
    const t = process.hrtime.bigint();
    lat.push(Number(t - t0) / 1000);
    if (lat.length === n) {
      const secs = Number(t - start) / 1e9;
      lat.sort((a, b) => a - b);
      console.log(JSON.stringify({ ops: n, ops_per_s: n / secs, p50_us: lat[n >> 1], p99_us: lat[Math.floor(n * 0.99)] }));
      call.end();
      c.close();
      return;
    }
    t0 = process.hrtime.bigint();
    call.write(msg);
  });
  console.log('ready');
  start = process.hrtime.bigint();
  t0 = start;
  call.write(msg);
}

/** The telemetry collector on the wire reader: counts as telemetry() does, with no decode per event. */
function telemetryWire(): void {
  const c = { events: 0, withPath: 0, withComm: 0, droppedClient: 0, kernelOverflows: 0 };
  const reportMode = Number(process.argv[5] ?? 0);
  const skip = process.argv[6] === 'skip-pid-verification';
  const call = wireWatch();
  call.on('data', (t: Tally) => {
    if (t.subscribed) console.log('ready');
    if (t.events) {
      c.events += t.events.events;
      c.withPath += t.events.withPath;
      c.withComm += t.events.withComm;
    }
    if (t.overflow?.source === OVERFLOW_CLIENT) c.droppedClient += t.overflow.dropped;
    if (t.overflow?.source === OVERFLOW_KERNEL) c.kernelOverflows++;
  });
  call.on('error', (e: Error) => {
    console.error(`watch failed: ${e.message}`);
    process.exit(1);
  });
  call.write({ subscribe: { max_batch_events: 1024, report_mode: reportMode, skip_pid_verification: skip, marks: [{ path: arg, on_child: true, events: [5 /* EVENT_TYPE_OPEN */] }], ...overrides(7) } });
  const cpu0 = process.cpuUsage();
  onTerm(() => {
    const u = process.cpuUsage(cpu0);
    return { ...c, cpuMs: (u.user + u.system) / 1000 };
  });
}

const SUB_LAST_SEQUENCE = 10;
const WR_GAP = 6;
const EV_SEQUENCE = 23;

/** The replay of a named watch's buffer to a stream that attaches: events and time to the last sequence. */
function attachWire(): void {
  let last = -1;
  let maxSeq = 0;
  let events = 0;
  let gaps = 0;
  const t0 = performance.now();
  const call = rawWatch(() => (b) => b);
  call.on('data', (b: Buffer) => {
    const r = new WireReader(b);
    while (r.pos < r.end) {
      const [num, wt, s, e] = r.field();
      if (wt !== 2) continue;
      if (num === WR_SUBSCRIBED) {
        last = 0;
        const sub = new WireReader(b, s, e);
        while (sub.pos < sub.end) {
          const [sn, swt, vs] = sub.field();
          if (sn === SUB_LAST_SEQUENCE && swt === 0) last = varintAt(b, vs);
        }
      } else if (num === WR_GAP) gaps++;
      else if (num === WR_EVENTS) {
        eachEvent(b, s, e, (es, ee) => {
          events++;
          // The daemon writes the sequence second, after the id: the rest of the event is not read.
          const ev = new WireReader(b, es, ee);
          for (let f = 0; f < 2 && ev.pos < ev.end; f++) {
            const [en, ewt, vs] = ev.field();
            if (en === EV_SEQUENCE && ewt === 0) maxSeq = Math.max(maxSeq, varintAt(b, vs));
          }
        });
      }
    }
    if (last >= 0 && maxSeq >= last) {
      const ms = performance.now() - t0;
      process.stdout.write(JSON.stringify({ events, last_sequence: last, gaps, ms }) + '\n', () => process.exit(0));
    }
  });
  call.on('error', (e: Error) => {
    console.error(`attach failed: ${e.message}`);
    process.exit(1);
  });
  console.log('ready');
  call.write({ attach: { name: arg, after_sequence: 0 } });
}

const modes: Record<string, () => void> = { policy: () => policy(), 'policy-cache': () => policy(true), 'policy-wire': policyWire, 'policy-rules': policyRules, telemetry, 'telemetry-wire': telemetryWire, 'pingpong-server': pingpongServer, 'pingpong-client': pingpongClient, 'attach-wire': attachWire };
if (!modes[mode]) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
modes[mode]();
