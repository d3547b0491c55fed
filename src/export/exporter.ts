// The exporter: items from the source, in order, become messages; at most
// `window` are in flight; each is sent again (same msgId) until the broker
// acknowledges it, and the cursor moves only over an unbroken run of
// acknowledged ones. The cursor is written to the store every
// cursorIntervalMs and at close, not per message, so a restart repeats at
// most the last interval's messages: a restarted exporter reads back what
// was stored past the cursor and skips it (stored-ranges.ts), and the
// broker drops what is sent again with the same msgId.
// With batch > 1, runs of events already waiting when a place in the
// window frees go out as one EventBatch message (at most `batch` events):
// under light load each event still goes alone at once, under heavy load
// messages fill up, so a broker that stores fewer messages per second than
// the daemon makes events keeps up without a timer adding latency.
// When the window and the queue behind it are full the source is paused:
// the daemon's buffer fills and it reports a gap, which is published; the
// daemon itself never waits for the broker.
import type { Logger } from '../common/log';
import { RateLimitedLog } from '../common/rate-limited-log';
import { AckWindow } from './ack-window';
import { ExporterCounters } from './exporter-metrics';
import { lastSequenceOf, type EventItem, type ExportItem } from './items';
import { batchedSize, batchMessage, gapRecord, toMessage, type RecordContext } from './records';
import type { CursorStore, OutMessage, Sink } from './sink';
import type { Source, SourceSession } from './source';
import { StoredRanges } from './stored-ranges';

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;

export interface ExporterOptions {
  source: Source;
  sink: Sink;
  cursorStore: CursorStore;
  /** Prefix, node and format; watch and boot id come from the source's session. */
  records: Omit<RecordContext, 'bootId' | 'epoch'>;
  /** Messages in flight at most. */
  window: number;
  /** Events per message at most: 1 sends each event alone (fanotify.v1.Event), more sends EventBatch messages. */
  batch?: number;
  /** The broker's largest message (NATS max_payload): a batch is cut before it. */
  maxMessageBytes?: number;
  cursorIntervalMs: number;
  log: Logger;
  counters?: ExporterCounters;
}

export class Exporter {
  readonly counters: ExporterCounters;
  private readonly errors: RateLimitedLog;
  private queue: ExportItem[] = [];
  private queueHead = 0;
  private acks = new AckWindow(0n);
  private context?: RecordContext;
  private saved = '';
  private bootId = '';
  /** The epoch of items being sent (the cursor's may be behind it, see RestartItem). */
  private epoch = 0;
  private saving?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private paused = false;
  private closing = false;
  private idle?: () => void;
  /** The highest broker position an acknowledgment has named (or the stream's last at start). */
  private known = 0;
  /** What was stored past the cursor before a restart (read back at start); skipped, not sent again. */
  private stored?: StoredRanges;
  /** The cursor's position at start, kept while `stored` is ahead of the cursor (those messages lie past it). */
  private storedFloor = 0;
  /** The epoch `stored` belongs to: after a restart item, numbering starts over and it says nothing. */
  private storedEpoch = 0;
  private readonly batch: number;
  private readonly maxBytes: number;

  constructor(private readonly o: ExporterOptions) {
    this.counters = o.counters ?? new ExporterCounters();
    this.errors = new RateLimitedLog(o.log, undefined, 10_000);
    this.batch = o.batch ?? 1;
    // Headers and the subject travel beside the payload; leave them 4 KiB.
    this.maxBytes = Math.max(1024, (o.maxMessageBytes ?? 1024 * 1024) - 4096);
  }

  get cursor(): bigint {
    return this.acks.cursor;
  }

  /** Read the cursor from the store, what was stored past it, and start the source after it. */
  async start(): Promise<void> {
    const stored = await this.o.cursorStore.load();
    const cursor = stored?.sequence ?? 0n;
    this.epoch = stored?.epoch ?? 0;
    this.acks = new AckWindow(cursor, this.epoch);
    this.bootId = stored?.bootId ?? '';
    this.counters.cursor = cursor;
    this.known = await this.o.sink.lastPosition();
    if (stored?.position !== undefined) await this.readBack(stored.position, cursor);
    const start = this.acks.cursor;
    this.saved = stored?.position === undefined ? '' : this.savedKey();
    // Written before anything is sent, so a crash in this run is read back from here next time.
    await this.saveCursor();
    this.o.log.info('starting', { after_sequence: start.toString(), epoch: this.epoch, boot_id: this.bootId });
    this.o.source.start(start, {
      session: (s) => this.onSession(s),
      items: (items) => this.onItems(items),
      lost: (reason) => this.o.log.warn('watch session lost; attaching again', { reason, cursor: this.cursor.toString() }),
    });
    this.timer = setInterval(() => void this.saveCursor(), this.o.cursorIntervalMs);
  }

