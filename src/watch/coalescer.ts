// Subscribe.coalesce_ms: notifications with the same event bits, path and
// pid within the window leave as one, with a count.
//
// The first event of a key opens its window and is held until the window
// ends; later ones with its key fold into it. When the window ends, one
// event leaves: the first itself if nothing folded into it, or else the
// last of them, with the count of all. Windows all have one length and
// start in read order, so the held map, in insertion order, is in deadline
// order too, and one timer at the oldest deadline serves them all (as in
// pending.ts). Held apart from the queue, because the queue holds
// notifications encoded (event-queue.ts) and a count cannot change once
// encoded.
//
// What is held is the first event's encoding, copied, not the event. Held
// as objects (the event, its path, its entries and their handles) for the
// length of a window, events outlived V8's young generation: with every
// event a key of its own (bench/pump.js notify, opens round 50,000 files,
// dfid_name mode, 40,000/s) coalescing cost 11-21 us of CPU per event
// against 9-10 without, scavenges alone 2.5 us more per event. Held
// encoded, 11-16 us against 8-12 (scavenges 0.2-0.6 us more). An event
// that folds in is kept as an object, as it may be the one that leaves,
// but that is one per key that repeats.
//
// Why hold rather than send the first at once and a summary later: a
// repeated event then leaves exactly once per window, as the contract says,
// at the price of a delay of up to the window for each notification. The
// kernel already merges an event with an equal one still in its queue, so
// what is left to fold are repeats spread over reads.
//
// The map is bounded: with MAX_HELD keys held, a new key sends the oldest
// on before its window ends.
import type { Clock } from '../common/clock';
import type { Timers } from './pending';
import type { EncodedEvent, WatchEvent, WatchStats } from './types';

export const MAX_HELD = 1024;

interface Held {
  /** The first event's encoding, copied. */
  first: EncodedEvent;
  /** The last event that folded into it, if any: it leaves instead, with the count. */
  last?: WatchEvent;
  count: number;
  /** When its window ends, on the watch's clock. */
  until: number;
}

export interface CoalescerParts {
  windowMs: number;
  clock: Clock;
  timers: Timers;
  stats: WatchStats;
  /** The sink's encoding of an event; its bytes valid until the next call. */
  encode(item: WatchEvent): EncodedEvent;
  /** An event leaves (its window ended, or room was needed), at `now`, encoded; the bytes are valid during the call. */
  emit(encoded: EncodedEvent, now: number): void;
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
      this.p.emit(this.p.encode(item), now);
      return;
    }
    const h = this.held.get(key);
    if (h && h.until > now) {
      h.last = item;
      h.count++;
      this.p.stats.coalesced++;
      return;
    }
    // Its window has ended and the timer not yet fired: it leaves now, before the newer one.
    if (h) this.expire(now);
    if (this.held.size >= this.maxHeld) this.sendOldest(now);
    const e = this.p.encode(item);
    const first = { bytes: Buffer.from(e.bytes), tail: e.tail };
    this.held.set(key, { first, count: 1, until: now + this.p.windowMs });
    if (this.timer === undefined) this.arm();
  }

  /** Send on every held event whose window ended by `now`. */
  expire(now: number): void {
    for (const [key, h] of this.held) {
      if (h.until > now) return;
      this.held.delete(key);
      this.send(h, now);
    }
  }

  /** Forget what is held (the stream is gone); the timer stops. */
  close(): void {
    this.held.clear();
    this.stop();
  }

  private send(h: Held, now: number): void {
    if (!h.last) {
      this.p.emit(h.first, now);
      return;
    }
    h.last.count = h.count;
    this.p.emit(this.p.encode(h.last), now);
  }

  private sendOldest(now: number): void {
    const first = this.held.entries().next();
    if (first.done) return;
    this.held.delete(first.value[0]);
    this.send(first.value[1], now);
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
