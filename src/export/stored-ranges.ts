// What a restarted exporter finds already stored past its cursor. The
// cursor is written once a second, not per message, so messages of the
// last second before a crash are stored and not yet behind it. One event
// per message is re-sent with the same Nats-Msg-Id and dropped by the
// broker; a batch cannot be: which events went into which message depends
// on how fast they came, so the same events sent again after a restart
// make different batches with different ids. The exporter therefore reads
// back the headers of what its watch stored since the cursor's position
// (sink.readBack) and skips those sequences; this is that set, as sorted,
// merged, inclusive ranges, walked forward once as items arrive in order.
import { parseSequenceRange, type SequenceRange } from '../client';
import { HEADER } from './records';
import type { StoredHeaders } from './sink';

type Range = SequenceRange;

export class StoredRanges {
  private ranges: Range[] = [];
  private next = 0;

  /** The ranges of `watch` in `epoch` past `cursor` among `stored` (a read-back). */
  static async read(stored: AsyncIterable<StoredHeaders>, watch: string, epoch: number, cursor: bigint): Promise<StoredRanges> {
    const out = new StoredRanges();
    for await (const h of stored) {
      if (h.get(HEADER.watch) !== watch || Number(h.get(HEADER.epoch) ?? 0) !== epoch) continue;
      const r = parseSequenceRange(h.get(HEADER.sequence));
      if (r && r.to > cursor) out.ranges.push({ from: r.from > cursor ? r.from : cursor + 1n, to: r.to });
    }
    out.ranges.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
    const merged: Range[] = [];
    for (const r of out.ranges) {
      const last = merged[merged.length - 1];
      if (last && r.from <= last.to + 1n) last.to = r.to > last.to ? r.to : last.to;
      else merged.push({ ...r });
    }
    out.ranges = merged;
    return out;
  }

  /** Sequences in the set (for the log). */
  get count(): bigint {
    return this.ranges.reduce((n, r) => n + r.to - r.from + 1n, 0n);
  }

  /** The highest sequence in the set; 0 when it is empty. */
  get last(): bigint {
    return this.ranges.length ? this.ranges[this.ranges.length - 1].to : 0n;
  }

  /** Whether `seq` is stored. Calls must not go backwards (items arrive in order). */
  has(seq: bigint): boolean {
    while (this.next < this.ranges.length && this.ranges[this.next].to < seq) this.next++;
    return this.next < this.ranges.length && this.ranges[this.next].from <= seq;
  }

  /** The parts of from..to not stored, in order (a gap the daemon reports again, wider than before). */
  missing(from: bigint, to: bigint): Array<[bigint, bigint]> {
    const out: Array<[bigint, bigint]> = [];
    let at = from;
    for (let i = this.next; i < this.ranges.length && at <= to; i++) {
      const r = this.ranges[i];
      if (r.to < at) continue;
      if (r.from > to) break;
      if (r.from > at) out.push([at, r.from - 1n]);
      at = r.to + 1n;
    }
    if (at <= to) out.push([at, to]);
    return out;
  }
}
