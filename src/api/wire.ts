// The hot path's protobuf encoder: events written straight from the
// watch's objects into a reused buffer. The generic path (proto-loader:
// plain object, fromObject, a protobufjs Writer with one operation object
// per field) allocated several objects per field, and garbage collection
// became the largest cost of a busy notification watch
// (docs/performance.md). Here nothing is allocated per field. Each event
// is encoded on its own, as an EventBatch holds it, when it is queued
// (src/watch/event-queue.ts); a batch is those encodings one after another
// behind a WatchResponse header. A process's message is encoded once and
// reused while the process cache returns it.
//
// Field numbers are those of proto/fanotify/v1/fanotify.proto;
// test/unit/wire.test.ts decodes the output with the .proto itself.
import { isUtf8 } from 'node:buffer';
import type { FileId } from '../kernel/decoder';
import type { ProcessInfo } from '../host/process';
import type { ContainerInfo } from '../host/container';
import type { ResolvedEntry } from '../host/event';
import { EVENT_TYPE_NUMBERS } from './event-types';
import type { EncodedEvent, WatchEvent } from '../watch/watch';

/** fanotify.v1.Decision's numbers. */
const DECISION_ALLOW = 1;
const DECISION_DENY = 2;

const VARINT = 0;
const LEN = 2;
/** Bytes reserved for a nested message's length before its size is known. */
const LEN_RESERVE = 5;

