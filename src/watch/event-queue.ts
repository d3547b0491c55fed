// A watch's outbound queue, first in first out: notification events held
// already encoded, permission events held as objects, and overflow notices.
//
// Why encoded: a queue backed up behind a slow client holds each event for
// milliseconds or more, long enough for V8 to copy it out of the young
// generation and later collect it from the old one. Held as objects (the
// event, its path and name buffers, its entries), 16,384 queued dfid_name
// events were 0.74 KB each of live heap, and at saturation the daemon's
// heap grew to several times its live size (docs/performance.md). Encoded,
// an event is its own bytes (a few hundred) in a chunk, and on the JS heap
// only a small integer (their length) and a reference to its process's
// message: that message (up to 16 KiB of command line) is encoded once per
// process and shared by its events, in the queue as it was among objects.
//
// Permission events stay objects until they are sent: what is encoded for
// them (needs_verdict) can change while they wait, when a deadline answers
// one. A process is blocked on each, so --max-pending-per-watch bounds them.
import type { EncodedEvent, OverflowNotice, WatchEvent } from './types';

/**
 * The encoded bytes live in chunks. A queue's first chunk is small, cut
 * from Node's shared buffer pool (allocUnsafe below 4 KiB), so a watch
 * that holds a few events holds little; the next ones are 64 KiB (about 170
 * dfid_name events), and an event larger than that gets a chunk of its own.
 * An emptied 64 KiB chunk goes to a pool shared by every queue, so a
 * backed-up queue recycles its chunks, and an empty queue holds none.
 */
const FIRST_CHUNK_BYTES = 4 * 1024 - 1;
const CHUNK_BYTES = 64 * 1024;
/** Emptied chunks kept for reuse, for all queues together (1 MiB). */
const POOL_CHUNKS = 16;
const pool: Buffer[] = [];

function newChunk(first: boolean, n: number): Buffer {
  if (first && n <= FIRST_CHUNK_BYTES) return Buffer.allocUnsafe(FIRST_CHUNK_BYTES);
  if (n <= CHUNK_BYTES && pool.length) return pool.pop()!;
  return Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
}

function recycle(b: Buffer): void {
  if (b.length === CHUNK_BYTES && pool.length < POOL_CHUNKS) pool.push(b);
}

/**
 * Where a batch is gathered, shared by every queue: the sink copies a batch
 * before it returns, and all watches run on the one thread.
 */
let out = Buffer.allocUnsafe(CHUNK_BYTES);

function room(keep: number, n: number): void {
  if (n <= out.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, n));
  out.copy(bigger, 0, 0, keep);
  out = bigger;
}

interface Chunk {
  buf: Buffer;
  /** Bytes written. */
  end: number;
}

/**
 * A queue entry: an encoded notification's length in the chunks, followed
 * by its shared tail when it has one; a permission event; or a notice.
 */
type Entry = number | Uint8Array | WatchEvent | { overflow: OverflowNotice };

export interface Batch {
  /** The events' encodings, one after another; valid until the next takeEvents() of any queue. */
  bytes: Buffer;
  count: number;
  /** How many of them were notification events. */
  notifications: number;
}

export class EventQueue {
  private entries: Entry[] = [];
  private head = 0;
  /** Events and notices queued (a tail is part of its event). */
  private queued = 0;
  private chunks: Chunk[] = [];
  /** Where the next encoded event is read, in chunks[0]. */
  private readPos = 0;

  get length(): number {
    return this.queued;
  }

  /**
   * A notification event's encoding: `bytes` are copied (their writer may
   * reuse them); `tail`, which follows them in the encoding, is held as it
   * is, so it must never change (a process's message, shared by its events).
   */
  pushEncoded(bytes: Uint8Array, tail?: Uint8Array): void {
    const n = bytes.length;
    let last = this.chunks[this.chunks.length - 1];
    if (!last || last.end + n > last.buf.length) {
      last = { buf: newChunk(!last, n), end: 0 };
      this.chunks.push(last);
    }
    last.buf.set(bytes, last.end);
    last.end += n;
    this.entries.push(n);
    if (tail?.length) this.entries.push(tail);
    this.queued++;
  }

  pushEvent(it: WatchEvent): void {
    this.entries.push(it);
    this.queued++;
  }

  pushOverflow(notice: OverflowNotice): void {
    this.entries.push({ overflow: notice });
    this.queued++;
  }

  /** The notice at the head of the queue, taken; undefined when the head is an event or the queue is empty. */
  takeOverflow(): OverflowNotice | undefined {
    const e = this.entries[this.head];
    if (e === undefined || typeof e === 'number' || e instanceof Uint8Array || !('overflow' in e)) return undefined;
    this.advance();
    if (--this.queued === 0) this.clear();
    return e.overflow;
  }

  /**
   * The events at the head, up to the first notice, at most maxEvents of
   * them and, but for a single larger event, at most maxBytes. Permission
   * events are encoded now, with `encode` (again, if one does not fit).
   */
  takeEvents(maxEvents: number, maxBytes: number, encode: (it: WatchEvent) => EncodedEvent): Batch {
    let len = 0;
    let count = 0;
    let notifications = 0;
    while (count < maxEvents && this.head < this.entries.length) {
      const e = this.entries[this.head];
      let bytes: Uint8Array;
      let tail: Uint8Array | undefined;
      if (typeof e === 'number') {
        let c = this.chunks[0];
        if (this.readPos >= c.end) {
          this.dropHeadChunk();
          c = this.chunks[0];
        }
        bytes = c.buf.subarray(this.readPos, this.readPos + e);
        const next = this.entries[this.head + 1];
        if (next instanceof Uint8Array) tail = next;
      } else if (e instanceof Uint8Array || 'overflow' in e) {
        break;
      } else {
        ({ bytes, tail } = encode(e));
      }
      const size = bytes.length + (tail?.length ?? 0);
      if (count > 0 && len + size > maxBytes) break;
      room(len, len + size);
      out.set(bytes, len);
      if (tail) out.set(tail, len + bytes.length);
      len += size;
      count++;
      if (typeof e === 'number') {
        this.readPos += e;
        notifications++;
        if (tail) this.advance();
      }
      this.advance();
      this.queued--;
    }
    if (this.queued === 0) this.clear();
    return { bytes: out.subarray(0, len), count, notifications };
  }

  /** Forget everything queued. */
  clear(): void {
    for (const c of this.chunks) recycle(c.buf);
    this.chunks = [];
    this.readPos = 0;
    this.entries = [];
    this.head = 0;
    this.queued = 0;
  }

  private advance(): void {
    this.entries[this.head++] = 0;
    if (this.head > 4096 && this.head > this.entries.length / 2) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  private dropHeadChunk(): void {
    recycle(this.chunks.shift()!.buf);
    this.readPos = 0;
  }
}
