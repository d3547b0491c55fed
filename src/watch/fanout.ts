// A named watch's output: the replay journal (journal.ts) read by every
// attached stream through its own cursor, and the permission events, each
// given to one stream.
//
// Notifications fan out: every stream gets every one, at its own pace; one
// that falls behind the journal's oldest entry is told the exact range it
// lost (a Gap) and goes on, and nothing waits for it. The journal is never
// full: the oldest entries go, so unlike an unnamed watch's queue
// (outbox.ts) no notification is dropped for a slow stream.
//
// A permission event goes to the stream with the fewest unanswered events
// it was given. When a stream ends, its unanswered events go at once to
// another (the same id, sent again); with no stream left, they and every
// new one get the watch's timeout decision (orphan), the only answer no
// stream can give. Permission events are not journaled: the answer is what
// matters, and a stream that attaches later could not give it first.
import type { OutboxLimits, EventOutput } from './outbox';
import { Journal, type Cursor } from './journal';
import type { JournalBudget, JournalOwner } from './journal-budget';
import { RateLimit } from './rate-limit';
import type { Sequence } from './sequence';
import type { AttachFrom, EncodedEvent, EventCodec, GapNotice, OverflowNotice, WatchEvent, WatchSink, WatchStats } from './types';

export interface FanoutParts {
  limits: OutboxLimits;
  stats: WatchStats;
  seq: Sequence;
  codec: EventCodec;
  journalBytes: number;
  /** The daemon-wide bound on journals, and this one's owner, as SharedOptions has them. */
  budget?: JournalBudget;
  owner?: JournalOwner;
  /** A permission event awaiting a verdict that no stream can take: the watch answers it now. */
  orphan(item: WatchEvent): void;
}

/** One attached stream. */
export class Consumer {
  writable = true;
  detached = false;
  /** Permission events to send, in order from permHead. */
  perm: WatchEvent[] = [];
  permHead = 0;
  /** Permission events this stream was given that await its verdict, by id. */
  readonly owned = new Map<number, WatchEvent>();
  /** A Gap to send before anything else. */
  gap?: GapNotice;

  constructor(
    readonly sink: WatchSink,
    readonly cursor: Cursor,
  ) {}

  get permWaiting(): boolean {
    return this.permHead < this.perm.length;
  }

  takePerm(): WatchEvent {
    const item = this.perm[this.permHead++];
    if (this.permHead === this.perm.length) {
      this.perm = [];
      this.permHead = 0;
    }
    return item;
  }
}

export class Fanout implements EventOutput {
  readonly full = false;
  private readonly journal: Journal;
  private consumers: Consumer[] = [];
  private readonly owners = new Map<number, Consumer>();
  private readonly rate?: RateLimit;
  /** The rate-limit notice of the current run of drops, grown while it lasts. */
  private openRateNotice?: OverflowNotice;

  constructor(private readonly p: FanoutParts) {
    this.journal = new Journal(p.journalBytes, p.seq.last, p.budget, p.owner);
    if (p.limits.maxEventsPerSecond) this.rate = new RateLimit(p.limits.maxEventsPerSecond);
  }

  /** Streams attached. */
  get attached(): number {
    return this.consumers.length;
  }

  /** Entries the journal holds. */
  get length(): number {
    return this.journal.length;
  }

  /** The oldest sequence held for resuming; 0: none. */
  get firstSequence(): number {
    return this.journal.firstSequence;
  }

  /** Bytes the journal counts against its bound. */
  get journalBytes(): number {
    return this.journal.bytes;
  }

  pushNotification(item: WatchEvent): void {
    const seq = (item.seq = this.p.seq.next());
    const e = this.p.codec.encode(item);
    this.openRateNotice = undefined;
    this.journal.appendEvent(e.bytes, e.tail, seq);
  }

  pushEncoded(e: EncodedEvent): void {
    const seq = this.p.seq.next();
    const c = this.p.codec;
    const s = c.withSequence ? c.withSequence(e, seq) : e;
    this.openRateNotice = undefined;
    this.journal.appendEvent(s.bytes, s.tail, seq);
  }

  encode(item: WatchEvent): EncodedEvent {
    return this.p.codec.encode(item);
  }

  pushPermission(item: WatchEvent): void {
    item.seq = this.p.seq.next();
    const c = this.fewestPending();
    if (!c) {
      if (item.needsVerdict) this.p.orphan(item);
      return;
    }
    c.perm.push(item);
    if (item.needsVerdict) this.own(c, item);
  }

  kernelOverflow(): void {
    this.p.stats.kernelOverflows++;
    this.notice({ source: 'kernel', dropped: 0, total: this.p.stats.kernelOverflows });
  }

  /** Not called while full is false; counted as the single-stream queue counts it, should it be. */
  drop(): void {
    this.p.stats.notificationsDropped++;
  }

  withinRate(now: number): boolean {
    if (!this.rate || this.rate.admit(now)) return true;
    const stats = this.p.stats;
    stats.droppedRateLimit++;
    if (!this.openRateNotice) {
      this.openRateNotice = { source: 'rate_limit', dropped: 0, total: 0 };
      this.notice(this.openRateNotice);
    }
    this.openRateNotice.dropped++;
    this.openRateNotice.total = stats.droppedRateLimit;
    return false;
  }