class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): void {
    this.pos = 0;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A non-negative integer below 2^53. */
  varint(v: number): void {
    this.room(10);
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  tag(field: number, type: number): void {
    this.varint((field << 3) | type);
  }

  uint(field: number, v: number): void {
    if (!v) return;
    this.tag(field, VARINT);
    this.varint(v);
  }

  /** int32/int64: a negative value is its 64-bit two's complement, ten bytes. */
  int(field: number, v: number): void {
    if (v >= 0) return this.uint(field, v);
    this.big(field, BigInt.asUintN(64, BigInt(v)));
  }

  big(field: number, v: bigint): void {
    if (!v) return;
    this.tag(field, VARINT);
    this.room(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  bool(field: number, v: boolean): void {
    if (v) this.uint(field, 1);
  }

  bytes(field: number, b: Uint8Array): void {
    if (!b.length) return;
    this.tag(field, LEN);
    this.varint(b.length);
    this.raw(b);
  }

  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(field: number, s: string): void {
    if (!s) return;
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  /** Path bytes as a proto string: as they are when valid UTF-8, else with U+FFFD for each bad sequence. */
  utf8(field: number, b: Buffer): void {
    this.bytes(field, isUtf8(b) ? b : Buffer.from(b.toString('utf8')));
  }

  /** Start a nested message; returns where its length goes. */
  begin(field: number): number {
    this.tag(field, LEN);
    this.room(LEN_RESERVE);
    const at = this.pos;
    this.pos += LEN_RESERVE;
    return at;
  }

  /**
   * End the nested message begun at `at`: write its length and close the
   * gap left by the reserve. `after` bytes of it are still to come, written
   * elsewhere.
   */
  end(at: number, after = 0): void {
    const start = at + LEN_RESERVE;
    const len = this.pos - start + after;
    let n = 1;
    while (len >= 2 ** (7 * n)) n++;
    const save = this.pos;
    this.pos = at;
    this.varint(len);
    this.buf.copyWithin(at + n, start, save);
    this.pos = save - (LEN_RESERVE - n);
  }
}

/** Encoded Process messages, reused while the process cache hands out the same object. */
const processBytes = new WeakMap<ProcessInfo, Buffer>();
const scratch = new Writer();
const processScratch = new Writer();
const header = new Writer(16);

function encodeProcess(p: ProcessInfo): Buffer {
  let b = processBytes.get(p);
  if (b) return b;
  const w = processScratch;
  w.reset();
  w.int(1, p.pid);
  w.int(2, p.ppid);
  w.uint(3, p.uid);
  w.uint(4, p.gid);
  w.string(5, p.comm);
  w.string(6, p.exe);
  // Repeated strings keep empty elements: each one is written.
  for (const arg of p.cmdline) {
    const s = Buffer.from(arg, 'utf8');
    w.tag(7, LEN);
    w.varint(s.length);
    w.raw(s);
  }
  w.bool(8, p.details);
  w.bool(9, p.verified);
  w.int(10, p.tid ?? 0);
  w.bool(11, p.cmdlineTruncated === true);
  w.uint(12, p.cgroupId ?? 0);
  w.string(13, p.cgroup ?? '');
  if (p.container) container(w, 14, p.container);
  b = Buffer.from(w.buf.subarray(0, w.pos));
  processBytes.set(p, b);
  return b;
}

function container(w: Writer, field: number, c: ContainerInfo): void {
  const at = w.begin(field);
  w.string(1, c.id);
  w.string(2, c.runtime);
  w.string(3, c.podUid);
  w.string(4, c.podName ?? '');
  w.string(5, c.podNamespace ?? '');
  w.string(6, c.name ?? '');
  w.string(7, c.image ?? '');
  // A map is a repeated entry message {1: key, 2: value}.
  for (const [k, v] of Object.entries(c.labels ?? {})) {
    const e = w.begin(8);
    w.string(1, k);
    w.string(2, v);
    w.end(e);
  }
  w.end(at);
}

function entry(w: Writer, field: number, e: ResolvedEntry | undefined): void {
  if (!e) return;
  const at = w.begin(field);
  if (e.dir) {
    w.utf8(1, e.dir);
    w.bytes(2, e.dir);
  }
  w.utf8(3, e.name);
  w.bytes(4, e.name);
  w.bool(5, !e.dir);
  fileHandle(w, 6, e.id);
  w.end(at);
}

/** fsid, handle_type and f_handle (without struct file_handle's 8-byte header) as fields first, first+1, first+2. */
function fileHandle(w: Writer, first: number, id: FileId): void {
  w.bytes(first, id.fsid);
  w.int(first + 1, id.handleType);
  w.bytes(first + 2, id.fileHandle.subarray(8));
}

/** The event without its process message, which follows it (and is counted in its length); returns that message. */
function event(w: Writer, it: WatchEvent): Buffer {
  const ev = it.ev;
  const at = w.begin(1);
  w.uint(1, it.id);
  w.uint(23, it.seq ?? 0);
  if (ev.mask) {
    const types = w.begin(2);
    for (const [bit, n] of EVENT_TYPE_NUMBERS) if (ev.mask & bit) w.varint(n);
    w.end(types);
  }
  w.uint(3, ev.mask >>> 0);
  if (ev.path) {
    w.utf8(4, ev.path);
    w.bytes(5, ev.path);
  }
  w.bool(6, ev.isDir);
  w.bool(7, it.needsVerdict);
  const time = w.begin(9);
  w.uint(1, Math.floor(ev.timeMs / 1000));
  w.uint(2, (ev.timeMs % 1000) * 1e6);
  w.end(time);
  w.bool(10, ev.deleted);
  entry(w, 11, ev.entry);
  entry(w, 12, ev.oldEntry);
  entry(w, 13, ev.newEntry);
  if (ev.range) {
    const r = w.begin(14);
    w.big(1, ev.range.offset);
    w.big(2, ev.range.count);
    w.end(r);
  }
  if (ev.error) {
    const e = w.begin(15);
    w.int(1, Math.abs(ev.error.error));
    w.uint(2, ev.error.count);
    w.end(e);
  }
  if (ev.malformed) w.string(16, ev.malformed);
  if (ev.mntId) w.big(17, ev.mntId);
  if (ev.target) {
    const t = w.begin(18);
    fileHandle(w, 1, ev.target);
    w.end(t);
  }
  w.int(19, ev.fdError ?? 0);
  // Set by coalescing and by reporting rules only: one check each otherwise.
  if (it.count !== undefined && it.count > 1) w.uint(20, it.count);
  if (it.ruleDecision) {
    w.uint(21, it.ruleDecision.decision === 'allow' ? DECISION_ALLOW : DECISION_DENY);
    w.uint(22, it.ruleDecision.index);
  }
  if (ev.containerPath) w.utf8(24, ev.containerPath);
  // Field 8 last (protobuf takes fields in any order): the process's
  // message is not copied into each event but follows it, shared.
  const process = encodeProcess(ev.process);
  w.tag(8, LEN);
  w.varint(process.length);
  w.end(at, process.length);
  return process;
}

/**
 * One event as an EventBatch would hold it (its field 1, tag and length
 * included), in two parts that follow each other: `bytes`, valid until the
 * next call, and `tail`, the process's message, the same Buffer for every
 * event of a process while the process cache returns it, never changed.
 * Events encoded one by one concatenate into a batch.
 */
const encoded: EncodedEvent = { bytes: new Uint8Array(0), tail: undefined };
export function encodeEvent(it: WatchEvent): EncodedEvent {
  const w = scratch;
  w.reset();
  encoded.tail = event(w, it);
  encoded.bytes = w.buf.subarray(0, w.pos);
  return encoded;
}

const sequenced = new Writer(16);
const resequencer = new Writer(1024);
const resequenced: EncodedEvent = { bytes: new Uint8Array(0), tail: undefined };

/**
 * An event encoded by encodeEvent without a sequence (held by the
 * coalescer since its window opened), with Event.sequence added: the
 * field goes first in the event's message (protobuf takes fields in any
 * order) and the message's length grows by its size. `tail` is unchanged.
 * The bytes are valid until the next call.
 */
export function withSequence(e: EncodedEvent, seq: number): EncodedEvent {
  const src = e.bytes;
  // src[0] is the EventBatch.events tag; the event's length follows.
  let len = 0;
  let mul = 1;
  let pos = 1;
  for (;;) {
    const b = src[pos++];
    len += (b & 0x7f) * mul;
    if (b < 0x80) break;
    mul *= 0x80;
  }
  const field = sequenced;
  field.reset();
  field.uint(23, seq);
  const fieldLen = field.pos;
  const w = resequencer;
  w.reset();
  w.raw(src.subarray(0, 1));
  w.varint(len + fieldLen);
  w.raw(field.buf.subarray(0, fieldLen));
  w.raw(src.subarray(pos));
  resequenced.bytes = w.buf.subarray(0, w.pos);
  resequenced.tail = e.tail;
  return resequenced;
}

/** The encoder every watch of the daemon uses. */
export const eventCodec = { encode: encodeEvent, withSequence };

/** A serialized WatchResponse { events: EventBatch } around events encoded by encodeEvent. */
export function eventBatch(events: Uint8Array): Buffer {
  // Not the scratch writer: `events` may be its last encodeEvent().
  const w = header;
  w.reset();
  w.tag(2, LEN);
  w.varint(events.length);
  const out = Buffer.allocUnsafe(w.pos + events.length);
  w.buf.copy(out, 0, 0, w.pos);
  out.set(events, w.pos);
  return out;
}
