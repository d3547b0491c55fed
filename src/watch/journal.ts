// A named watch's replay journal: its notifications, encoded, and its
// notices, with their sequences, oldest first, bounded by bytes. Every
// stream of the watch reads it through a cursor of its own, so a stream
// that resumes gets what it missed, and a slow stream holds nothing up: when
// the journal passes its bound its oldest chunk goes, and a cursor that
// pointed into it learns the exact range it lost (a Gap).
//
// Bytes are kept as the single-stream queue keeps them (event-queue.ts):
// in 64 KiB chunks, a process's message held once as a shared tail. A
// chunk also holds, per entry, its sequence and its length (-1 for a
// notice) in typed arrays, and the index of its tail or notice in a short
// list of the chunk's distinct ones (a run of events of one process shares
// one): an entry costs the garbage collector nothing. Held in JavaScript
// arrays (a slot each for sequence, length and tail), 200,000 journaled
// events raised the in-process notification path's GC share from 5 to 8 %.
// Eviction drops a whole chunk: about 170 dfid_name events, 1/1024 of the
// default 64 MiB bound.
//
// A daemon's journals together are bounded too (journal-budget.ts): a
// journal is charged per chunk it opens, and the budget may take the
// oldest chunk of whichever journal holds the most; that drop is the same
// as one at the journal's own bound.
import type { BudgetMember, JournalBudget, JournalOwner } from './journal-budget';
import type { GapNotice, OverflowNotice } from './types';

const CHUNK_BYTES = 64 * 1024;
/** Entries per chunk at most (a chunk of smaller events, or of notices, ends here). */
const CHUNK_ENTRIES = 1024;
/** A chunk's typed arrays: a sequence (8 bytes), a length and an index (4 each) per entry. */
const META_BYTES = CHUNK_ENTRIES * 16;
const NOTICE = -1;
const NONE = -1;

interface Chunk {
  /** Chunks are numbered in order from 0 for the life of the journal. */
  no: number;
  buf: Buffer;
  /** Bytes written. */
  end: number;
  /** Entries written. */
  count: number;
  seqs: Float64Array;
  lens: Int32Array;
  /** Index in objs of the entry's tail or notice; NONE: neither. */
  refs: Int32Array;
  objs: Array<Uint8Array | OverflowNotice>;
  /** What the chunk counts against the bound. */
  cost: number;
}

/** A reader's place: the next entry to read, and the last sequence it was given or skipped. */
export interface Cursor {
  no: number;
  index: number;
  offset: number;
  last: number;
}

/** A run of events read from a cursor. */
export interface Run {
  /** Their encodings, one after another; valid until the next read of any journal. */
  bytes: Buffer;
  count: number;
}

/** Where runs are gathered, shared by every journal (all run on the one thread, and the sink copies). */
let out = Buffer.allocUnsafe(CHUNK_BYTES);

function room(keep: number, n: number): void {
  if (n <= out.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, n));
  out.copy(bigger, 0, 0, keep);
  out = bigger;
}

export class Journal implements BudgetMember {
  private chunks: Chunk[] = [];
  private nextNo = 0;
  private cost = 0;
  /** What the budget has been charged: the cost but for what the newest chunk took on since it opened. */
  charged = 0;
  /** An evicted chunk, its buffers reused for the next one. */
  private spare?: Chunk;
  /** The last sequence evicted (or, for a restored watch, given before it was restored). */
  private evictedThrough: number;

  constructor(
    private readonly maxBytes: number,
    lostThrough = 0,
    private readonly budget?: JournalBudget,
    readonly owner?: JournalOwner,
  ) {
    this.evictedThrough = lostThrough;
  }

  get canGive(): boolean {
    return this.chunks.length > 1;
  }

  /** The budget takes the oldest chunk: as a drop at this journal's own bound. */
  giveOldest(): number {
    const cost = this.dropOldest();
    this.charged -= cost;
    return cost;
  }

  /** Bytes counted against the bound now. */
  get bytes(): number {
    return this.cost;
  }

