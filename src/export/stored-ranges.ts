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

function merge(ranges: Range[]): Range[] {
  ranges.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const merged: Range[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r.from <= last.to + 1n) last.to = r.to > last.to ? r.to : last.to;
    else merged.push({ ...r });
  }
  return merged;
}

export class StoredRanges {
  private ranges: Range[] = [];
  private next = 0;

  /**
   * The ranges of `watch` past `cursor` in `epoch` among `stored` (a
   * read-back). A restart record of that epoch among them means the run
   * that stored it had moved on to a new watch, numbered from 1 in the next
   * epoch, before its cursor said so: the place is then the next epoch's
   * start, and its ranges are the ones to skip.
   */
  static async read(stored: AsyncIterable<StoredHeaders>, watch: string, epoch: number, cursor: bigint): Promise<{ epoch: number; cursor: bigint; ranges: StoredRanges }> {
    const byEpoch = new Map<number, Range[]>();
    const restarted = new Set<number>();
    for await (const h of stored) {
      if (h.get(HEADER.watch) !== watch) continue;
      const e = Number(h.get(HEADER.epoch) ?? 0);
      const text = h.get(HEADER.sequence);
      if (h.get(HEADER.record) === 'gap' && /^\d+-0$/.test(text ?? '')) restarted.add(e);
      const r = parseSequenceRange(text);
      if (r) byEpoch.set(e, [...(byEpoch.get(e) ?? []), r]);
    }
    while (restarted.has(epoch)) {
      epoch++;
      cursor = 0n;
    }
    const out = new StoredRanges();
    out.ranges = merge((byEpoch.get(epoch) ?? []).filter((r) => r.to > cursor).map((r) => ({ from: r.from > cursor ? r.from : cursor + 1n, to: r.to })));
    return { epoch, cursor, ranges: out };
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

  /** The last of the stored run that `seq` begins; seq - 1 when seq is not stored. */
  through(seq: bigint): bigint {
    return this.has(seq) ? this.ranges[this.next].to : seq - 1n;
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
