// The event pump: one epoll instance over every fanotify group fd plus an
// eventfd used to wake it, with exactly one epoll_wait outstanding on a koffi
// worker thread. When it returns, the main thread drains each ready fd with
// non-blocking reads and re-arms the wait. So the main thread never blocks
// on a group fd, nothing polls, and one worker thread serves any number of
// groups (docs/architecture.md has the measurements behind this choice).
import * as ffi from './ffi';

/** Reads per ready fd before moving on to the next, so one flooded group cannot starve the rest. */
const MAX_READS_PER_WAKE = 16;
/** Bytes per read(2); the kernel fills it with as many whole events as fit. */
export const READ_BUFFER_SIZE = 256 * 1024;
const MAX_EPOLL_EVENTS = 256;

export interface PumpClient {
  /** A chunk of whole event records; buf is reused after the call returns. */
  onData(buf: Buffer, length: number): void;
  /** The fd was drained (EAGAIN) or its read quota for this wake is used up. */
  onDrained(): void;
  /** read(2) failed with something other than EAGAIN. */
  onReadError(err: Error): void;
}

export class EventPump {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly clients = new Map<number, PumpClient>();
  private readonly readBuf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  private readonly eventsBuf = Buffer.alloc(MAX_EPOLL_EVENTS * ffi.EPOLL_EVENT_SIZE);
  private waiting = false;
  private closed = false;
  private idleResolvers: Array<() => void> = [];
  /** Wake-ups of the wait, for metrics and tests. */
  wakeups = 0;

  constructor() {
    this.epfd = ffi.epollCreate();
    this.wakeFd = ffi.eventfdCreate();
    ffi.epollAdd(this.epfd, this.wakeFd);
  }

  add(fd: number, client: PumpClient): void {
    if (this.closed) throw new Error('event pump is closed');
    ffi.epollAdd(this.epfd, fd);
    this.clients.set(fd, client);
    this.arm();
  }

  /** Stop reading fd. The caller closes it afterwards. */
  remove(fd: number): void {
    if (!this.clients.delete(fd)) return;
    try {
      ffi.epollDel(this.epfd, fd);
    } catch {
      // Already closed elsewhere: epoll dropped it with the last reference.
    }
    // With no group left, let the outstanding wait return so an idle
    // process holds no worker thread and can exit.
    if (this.clients.size === 0 && this.waiting) ffi.eventfdSignal(this.wakeFd);
  }

  get size(): number {
    return this.clients.size;
  }

  /** Resolves once no wait is outstanding (after the last remove, or close). */
  idle(): Promise<void> {
    if (!this.waiting) return Promise.resolve();
    return new Promise((resolve) => this.idleResolvers.push(resolve));
  }

  /** Remove every client and release the epoll and eventfd once the wait has returned. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [...this.clients.keys()]) this.remove(fd);
    if (this.waiting) ffi.eventfdSignal(this.wakeFd);
    await this.idle();
    ffi.closeFd(this.wakeFd);
    ffi.closeFd(this.epfd);
  }

  private arm(): void {
    if (this.waiting || this.closed || this.clients.size === 0) return;
    this.waiting = true;
    ffi.epollWaitAsync(this.epfd, this.eventsBuf, -1, (n) => this.onReady(n));
  }

  private onReady(n: number): void {
    this.waiting = false;
    this.wakeups++;
    for (let i = 0; i < n; i++) {
      const fd = ffi.epollEventFd(this.eventsBuf, i);
      if (fd === this.wakeFd) {
        ffi.readNonblock(this.wakeFd, this.readBuf.subarray(0, 8));
        continue;
      }
      const client = this.clients.get(fd);
      if (client) this.drain(fd, client);
    }
    if (this.clients.size > 0 && !this.closed) this.arm();
    else for (const resolve of this.idleResolvers.splice(0)) resolve();
  }

  private drain(fd: number, client: PumpClient): void {
    try {
      for (let i = 0; i < MAX_READS_PER_WAKE; i++) {
        const len = ffi.readNonblock(fd, this.readBuf);
        if (len <= 0) break;
        client.onData(this.readBuf, len);
        // The client may have removed itself while handling data.
        if (this.clients.get(fd) !== client) return;
      }
    } catch (err) {
      client.onReadError(err as Error);
    }
    if (this.clients.get(fd) === client) client.onDrained();
  }
}