  /** The oldest sequence held; 0 when empty. */
  get firstSequence(): number {
    const c = this.chunks[0];
    return c && c.count ? c.seqs[0] : 0;
  }

  /** Entries held. */
  get length(): number {
    let n = 0;
    for (const c of this.chunks) n += c.count;
    return n;
  }

  appendEvent(bytes: Uint8Array, tail: Uint8Array | undefined, seq: number): void {
    const n = bytes.length;
    const c = this.chunkFor(n);
    c.buf.set(bytes, c.end);
    c.end += n;
    const i = c.count++;
    c.seqs[i] = seq;
    c.lens[i] = n;
    let added = 0;
    if (tail === undefined) c.refs[i] = NONE;
    else {
      // A process's message is shared by its events: held, and counted, once per run of them.
      const k = c.objs.length - 1;
      if (k >= 0 && c.objs[k] === tail) c.refs[i] = k;
      else {
        c.refs[i] = c.objs.push(tail) - 1;
        added = tail.length;
      }
    }
    this.account(c, added);
  }

  appendNotice(notice: OverflowNotice, seq: number): void {
    const c = this.chunkFor(0);
    const i = c.count++;
    c.seqs[i] = seq;
    c.lens[i] = NOTICE;
    c.refs[i] = c.objs.push(notice) - 1;
    this.account(c, 0);
  }

  /** A cursor after everything held: only what is appended from now on. */
  endCursor(last: number): Cursor {
    const c = this.chunks[this.chunks.length - 1];
    return c ? { no: c.no, index: c.count, offset: c.end, last } : { no: this.nextNo, index: 0, offset: 0, last };
  }

