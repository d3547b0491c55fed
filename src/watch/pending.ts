// The permission events awaiting a verdict, with their deadlines. Every
// event of a watch has the same timeout and events are added in the order
// they were read, so deadlines are in insertion order and one timer, at
// the oldest deadline, serves them all.
//
// Deadlines are on an injected clock (monotonic by default): on the wall
// clock, a step back (NTP, a VM resume) would hold blocked openers past the
// timeout and a step forward would time everything out at once.
import { monotonicClock, type Clock } from '../common/clock';

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const nodeTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface Entry<T> {
  item: T;
  deadline: number;
}

export class PendingLedger<T> {
  private readonly entries = new Map<number, Entry<T>>();
  private timer?: unknown;

  constructor(
    private readonly timeoutMs: number,
    /** An entry whose deadline passed, already removed. */
    private readonly onExpire: (id: number, item: T) => void,
    private readonly clock: Clock = monotonicClock,
    private readonly timers: Timers = nodeTimers,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Await a verdict on item until readAt + the timeout; readAt is on this ledger's clock and never before the last add's. */
  add(id: number, item: T, readAt: number): void {
    const deadline = readAt + this.timeoutMs;
    this.entries.set(id, { item, deadline });
    if (this.timer === undefined) this.arm(deadline);
  }

  /** The item awaiting a verdict under id, removed; undefined when unknown or answered. */
  take(id: number): T | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    return e.item;
  }

  /** Every item still awaiting a verdict, in deadline order, removed; the timer stops. */
  takeAll(): [number, T][] {
    const all: [number, T][] = [];
    for (const [id, e] of this.entries) all.push([id, e.item]);
    this.entries.clear();
    this.stop();
    return all;
  }

  /** Hand every expired entry to onExpire, then wait for the next deadline. */
  expire(): void {
    this.stop();
    const now = this.clock.now();
    for (const [id, e] of this.entries) {
      if (e.deadline > now) {
        // An add() from inside onExpire may have armed for its own, later, deadline.
        this.stop();
        this.arm(e.deadline);
        return;
      }
      this.entries.delete(id);
      this.onExpire(id, e.item);
    }
  }

  private arm(deadline: number): void {
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      this.expire();
    }, Math.max(0, deadline - this.clock.now()));
  }

  private stop(): void {
    if (this.timer === undefined) return;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }
}
