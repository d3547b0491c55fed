// Records of one watch back in sequence order. fanotify-export stores
// them in publish order, and a publish sent again after a timeout (NATS
// restarted, a lost acknowledgment) lands after later ones; a watch's
// sequences have no holes (each number is an event, an overflow notice or
// inside a gap record), so a reader that sees a number past the one it
// expects knows the missing ones are still to come. It holds what is
// ahead for a while and prints in order when they arrive; what never
// comes (an exporter that died with it unacknowledged, or it expired) is
// given up on after holdMs or maxHeld records, and the rest printed in
// order from there.
import type { SequenceRange } from '../client';
import { monotonicClock, type Clock } from '../common/clock';

/** setTimeout and clearTimeout, or a test's hand (the shape of src/watch's Timers). */
export interface OrderTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const nodeTimers: OrderTimers = { set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout) };

interface Held<T> {
  range: SequenceRange;
  item: T;
}

interface Line<T> {
  /** The next sequence expected. */
  next: bigint;
  /** Records ahead of next, sorted by from. */
  held: Array<Held<T>>;
  since: number;
}

export interface SequenceOrderOptions {
  /** How long a record ahead waits for the ones before it. */
  holdMs: number;
  /** Records held per watch at most; past it the oldest are given up on. */
  maxHeld: number;
}

export class SequenceOrder<T> {
  private readonly lines = new Map<string, Line<T>>();
  private timer?: unknown;

  constructor(
    private readonly emit: (item: T) => void,
    private readonly o: SequenceOrderOptions,
    private readonly clock: Clock = monotonicClock,
    private readonly timers: OrderTimers = nodeTimers,
  ) {}

  /** `item` of watch `key` covering `range` (undefined: emitted as it comes). */
  push(key: string, range: SequenceRange | undefined, item: T): void {
    if (!range) return this.emit(item);
    let line = this.lines.get(key);
    if (!line) this.lines.set(key, (line = { next: range.from, held: [], since: this.clock.now() }));
    if (range.from > line.next) {
      this.hold(line, { range, item });
      return;
    }
    // The expected one, or a late one given up on before: printed now.
    this.emit(item);
    if (range.to >= line.next) {
      line.next = range.to + 1n;
      line.since = this.clock.now();
      this.release(line);
    }
  }

  /** Everything held, in order (the reader is stopping). */
  close(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    for (const line of this.lines.values()) this.giveUp(line, Infinity);
  }

  private hold(line: Line<T>, h: Held<T>): void {
    let i = line.held.length;
    while (i > 0 && line.held[i - 1].range.from > h.range.from) i--;
    line.held.splice(i, 0, h);
    // The wait is counted from when a record first waits, not from the last progress of a quiet watch.
    if (line.held.length === 1) line.since = this.clock.now();
    if (line.held.length > this.o.maxHeld) this.giveUp(line, line.held.length - this.o.maxHeld);
    this.schedule();
  }

  /** Emit what is held from next on, as long as it follows without a hole. */
  private release(line: Line<T>): void {
    while (line.held.length > 0 && line.held[0].range.from <= line.next) {
      const h = line.held.shift()!;
      this.emit(h.item);
      if (h.range.to >= line.next) line.next = h.range.to + 1n;
    }
  }

  /** Stop waiting for the hole before the first `count` held records: emit them, and what follows them. */
  private giveUp(line: Line<T>, count: number): void {
    for (let n = 0; n < count && line.held.length > 0; n++) {
      const h = line.held.shift()!;
      this.emit(h.item);
      if (h.range.to >= line.next) line.next = h.range.to + 1n;
      this.release(line);
    }
    line.since = this.clock.now();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      let waiting = false;
      for (const line of this.lines.values()) {
        if (line.held.length > 0 && this.clock.now() - line.since >= this.o.holdMs) this.giveUp(line, 1);
        waiting ||= line.held.length > 0;
      }
      if (waiting) this.schedule();
    }, this.o.holdMs / 4);
  }
}