  /** Stop reading, wait up to timeoutMs for what is in flight, write the cursor. */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closing = true;
    await this.o.source.close();
    clearInterval(this.timer);
    if (this.counters.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => (this.idle = r)), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    await this.saveCursor();
    this.errors.flush();
  }

  private async readBack(position: number, cursor: bigint): Promise<void> {
    const started = performance.now();
    const filter = `${this.o.records.prefix}.${this.o.records.node}.>`;
    let found: Awaited<ReturnType<typeof StoredRanges.read>>;
    try {
      found = await StoredRanges.read(this.o.sink.readBack(position, filter), this.o.records.watch, this.epoch, cursor);
    } catch (err) {
      // Exporting with repeats beats not exporting: single events are still dropped by id, batches may be stored twice.
      this.o.log.error('cannot read back what was stored past the cursor; what the last interval stored may be stored again', { err: (err as Error).message });
      return;
    }
    const { ranges } = found;
    if (found.epoch !== this.epoch) {
      this.o.log.warn('the last run had opened the watch anew before its cursor said so; going on in its new epoch', { epoch: found.epoch });
      this.epoch = found.epoch;
      this.acks = new AckWindow(found.cursor, found.epoch);
      this.counters.cursor = found.cursor;
    }
    if (ranges.last > found.cursor) {
      this.stored = ranges;
      this.storedFloor = position;
      this.storedEpoch = found.epoch;
    }
    this.o.log.info('read back what was stored past the cursor', { from_position: position, sequences: ranges.count.toString(), ms: Math.round(performance.now() - started) });
  }

  /** A position below everything of this watch stored past the cursor. */
  private floor(): number {
    if (this.stored && (this.acks.epoch !== this.storedEpoch || this.acks.cursor >= this.stored.last)) this.stored = undefined;
    return this.stored ? this.storedFloor : this.acks.floor(this.known);
  }

  private savedKey(): string {
    return `${this.acks.epoch}/${this.acks.cursor}/${this.floor()}`;
  }

  private onSession(s: SourceSession): void {
    this.counters.sessions++;
    this.bootId = s.bootId;
    this.context = { ...this.o.records, epoch: this.epoch, bootId: s.bootId };
    if (s.lastSequence > this.counters.daemonSequence) this.counters.daemonSequence = s.lastSequence;
  }

  private onItems(items: ExportItem[]): void {
    for (const item of items) this.queue.push(item);
    const last = lastSequenceOf(items[items.length - 1]);
    if (last > this.counters.daemonSequence) this.counters.daemonSequence = last;
    this.pump();
  }

  private pump(): void {
    // Closing: only what is in flight is finished; the rest is read again from the cursor next time.
    while (!this.closing && this.counters.inFlight < this.o.window && this.queueHead < this.queue.length) {
      const item = this.queue[this.queueHead];
      if (this.storedNow() && this.skipStored(item)) this.queueHead++;
      else if (item.kind === 'event' && this.batch > 1) this.sendBatch();
      else this.send(this.queue[this.queueHead++]);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    const queued = this.queue.length - this.queueHead;
    this.counters.queued = queued;
    // Hold at most one window's worth read ahead: beyond it the daemon's buffer is where events wait.
    const ahead = this.o.window * this.batch;
    if (!this.paused && queued >= ahead) {
      this.paused = true;
      this.o.source.pause();
    } else if (this.paused && queued < ahead / 2 && !this.closing) {
      this.paused = false;
      this.o.source.resume();
    }
  }

  /**
   * An item the read-back found stored: not sent again, its place in the
   * cursor taken at once. A gap the daemon reports again is sent only for
   * what is not stored yet (it may be wider now). False: send it as usual.
   */
  private skipStored(item: ExportItem): boolean {
    const stored = this.storedNow()!;
    if (item.kind === 'restart') return false;
    if (item.kind === 'gap') {
      const missing = stored.missing(item.from, item.to);
      for (const [from, to] of missing) this.sendGap(from, to);
      if (missing.length === 0) this.counters.skipped++;
    } else if (stored.has(item.sequence)) {
      this.counters.skipped++;
    } else {
      return false;
    }
    this.acks.ack(this.acks.add(lastSequenceOf(item), this.known));
    this.counters.cursor = this.acks.cursor;
    return true;
  }

  /** The stored ranges while they apply: in the epoch they were read for. */
  private storedNow(): StoredRanges | undefined {
    return this.epoch === this.storedEpoch ? this.stored : undefined;
  }

  private sendGap(from: bigint, to: bigint): void {
    const entry = this.acks.add(to, this.known);
    this.countGap(from, to);
    this.launch(gapRecord(this.context!, from, to), entry);
  }

  private countGap(from: bigint, to: bigint): void {
    this.counters.gaps++;
    this.counters.gapSequences += to - from + 1n;
    this.o.log.warn('the daemon reported a gap; publishing a gap record', { from_sequence: from.toString(), to_sequence: to.toString() });
  }

  /** The run of events at the queue's head, up to `batch` events or the broker's message size, as one message. */
  private sendBatch(): void {
    const events: EventItem[] = [];
    let bytes = 0;
    while (events.length < this.batch && this.queueHead < this.queue.length) {
      const item = this.queue[this.queueHead];
      if (item.kind !== 'event' || this.storedNow()?.has(item.sequence)) break;
      const size = batchedSize(item);
      if (events.length > 0 && bytes + size > this.maxBytes) break;
      events.push(item);
      bytes += size;
      this.queueHead++;
    }
    let message = events.length === 1 ? toMessage(this.context!, events[0]) : batchMessage(this.context!, events, bytes);
    // With --format json the payload outgrows the protobuf bytes counted above: fewer events, the rest back in the queue.
    while (message.payload.length > this.maxBytes && events.length > 1) {
      const keep = Math.ceil(events.length / 2);
      this.queueHead -= events.length - keep;
      events.length = keep;
      bytes = events.reduce((n, e) => n + batchedSize(e), 0);
      message = keep === 1 ? toMessage(this.context!, events[0]) : batchMessage(this.context!, events, bytes);
    }
    const entry = this.acks.add(events[events.length - 1].sequence, this.known);
    this.counters.batched += events.length;
    this.launch(message, entry);
  }

  private send(item: ExportItem): void {
    // What the old watch stored after the cursor before a crash is not lost: the restart record begins past it.
    const stored = this.storedNow();
    if (item.kind === 'restart' && stored) item = { kind: 'restart', from: stored.through(item.from) + 1n };
    const message = toMessage(this.context!, item);
    let epoch: number | undefined;
    if (item.kind === 'restart') {
      epoch = ++this.epoch;
      this.context!.epoch = epoch;
      this.counters.gaps++;
      this.o.log.warn('the watch was opened anew (it had closed); publishing a gap record with no end', { from_sequence: item.from.toString(), epoch });
    }
    const entry = this.acks.add(lastSequenceOf(item), this.known, epoch);
    if (item.kind === 'gap') this.countGap(item.from, item.to);
    this.launch(message, entry);
  }

  private launch(message: OutMessage, entry: ReturnType<AckWindow['add']>): void {
    this.counters.inFlight++;
    this.counters.published++;
    this.attempt(message, () => {
      if (this.acks.ack(entry)) this.counters.cursor = this.acks.cursor;
    });
  }

  private attempt(message: OutMessage, stored: () => void, delayMs = RETRY_MIN_MS): void {
    const started = performance.now();
    this.o.sink.publish(message).then(
      (ack) => {
        this.counters.latency?.observe((performance.now() - started) / 1000);
        this.counters.acknowledged++;
        if (ack.position > this.known) this.known = ack.position;
        if (ack.duplicate) this.counters.duplicates++;
        this.counters.inFlight--;
        stored();
        if (this.counters.inFlight === 0) this.idle?.();
        this.pump();
      },
      (err: Error) => {
        this.counters.retries++;
        this.errors.warn('publish not acknowledged; sending it again', { err: err.message, subject: message.subject });
        setTimeout(() => this.attempt(message, stored, Math.min(delayMs * 2, RETRY_MAX_MS)), delayMs);
      },
    );
  }

  private async saveCursor(): Promise<void> {
    await this.saving;
    const cursor = this.acks.cursor;
    const epoch = this.acks.epoch;
    const position = this.floor();
    const key = this.savedKey();
    if (key === this.saved) return;
    this.saving = this.o.cursorStore.save({ sequence: cursor, bootId: this.bootId, epoch, position }).then(
      () => {
        this.saved = key;
        this.counters.cursorSaves++;
      },
      (err: Error) => this.errors.warn('cursor not saved; trying again at the next interval', { err: err.message }),
    );
    await this.saving;
  }
}
