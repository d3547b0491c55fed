// The exporter's reading of a WatchResponse: for events, only where each
// Event's bytes are, its sequence and its first type, walked on the wire
// without decoding the rest. The payload published is the daemon's own
// encoding, so decoding every field of every event into an object (as
// proto-loader does) and encoding it again would be work for nothing.
// Field numbers are those of proto/fanotify/v1/fanotify.proto.

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

const RESPONSE_EVENTS = 2; // WatchResponse.events (EventBatch)
const BATCH_EVENTS = 1; // EventBatch.events
const EVENT_TYPES = 2; // Event.types (packed enum)
const EVENT_SEQUENCE = 23; // Event.sequence

export class WireError extends Error {}

export interface WireEvent {
  sequence: bigint;
  /** EventType number of the first entry of Event.types; 0 when there is none. */
  firstType: number;
  bytes: Uint8Array;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as a number: exact up to 2^53, which covers every tag, length and enum. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** A varint as a uint64, exact over the whole range (sequences may be anywhere in it). */
  varint64(): bigint {
    const start = this.pos;
    const n = this.varint();
    if (Number.isSafeInteger(n)) return BigInt(n);
    let result = 0n;
    for (let i = this.pos - 1; i >= start; i--) result = (result << 7n) | BigInt(this.buf[i] & 0x7f);
    return BigInt.asUintN(64, result);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WT_VARINT:
        this.varint();
        return;
      case WT_I64:
        this.pos += 8;
        break;
      case WT_LEN: {
        // Not `this.pos += this.varint()`: that reads pos before varint() moves it.
        const len = this.varint();
        this.pos += len;
        break;
      }
      case WT_I32:
        this.pos += 4;
        break;
      default:
        throw new WireError(`wire type ${wireType} is not used by this API`);
    }
    if (this.pos > this.end) throw new WireError('field runs past its message');
  }

  /** The [start, end) of a length-delimited field whose tag was just read. */
  slice(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new WireError('field runs past its message');
    return [start, this.pos];
  }
}

function readEvent(buf: Uint8Array, start: number, end: number): WireEvent {
  const r = new Reader(buf, start, end);
  let sequence = 0n;
  let firstType = -1;
  while (r.pos < end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (field === EVENT_SEQUENCE && wt === WT_VARINT) sequence = r.varint64();
    else if (field === EVENT_TYPES && firstType < 0 && wt === WT_LEN) {
      const [s, e] = r.slice();
      if (e > s) firstType = new Reader(buf, s, e).varint();
    } else if (field === EVENT_TYPES && firstType < 0 && wt === WT_VARINT) firstType = r.varint();
    else r.skip(wt);
  }
  return { sequence, firstType: Math.max(firstType, 0), bytes: buf.subarray(start, end) };
}

/**
 * The events of a WatchResponse, in order, each a view into `response`;
 * null when the response is not an EventBatch. Throws WireError for bytes
 * that are not a WatchResponse.
 */
export function wireEvents(response: Uint8Array): WireEvent[] | null {
  const top = new Reader(response, 0, response.length);
  let out: WireEvent[] | null = null;
  while (top.pos < top.end) {
    const tag = top.varint();
    if (tag !== RESPONSE_EVENTS * 8 + WT_LEN) {
      top.skip(tag & 7);
      continue;
    }
    const [bs, be] = top.slice();
    out ??= [];
    const batch = new Reader(response, bs, be);
    while (batch.pos < be) {
      const t = batch.varint();
      if (t !== BATCH_EVENTS * 8 + WT_LEN) {
        batch.skip(t & 7);
        continue;
      }
      const [es, ee] = batch.slice();
      out.push(readEvent(response, es, ee));
    }
  }
  return out;
}

/** The bytes of the length-delimited field `field` of a message (the Overflow of a WatchResponse); null when absent. */
export function wireField(message: Uint8Array, field: number): Uint8Array | null {
  const r = new Reader(message, 0, message.length);
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === field * 8 + WT_LEN) {
      const [s, e] = r.slice();
      return message.subarray(s, e);
    }
    r.skip(tag & 7);
  }
  return null;
}

function writeVarint(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

/** A fanotify.v1.Gap's bytes (from_sequence = 1, to_sequence = 2). */
export function encodeGap(from: bigint, to: bigint): Uint8Array {
  const out: number[] = [];
  out.push(1 * 8 + WT_VARINT);
  writeVarint(out, from);
  out.push(2 * 8 + WT_VARINT);
  writeVarint(out, to);
  return Uint8Array.from(out);
}
