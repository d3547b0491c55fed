// Subscribe.coalesce_ms: notifications with the same event bits, path and
// pid within the window leave as one, with a count.
//
// The first event of a key is held, as an object, until its window ends;
// later ones with its key fold into it (its count grows), and then it
// leaves. Held apart from the queue, because the queue holds notifications
// encoded (event-queue.ts) and a count cannot change once encoded. Windows
// all have one length and start in read order, so the held map, in
// insertion order, is in deadline order too, and one timer at the oldest
// deadline serves them all (as in pending.ts).
//
// Why hold rather than send the first at once and a summary later: a
// repeated event then leaves exactly once per window, as the contract says,
// at the price of a delay of up to the window for each notification. The
// kernel already merges an event with an equal one still in its queue, so
// what is left to fold are repeats spread over reads.
//
// The map is bounded: with MAX_HELD keys held, a new key sends the oldest
// on before its window ends, so a flood of distinct paths costs a bounded
// amount of memory (held events are objects: about 0.7 KB each).
import type { Clock } from '../common/clock';
import type { Timers } from './pending';
import type { WatchEvent, WatchStats } from './types';

export const MAX_HELD = 1024;

interface Held {
  item: WatchEvent;
  /** When its window ends, on the watch's clock. */
  until: number;
}

export interface CoalescerParts {
  windowMs: number;
  clock: Clock;
  timers: Timers;
  stats: WatchStats;
  /** An event leaves (its window ended, or room was needed), at `now`. */
  emit(item: WatchEvent, now: number): void;
  /** After the timer sent held events on: the queue has more to send. */
  afterTimer(): void;
  /** The timer's work threw: the watch fails as if a read had. */
  onError(err: Error): void;
  /** Keys held at most; MAX_HELD unless a test says otherwise. */
  maxHeld?: number;
}

/**
 * The key of a notification, or undefined for one that is not folded: one
 * with no path (nothing says two are the same), or a rename with both
 * entries (two with one path may have moved to different names).
 */
function keyOf(item: WatchEvent): string | undefined {
  const ev = item.ev;
  if (!ev.path || (ev.oldEntry && ev.newEntry)) return undefined;
  return `${ev.mask}:${ev.pid}:${ev.path.toString('latin1')}`;
}

export class Coalescer {
  private readonly held = new Map<string, Held>();
  private readonly maxHeld: number;
  private timer?: unknown;

  constructor(private readonly p: CoalescerParts) {
    this.maxHeld = p.maxHeld ?? MAX_HELD;
  }

  get size(): number {
    return this.held.size;
  }

  /** A notification read at `now`: folded into the held one with its key, or held itself (or sent on, if it has no key). */
  add(item: WatchEvent, now: number): void {
    const key = keyOf(item);
    if (key === undefined) {
      this.p.emit(item, now);
      return;
    }
    const h = this.held.get(key);
    if (h && h.until > now) {
      h.item.count = (h.item.count ?? 1) + 1;
      this.p.stats.coalesced++;
      return;
    }
    // Its window has ended and the timer not yet fired: it leaves now, before the newer one.
    if (h) this.expire(now);
    if (this.held.size >= this.maxHeld) this.sendOldest(now);
    this.held.set(key, { item, until: now + this.p.windowMs });
    if (this.timer === undefined) this.arm();
  }

  /** Send on every held event whose window ended by `now`. */
  expire(now: number): void {
    for (const [key, h] of this.held) {
      if (h.until > now) return;
      this.held.delete(key);
      this.p.emit(h.item, now);
    }
  }

  /** Forget what is held (the stream is gone); the timer stops. */
  close(): void {
    this.held.clear();
    this.stop();
  }

  private sendOldest(now: number): void {
    const first = this.held.entries().next();
    if (first.done) return;
    this.held.delete(first.value[0]);
    this.p.emit(first.value[1].item, now);
  }

  private arm(): void {
    const first = this.held.values().next();
    if (first.done) return;
    this.timer = this.p.timers.set(() => this.fire(), Math.max(0, first.value.until - this.p.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    try {
      this.expire(this.p.clock.now());
      this.p.afterTimer();
      this.arm();
    } catch (err) {
      this.p.onError(err as Error);
    }
  }

  private stop(): void {
    if (this.timer === undefined) return;
    this.p.timers.clear(this.timer);
    this.timer = undefined;
  }
}
