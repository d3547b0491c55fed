// The cursor of an exporter: the highest sequence below which everything
// the source delivered is stored. Acknowledgments come back in any order
// (a retried publish lands after later ones), so entries are kept in the
// order they were sent and the cursor moves only over an unbroken run of
// acknowledged ones. Each entry also keeps the broker's highest position
// known when it was sent: the broker stores it past that, so the head
// entry's is a position below everything stored and not yet behind the
// cursor (what a restarted exporter must read back, see stored-ranges.ts).

interface Entry {
  last: bigint;
  /** Set on the entry of a restart record: past it the cursor is in the new epoch. */
  epoch?: number;
  /** The highest broker position known when it was sent. */
  floor: number;
  acked: boolean;
}

export class AckWindow {
  private entries: Entry[] = [];
  private head = 0;
  private cursorValue: bigint;
  private epochValue: number;

  constructor(cursor: bigint, epoch = 0) {
    this.cursorValue = cursor;
    this.epochValue = epoch;
  }

  /** The watch's epoch the cursor is in (see RestartItem). */
  get epoch(): number {
    return this.epochValue;
  }

  get cursor(): bigint {
    return this.cursorValue;
  }

  /** Entries sent and not yet behind the cursor. */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** Below every message past the cursor: the head entry's floor, or `known` (the highest position now) when none is out. */
  floor(known: number): number {
    return this.head < this.entries.length ? this.entries[this.head].floor : known;
  }

  /** Record a send covering sequences up to `last`, `known` the highest broker position now; the handle is given back to ack(). */
  add(last: bigint, known: number, epoch?: number): Entry {
    const e = { last, epoch, floor: known, acked: false };
    this.entries.push(e);
    return e;
  }

  /** Mark `entry` stored; returns whether the cursor moved. */
  ack(entry: Entry): boolean {
    entry.acked = true;
    let moved = false;
    while (this.head < this.entries.length && this.entries[this.head].acked) {
      const e = this.entries[this.head++];
      this.cursorValue = e.last;
      if (e.epoch !== undefined) this.epochValue = e.epoch;
      moved = true;
    }
    // Compact now and then rather than shift() per ack: shift is O(n) on a large window.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return moved;
  }
}
