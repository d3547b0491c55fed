// The exporter: items from the source, in order, become messages; at most
// `window` are in flight; each is sent again (same msgId) until the broker
// acknowledges it, and the cursor moves only over an unbroken run of
// acknowledged ones. The cursor is written to the store every
// cursorIntervalMs and at close, not per message, so a restart repeats at
// most the last interval's messages, which the broker drops as duplicates.
// When the window and the queue behind it are full the source is paused:
// the daemon's buffer fills and it reports a gap, which is published; the
// daemon itself never waits for the broker.
import type { Logger } from '../common/log';
import { RateLimitedLog } from '../common/rate-limited-log';
import { AckWindow } from './ack-window';
import { ExporterCounters } from './exporter-metrics';
import { lastSequenceOf, type ExportItem } from './items';
import { toMessage, type RecordContext } from './records';
import type { CursorStore, OutMessage, Sink } from './sink';
import type { Source, SourceSession } from './source';

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;

export interface ExporterOptions {
  source: Source;
  sink: Sink;
  cursorStore: CursorStore;
  /** Prefix, node and format; watch and boot id come from the source's session. */
  records: Omit<RecordContext, 'watch' | 'bootId' | 'epoch'>;
  /** Messages in flight at most. */
  window: number;
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

  constructor(private readonly o: ExporterOptions) {
    this.counters = o.counters ?? new ExporterCounters();
    this.errors = new RateLimitedLog(o.log, undefined, 10_000);
  }

  get cursor(): bigint {
    return this.acks.cursor;
  }

  /** Read the cursor from the store and start the source after it. */
  async start(): Promise<void> {
    const stored = await this.o.cursorStore.load();
    const cursor = stored?.sequence ?? 0n;
    this.epoch = stored?.epoch ?? 0;
    this.acks = new AckWindow(cursor, this.epoch);
    this.saved = `${this.epoch}/${cursor}`;
    this.bootId = stored?.bootId ?? '';
    this.counters.cursor = cursor;
    this.o.log.info('starting', { after_sequence: cursor.toString(), epoch: this.epoch, boot_id: this.bootId });
    this.o.source.start(cursor, {
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

  private onSession(s: SourceSession): void {
    this.counters.sessions++;
    this.bootId = s.bootId;
    this.context = { ...this.o.records, watch: s.watch, epoch: this.epoch, bootId: s.bootId };
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
      const item = this.queue[this.queueHead++];
      this.send(item);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    const queued = this.queue.length - this.queueHead;
    this.counters.queued = queued;
    // Hold at most one window's worth read ahead: beyond it the daemon's buffer is where events wait.
    if (!this.paused && queued >= this.o.window) {
      this.paused = true;
      this.o.source.pause();
    } else if (this.paused && queued < this.o.window / 2 && !this.closing) {
      this.paused = false;
      this.o.source.resume();
    }
  }

  private send(item: ExportItem): void {
    const message = toMessage(this.context!, item);
    let epoch: number | undefined;
    if (item.kind === 'restart') {
      epoch = ++this.epoch;
      this.context!.epoch = epoch;
      this.counters.gaps++;
      this.o.log.warn('the watch was opened anew (it had closed); publishing a gap record with no end', { from_sequence: item.from.toString(), epoch });
    }
    const entry = this.acks.add(lastSequenceOf(item), epoch);
    this.counters.inFlight++;
    this.counters.published++;
    if (item.kind === 'gap') {
      this.counters.gaps++;
      this.counters.gapSequences += item.to - item.from + 1n;
      this.o.log.warn('the daemon reported a gap; publishing a gap record', { from_sequence: item.from.toString(), to_sequence: item.to.toString() });
    }
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
    if (`${epoch}/${cursor}` === this.saved) return;
    this.saving = this.o.cursorStore.save({ sequence: cursor, bootId: this.bootId, epoch }).then(
      () => {
        this.saved = `${epoch}/${cursor}`;
        this.counters.cursorSaves++;
      },
      (err: Error) => this.errors.warn('cursor not saved; trying again at the next interval', { err: err.message }),
    );
    await this.saving;
  }
}
