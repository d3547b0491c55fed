// The event fds and pidfds a read is done with, closed together at its end:
// the kernel made them together, so most are consecutive numbers, and
// closeFds takes each run in one close_range(2).
import type { RawEvent } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';

export class ReleasedFds {
  private readonly fds: number[] = [];

  /** Add an event's fd before its pidfd: the kernel made them in that order, so the runs stay long. */
  add(fd: number): void {
    this.fds.push(fd);
  }

  /** Every fd a record carries, for a record that will not be delivered. */
  release(raw: RawEvent): void {
    if (raw.fd >= 0) this.fds.push(raw.fd);
    if (raw.pidfd !== undefined && raw.pidfd >= 0) this.fds.push(raw.pidfd);
  }

  closeAll(): void {
    if (!this.fds.length) return;
    try {
      ffi.closeFds(this.fds);
    } finally {
      // Never closed twice: by the next read these numbers may be another's.
      this.fds.length = 0;
    }
  }
}
