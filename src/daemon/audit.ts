// The audit trail: an append-only JSON-lines file of watches opened and
// closed and of every permission decision. Records are written after the
// kernel has its answer, off the main thread: a slow, full or unwritable
// disk costs records (logged and counted), never a verdict.
//
// Every way out of the daemon ends here: close() on a stop (after the
// shutdown's ALLOW decisions were recorded) and on a failed start,
// closeSync() on a fatal error, where nothing asynchronous will run again.
import * as fs from 'node:fs';
import type { Logger } from '../common/log';

/** Bytes held in memory while the disk is slow; past it records are dropped and counted. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class AuditTrail {
  private readonly fd: number;
  /** Lines not yet handed to a write. */
  private queue: string[] = [];
  private queuedBytes = 0;
  /** The batch a write on the thread pool holds now, if any. */
  private inFlight?: { data: Buffer; records: number };
  private scheduled = false;
  /** In a run of failed writes: logged once at its start, once at its end. */
  private failing = false;
  private closed = false;
  private readonly idle: Array<() => void> = [];
  written = 0;
  dropped = 0;

  /**
   * Opens the file at once (start-up, before any mark exists: an open under
   * a permission mark could wait on the daemon itself). Throws if it cannot.
   */
  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    // 'a': O_APPEND, so each write lands whole at the end; libuv adds O_CLOEXEC.
    this.fd = fs.openSync(file, 'a', 0o600);
  }

  record(kind: string, fields: Record<string, unknown>): void {
    if (this.closed || this.queuedBytes + (this.inFlight?.data.length ?? 0) > MAX_BUFFERED_BYTES) {
      this.dropped++;
      return;
    }
    const line = JSON.stringify({ time: new Date().toISOString(), kind, ...fields }) + '\n';
    this.queue.push(line);
    this.queuedBytes += line.length;
    // One write for the records of a whole loop turn (a read's decisions come together).
    if (!this.scheduled && !this.inFlight) {
      this.scheduled = true;
      setImmediate(() => this.writeNext());
    }
  }

  private take(): { data: Buffer; records: number } {
    const batch = { data: Buffer.from(this.queue.join('')), records: this.queue.length };
    this.queue = [];
    this.queuedBytes = 0;
    return batch;
  }

  private writeNext(): void {
    this.scheduled = false;
    if (this.queue.length === 0) {
      for (const done of this.idle.splice(0)) done();
      return;
    }
    const batch = (this.inFlight = this.take());
    let offset = 0;
    const onWrite = (err: NodeJS.ErrnoException | null, n: number) => {
      if (!err && (offset += n) < batch.data.length) {
        fs.write(this.fd, batch.data, offset, batch.data.length - offset, null, onWrite);
        return;
      }
      this.inFlight = undefined;
      this.settled(batch.records, err);
      this.writeNext();
    };
    fs.write(this.fd, batch.data, 0, batch.data.length, null, onWrite);
  }

  private settled(records: number, err: NodeJS.ErrnoException | null): void {
    if (!err) {
      this.written += records;
      if (this.failing) this.log.info('audit trail writable again', { file: this.file, dropped: this.dropped });
      this.failing = false;
      return;
    }
    this.dropped += records;
    if (!this.failing) this.log.error('audit trail unwritable; records are dropped and counted until a write succeeds', { file: this.file, error: err });
    this.failing = true;
  }

  /** Resolves once everything recorded so far was written (or failed, and was counted). */
  flush(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.idle.push(resolve);
      if (!this.inFlight && !this.scheduled) this.writeNext();
    });
  }

  /** Write everything recorded so far, then close the file. Later records are dropped and counted. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    fs.closeSync(this.fd);
  }

  /**
   * The fatal path: write what is queued now, synchronously, and close. A
   * batch already on the thread pool is written by it, or lost with the
   * process; it is never written twice.
   */
  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    const batch = this.take();
    try {
      if (batch.records > 0) fs.writeSync(this.fd, batch.data);
      this.written += batch.records;
    } catch {
      this.dropped += batch.records;
    }
    // Not under a write on the thread pool: the number could be reused by
    // then. The exit that follows closes it.
    if (!this.inFlight) fs.closeSync(this.fd);
  }
}
