// What a watch has for its client: the bounded queue (event-queue.ts), the
// sink it drains to while the sink takes more, the rate limit on what
// enters it, and the overflow notices that count what a full queue or the
// rate limit dropped.
import { EventQueue } from './event-queue';
import { RateLimit } from './rate-limit';
import type { Sequence } from './sequence';
import type { EncodedEvent, OverflowNotice, WatchEvent, WatchSink, WatchStats } from './types';

/**
 * What the reader and the coalescer hand events to: one stream's queue
 * (Outbox, an unnamed watch) or a journal read by any number of streams
 * (Fanout, a named watch). Each gives every event and notice its sequence
 * as it is queued.
 */
export interface EventOutput {
  /** No room for another notification: new ones are dropped (permission events never are). */
  readonly full: boolean;
  /** Events and notices waiting to be sent (the most any one stream has waiting). */
  readonly length: number;
  pushNotification(item: WatchEvent): void;
  /** A notification encoded without its sequence (by the coalescer), queued with one. */
  pushEncoded(e: EncodedEvent): void;
  encode(item: WatchEvent): EncodedEvent;
  pushPermission(item: WatchEvent): void;
  kernelOverflow(): void;
  drop(): void;
  withinRate(now: number): boolean;
  flush(): void;
  /** The watch closed: forget everything; the streams still attached are told (with the failure, when one closed it). */
  close(err?: Error): void;
}

export interface OutboxLimits {
  maxBatchEvents: number;
  /** Encoded size a batch stays within (but for a single larger event); no limit when unset. */
  maxBatchBytes?: number;
  /** Notification events held before new ones are dropped. */
  queueCapacity: number;
  /** Notifications queued per second at most; 0 or unset: no limit. */
  maxEventsPerSecond?: number;
}

export class Outbox implements EventOutput {
  private readonly queue = new EventQueue();
  private queuedNotifications = 0;
  /** The client-overflow notice still in the queue, grown while drops continue. */
  private openDropNotice?: OverflowNotice;
  /** The rate-limit notice still in the queue, grown while drops continue. */
  private openRateNotice?: OverflowNotice;
  private readonly rate?: RateLimit;
  private sink?: WatchSink;
  private writable = false;

  constructor(
    private readonly limits: OutboxLimits,
    private readonly stats: WatchStats,
    private readonly seq: Sequence,
  ) {
    if (limits.maxEventsPerSecond) this.rate = new RateLimit(limits.maxEventsPerSecond);
  }

  /** Deliver to sink from now on; call flush() to send what is queued. */
  attach(sink: WatchSink): void {
    this.sink = sink;
    this.writable = true;
  }

  /** The sink can take more after returning false. */
  resume(): void {
    this.writable = true;
    this.flush();
  }

  /** No room for another notification: new ones are dropped (permission events never are). */
  get full(): boolean {
    return this.queuedNotifications >= this.limits.queueCapacity;
  }

  get length(): number {
    return this.queue.length;
  }

  /** Queued encoded, with the sink's encoder (reads start at attach(), so there is one). */
  pushNotification(item: WatchEvent): void {
    item.seq = this.seq.next();
    this.queueEncoded(this.sink!.encode(item));
  }

  /** A notification's encoding by encode() without a sequence, queued with one (its bytes are copied). */
  pushEncoded(e: EncodedEvent): void {
    const seq = this.seq.next();
    const sink = this.sink!;
    this.queueEncoded(sink.withSequence ? sink.withSequence(e, seq) : e);
  }

  private queueEncoded(e: EncodedEvent): void {
    this.queue.pushEncoded(e.bytes, e.tail);
    this.queuedNotifications++;
  }

  /** The sink's encoding of an event: its bytes are valid until the next call. */
  encode(item: WatchEvent): EncodedEvent {
    return this.sink!.encode(item);
  }

  /** Queued as an object: what is encoded for it can change until it is sent. */
  pushPermission(item: WatchEvent): void {
    item.seq = this.seq.next();
    this.queue.pushEvent(item);
  }

  kernelOverflow(): void {
    this.stats.kernelOverflows++;
    this.queue.pushOverflow({ source: 'kernel', dropped: 0, total: this.stats.kernelOverflows, seq: this.seq.next() });
  }

  /** A notification dropped for want of room: counted, and told to the client where the gap is. */
  drop(): void {
    this.stats.notificationsDropped++;
    if (!this.openDropNotice) {
      this.openDropNotice = { source: 'client', dropped: 0, total: 0, seq: this.seq.next() };
      this.queue.pushOverflow(this.openDropNotice);
    }
    this.openDropNotice.dropped++;
    this.openDropNotice.total = this.stats.notificationsDropped;
  }

  /**
   * Whether a notification may be queued at `now` under the rate limit;
   * when not, it is counted and told to the client, as a drop is.
   */
  withinRate(now: number): boolean {
    if (!this.rate || this.rate.admit(now)) return true;
    this.stats.droppedRateLimit++;
    if (!this.openRateNotice) {
      this.openRateNotice = { source: 'rate_limit', dropped: 0, total: 0, seq: this.seq.next() };
      this.queue.pushOverflow(this.openRateNotice);
    }
    this.openRateNotice.dropped++;
    this.openRateNotice.total = this.stats.droppedRateLimit;
    return false;
  }

  /** Send what is queued, in batches, while the sink takes more. */
  flush(): void {
    const sink = this.sink;
    if (!sink) return;
    const encode = (it: WatchEvent) => sink.encode(it);
    while (this.writable && this.queue.length) {
      const notice = this.queue.takeOverflow();
      if (notice) {
        if (notice === this.openDropNotice) this.openDropNotice = undefined;
        if (notice === this.openRateNotice) this.openRateNotice = undefined;
        this.writable = sink.sendOverflow(notice);
        continue;
      }
      const batch = this.queue.takeEvents(this.limits.maxBatchEvents, this.limits.maxBatchBytes ?? Infinity, encode);
      this.queuedNotifications -= batch.notifications;
      this.stats.eventsSent += batch.count;
      this.writable = sink.sendEvents(batch.bytes, batch.count);
    }
  }

  /** Forget everything queued and the sink, telling it. */
  close(err?: Error): void {
    this.queue.clear();
    const sink = this.sink;
    this.sink = undefined;
    sink?.closed?.(err);
  }
}