  private notice(n: OverflowNotice): void {
    n.seq = this.p.seq.next();
    this.journal.appendNotice(n, n.seq);
  }

  /** A stream joins: from after `from.afterSequence` (0: the oldest held), or live only. */
  attach(sink: WatchSink, from: AttachFrom = {}): Consumer {
    const after = from.afterSequence ?? 0;
    const live = from.liveOnly === true;
    const c = new Consumer(sink, live ? this.journal.endCursor(this.p.seq.last) : this.journal.cursorAfter(after));
    if (!live && after > 0) c.gap = this.journal.lostAfter(after);
    this.consumers.push(c);
    this.p.stats.consumers = this.consumers.length;
    this.flushOne(c);
    return c;
  }

  /** A stream ended: its unanswered permission events go to another, or to the watch's timeout decision. */
  detach(c: Consumer): void {
    if (c.detached) return;
    c.detached = true;
    this.consumers = this.consumers.filter((x) => x !== c);
    this.p.stats.consumers = this.consumers.length;
    const moved = new Set<Consumer>();
    for (const [id, item] of c.owned) {
      this.owners.delete(id);
      const to = this.fewestPending();
      if (!to) {
        this.p.orphan(item);
        continue;
      }
      to.perm.push(item);
      this.own(to, item);
      this.p.stats.reassigned++;
      moved.add(to);
    }
    c.owned.clear();
    c.perm = [];
    for (const to of moved) this.flushOne(to);
  }

  /** The stream a permission event awaiting a verdict was given to. */
  ownerOf(id: number): Consumer | undefined {
    return this.owners.get(id);
  }

  /** A permission event was answered (by any means): no stream holds it any more. */
  answered(item: WatchEvent): void {
    const c = this.owners.get(item.id);
    if (!c) return;
    this.owners.delete(item.id);
    c.owned.delete(item.id);
  }

  resume(c: Consumer): void {
    c.writable = true;
    this.flushOne(c);
  }

  flush(): void {
    for (const c of this.consumers) this.flushOne(c);
  }

  /** Send a stream what it has not had, in sequence order, while it takes more. */
  private flushOne(c: Consumer): void {
    const j = this.journal;
    const limits = this.p.limits;
    while (c.writable && !c.detached) {
      if (c.gap) {
        const gap = c.gap;
        c.gap = undefined;
        this.p.stats.gapSequences += gap.to - gap.from + 1;
        c.writable = c.sink.sendGap ? c.sink.sendGap(gap) : true;
        continue;
      }
      c.gap = j.catchUp(c.cursor);
      if (c.gap) continue;
      const next = j.peek(c.cursor);
      const perm = c.permWaiting ? c.perm[c.permHead].seq! : Infinity;
      if (next === Infinity && perm === Infinity) return;
      if (perm < next) {
        this.sendPermissions(c, next);
        continue;
      }
      const notice = j.takeNotice(c.cursor);
      if (notice) {
        c.writable = c.sink.sendOverflow(notice);
        continue;
      }
      const run = j.read(c.cursor, limits.maxBatchEvents, limits.maxBatchBytes ?? Infinity, perm);
      this.p.stats.eventsSent += run.count;
      c.writable = c.sink.sendEvents(run.bytes, run.count);
    }
  }

  /** The stream's permission events numbered below `before`, encoded now (needs_verdict may have changed while they waited). */
  private sendPermissions(c: Consumer, before: number): void {
    const parts: Uint8Array[] = [];
    let count = 0;
    let bytes = 0;
    const maxBytes = this.p.limits.maxBatchBytes ?? Infinity;
    while (c.permWaiting && count < this.p.limits.maxBatchEvents && c.perm[c.permHead].seq! < before) {
      const e = this.p.codec.encode(c.perm[c.permHead]);
      const size = e.bytes.length + (e.tail?.length ?? 0);
      if (count > 0 && bytes + size > maxBytes) break;
      c.takePerm();
      parts.push(Buffer.from(e.bytes));
      if (e.tail) parts.push(e.tail);
      bytes += size;
      count++;
    }
    this.p.stats.eventsSent += count;
    c.writable = c.sink.sendEvents(Buffer.concat(parts), count);
  }

  private own(c: Consumer, item: WatchEvent): void {
    c.owned.set(item.id, item);
    this.owners.set(item.id, c);
  }

  private fewestPending(): Consumer | undefined {
    let best: Consumer | undefined;
    for (const c of this.consumers) if (!best || c.owned.size < best.owned.size) best = c;
    return best;
  }

  /** The watch closed: every stream still attached is told (with the failure that closed it, if one did). */
  close(err?: Error): void {
    const left = this.consumers;
    this.consumers = [];
    this.owners.clear();
    this.journal.clear();
    for (const c of left) {
      c.detached = true;
      c.sink.closed?.(err);
    }
  }
}
