// The cursor of an exporter: the highest sequence below which everything
// the source delivered is stored. Acknowledgments come back in any order
// (a retried publish lands after later ones), so entries are kept in the
// order they were sent and the cursor moves only over an unbroken run of
// acknowledged ones.

interface Entry {
  last: bigint;
  acked: boolean;
}

export class AckWindow {
  private entries: Entry[] = [];
  private head = 0;
  private cursorValue: bigint;

  constructor(cursor: bigint) {
    this.cursorValue = cursor;
  }

  get cursor(): bigint {
    return this.cursorValue;
  }

  /** Entries sent and not yet behind the cursor. */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** Record a send covering sequences up to `last`; the handle is given back to ack(). */
  add(last: bigint): Entry {
    const e = { last, acked: false };
    this.entries.push(e);
    return e;
  }

  /** Mark `entry` stored; returns whether the cursor moved. */
  ack(entry: Entry): boolean {
    entry.acked = true;
    let moved = false;
    while (this.head < this.entries.length && this.entries[this.head].acked) {
      this.cursorValue = this.entries[this.head++].last;
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
