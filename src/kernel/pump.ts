// The event pump: every fanotify group fd is watched by Node's own event
// loop (a libuv poll handle per fd), and when one is readable the main
// thread drains it with non-blocking reads. So the main thread never blocks
// on a group fd, nothing polls, an idle daemon sleeps in the loop's own
// epoll_wait, and no other thread sits between the kernel and the decoder
// (docs/architecture.md has the measurements behind this choice).
import * as ffi from './ffi';

/** Reads per ready fd before moving on to the next, so one flooded group cannot starve the rest. */
const MAX_READS_PER_WAKE = 16;
/** Bytes per read(2); the kernel fills it with as many whole events as fit. */
export const READ_BUFFER_SIZE = 256 * 1024;
/**
 * Larger than any one event record (metadata, file handles, a name of at
 * most 255 bytes, pidfd, range...). A read that left at least this much of
 * the buffer unused almost always emptied the queue (the kernel stops when
 * the next event does not fit, or when it could not hand one over), so the
 * drain stops there instead of reading again to learn EAGAIN. Anything still
 * queued keeps the fd readable, and the level-triggered poll comes back.
 */
const MAX_EVENT_LEN = 8 * 1024;

export interface PumpClient {
  /** A chunk of whole event records; buf is reused after the call returns. */
  onData(buf: Buffer, length: number): void;
  /** The fd was drained (EAGAIN) or its read quota for this wake is used up. */
  onDrained(): void;
  /** Reading the fd (anything but EAGAIN) or handling its events failed: the client must stop. */
  onError(err: Error): void;
}

/**
 * A group that carries only notifications (no process waits on it) may
 * rest this many ms after a wake that read little (see add()), so under
 * load one read takes many events, and the per-read costs (the wake,
 * directory lookups, one gRPC message and one wake of the client) are
 * shared among them. An idle group's first event is still read at once;
 * events arriving during a rest wait about this long (more when the loop
 * is busy). The kernel queue (16,384 events by default) holds a 1-2 ms
 * rest up to 8 million events/s.
 */
export const NOTIFY_REST_MS = 1;
/**
 * A wake that read at least this much is not followed by a rest: its reads
 * are large already, and resting would only let the kernel's queue grow
 * while the daemon is behind.
 */
const REST_BELOW_BYTES = 64 * 1024;

interface Entry {
  client: PumpClient;
  poll: number;
  /** Asked after each small wake: rest now? (Notification groups only.) */
  rest?: () => boolean;
  timer?: NodeJS.Timeout;
}

export class EventPump {
  private readonly clients = new Map<number, Entry>();
  private readonly readBuf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  private closed = false;
  /** Times a group fd was found readable, for metrics and tests. */
  wakeups = 0;
  /** Times a notification-only group's poll rested after a wake. */
  rests = 0;

  /**
   * Read fd whenever it is readable. With `rest`, a wake that read little is
   * followed by a rest of NOTIFY_REST_MS when rest() says so at that moment
   * (a notification group whose queue has room).
   */
  add(fd: number, client: PumpClient, rest?: () => boolean): void {
    if (this.closed) throw new Error('event pump is closed');
    const poll = ffi.pollStart(fd, (status) => this.onReadable(fd, client, status));
    this.clients.set(fd, { client, poll, rest });
  }

  /** Stop reading fd. The caller closes it afterwards. */
  remove(fd: number): void {
    const c = this.clients.get(fd);
    if (!c) return;
    this.clients.delete(fd);
    if (c.timer) clearTimeout(c.timer);
    ffi.pollStop(c.poll);
  }

  get size(): number {
    return this.clients.size;
  }

  /** Remove every client. */
  async close(): Promise<void> {
    this.closed = true;
    for (const fd of [...this.clients.keys()]) this.remove(fd);
  }

  private onReadable(fd: number, client: PumpClient, status: number): void {
    // A callback already queued for a handle stopped in this loop turn.
    const entry = this.clients.get(fd);
    if (entry?.client !== client) return;
    this.wakeups++;
    const bytes = this.drain(fd, client, status);
    if (bytes < REST_BELOW_BYTES && !entry.timer && this.clients.get(fd) === entry && entry.rest?.()) {
      ffi.pollPause(entry.poll);
      this.rests++;
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        if (this.clients.get(fd) !== entry) return;
        try {
          ffi.pollResume(entry.poll);
        } catch (err) {
          this.remove(fd);
          client.onError(err as Error);
        }
      }, NOTIFY_REST_MS);
    }
  }

  /** Read fd until it is empty or the quota is used; returns the bytes read. */
  private drain(fd: number, client: PumpClient, status: number): number {
    let bytes = 0;
    try {
      if (status < 0) throw new ffi.SyscallError('poll', -status);
      for (let i = 0; i < MAX_READS_PER_WAKE; i++) {
        const len = ffi.readNonblock(fd, this.readBuf);
        if (len <= 0) break;
        bytes += len;
        client.onData(this.readBuf, len);
        // The client may have removed itself while handling data.
        if (this.clients.get(fd)?.client !== client) return bytes;
        if (len <= READ_BUFFER_SIZE - MAX_EVENT_LEN) break;
      }
      client.onDrained();
    } catch (err) {
      // One group's failure stays with it; the daemon and other groups go on.
      if (this.clients.get(fd)?.client === client) client.onError(err as Error);
    }
    return bytes;
  }
}