  /**
   * A cursor at the first entry after sequence `after` (0: the oldest
   * held). Entries are in sequence order, so the chunk is found by its
   * first sequence, then the entry within it.
   */
  cursorAfter(after: number): Cursor {
    if (after <= 0 || !this.chunks.length) return this.startCursor(after);
    let lo = 0;
    let hi = this.chunks.length - 1;
    // The last chunk whose first sequence is at most `after`.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid].seqs[0] <= after) lo = mid;
      else hi = mid - 1;
    }
    const c = this.chunks[lo];
    if (c.seqs[0] > after) return this.startCursor(after);
    let offset = 0;
    let i = 0;
    while (i < c.count && c.seqs[i] <= after) {
      if (c.lens[i] > 0) offset += c.lens[i];
      i++;
    }
    return { no: c.no, index: i, offset, last: after };
  }

  private startCursor(last: number): Cursor {
    const c = this.chunks[0];
    return c ? { no: c.no, index: 0, offset: 0, last } : { no: this.nextNo, index: 0, offset: 0, last };
  }

  /**
   * The sequences lost before `after` was reached: those evicted after it.
   * A sequence the journal never held (a permission event, sent to one
   * stream) is no loss.
   */
  lostAfter(after: number): GapNotice | undefined {
    return after < this.evictedThrough ? { from: after + 1, to: this.evictedThrough } : undefined;
  }

  /**
   * What the cursor lost to eviction since it last read, if anything (its
   * chunk went): the range from after its last sequence to the last one
   * evicted. The cursor moves to the oldest entry held.
   */
  catchUp(cur: Cursor): GapNotice | undefined {
    const firstNo = this.chunks[0]?.no ?? this.nextNo;
    if (cur.no >= firstNo) return undefined;
    const gap = this.lostAfter(cur.last);
    Object.assign(cur, this.startCursor(Math.max(cur.last, this.evictedThrough)));
    return gap;
  }

  /** The sequence of the entry at the cursor; Infinity when it is at the end. */
  peek(cur: Cursor): number {
    const c = this.chunkAt(cur);
    return c ? c.seqs[cur.index] : Infinity;
  }

  /** The notice at the cursor, taken; undefined when the entry there is an event. */
  takeNotice(cur: Cursor): OverflowNotice | undefined {
    const c = this.chunkAt(cur);
    if (!c || c.lens[cur.index] !== NOTICE) return undefined;
    cur.last = c.seqs[cur.index];
    cur.index++;
    return c.objs[c.refs[cur.index - 1]] as OverflowNotice;
  }

  /**
   * Events from the cursor, up to the first notice, at most maxEvents,
   * at most maxBytes (but for a single larger event), and only those
   * numbered below `before` (a permission event of the stream's own comes
   * first).
   */
  read(cur: Cursor, maxEvents: number, maxBytes: number, before: number): Run {
    let len = 0;
    let count = 0;
    let c = this.chunkAt(cur);
    while (c && count < maxEvents) {
      const i = cur.index;
      const n = c.lens[i];
      if (n === NOTICE || c.seqs[i] >= before) break;
      const ref = c.refs[i];
      const tail = ref === NONE ? undefined : (c.objs[ref] as Uint8Array);
      const size = n + (tail?.length ?? 0);
      if (count > 0 && len + size > maxBytes) break;
      room(len, len + size);
      out.set(c.buf.subarray(cur.offset, cur.offset + n), len);
      if (tail) out.set(tail, len + n);
      len += size;
      count++;
      cur.offset += n;
      cur.last = c.seqs[i];
      cur.index++;
      c = this.chunkAt(cur);
    }
    return { bytes: out.subarray(0, len), count };
  }

  /** Forget everything. */
  clear(): void {
    this.budget?.leave(this);
    this.chunks = [];
    this.cost = 0;
    this.charged = 0;
    this.spare = undefined;
  }

  /** The chunk holding the cursor's entry, moving the cursor past an exhausted chunk; undefined at the end. */
  private chunkAt(cur: Cursor): Chunk | undefined {
    for (;;) {
      const k = cur.no - (this.chunks[0]?.no ?? this.nextNo);
      const c = this.chunks[k];
      if (!c) return undefined;
      if (cur.index < c.count) return c;
      if (k === this.chunks.length - 1) return undefined;
      cur.no++;
      cur.index = 0;
      cur.offset = 0;
    }
  }

  private chunkFor(n: number): Chunk {
    const last = this.chunks[this.chunks.length - 1];
    if (last && last.end + n <= last.buf.length && last.count < CHUNK_ENTRIES) return last;
    let c: Chunk;
    const spare = this.spare;
    if (spare && n <= spare.buf.length) {
      this.spare = undefined;
      c = spare;
      c.no = this.nextNo++;
      c.end = 0;
      c.count = 0;
      c.objs = [];
    } else {
      const buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
      c = { no: this.nextNo++, buf, end: 0, count: 0, seqs: new Float64Array(CHUNK_ENTRIES), lens: new Int32Array(CHUNK_ENTRIES), refs: new Int32Array(CHUNK_ENTRIES), objs: [], cost: 0 };
    }
    c.cost = c.buf.length + META_BYTES;
    this.chunks.push(c);
    this.cost += c.cost;
    if (this.budget) {
      // Once per chunk: this one, and the process messages the one before took on.
      const more = this.cost - this.charged;
      this.charged = this.cost;
      this.budget.charge(this, more);
    }
    return c;
  }

  private account(c: Chunk, n: number): void {
    c.cost += n;
    this.cost += n;
    // The newest chunk always stays: it is being written.
    while (this.cost > this.maxBytes && this.chunks.length > 1) {
      const cost = this.dropOldest();
      if (this.budget) {
        this.charged -= cost;
        this.budget.credit(cost);
      }
    }
  }

  /** The oldest chunk goes (never the newest: the caller checks); its cost, all of it charged (only the newest grows uncharged). */
  private dropOldest(): number {
    const old = this.chunks.shift()!;
    this.cost -= old.cost;
    if (old.count) this.evictedThrough = old.seqs[old.count - 1];
    old.objs = [];
    if (old.buf.length === CHUNK_BYTES) this.spare = old;
    return old.cost;
  }
}
