// The audit trail: an append-only JSON-lines file of watches opened and
// closed and of every permission decision. Records are written after the
// kernel has its answer, through an asynchronous stream: a slow, full or
// unwritable disk costs records (logged and counted), never a verdict.
import * as fs from 'node:fs';
import type { Logger } from '../common/log';

/** Records held in memory while the disk is slow; past it they are dropped and counted. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class AuditTrail {
  private readonly stream: fs.WriteStream;
  private failed = false;
  written = 0;
  dropped = 0;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    // Opened once, at start-up, before any mark exists.
    this.stream = fs.createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.stream.on('error', (err) => {
      if (!this.failed) this.log.error('audit trail unwritable; records are dropped and counted', { file, error: err });
      this.failed = true;
    });
  }

  record(kind: string, fields: Record<string, unknown>): void {
    if (this.failed || this.stream.writableLength > MAX_BUFFERED_BYTES) {
      this.dropped++;
      return;
    }
    this.stream.write(JSON.stringify({ time: new Date().toISOString(), kind, ...fields }) + '\n');
    this.written++;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}
