// One Watch per target, their events merged into one output. With several
// targets, a stream that ends UNAVAILABLE (the daemon stopped, the network
// went) is opened again on the same channel with waitForReady, so grpc-js's
// own reconnect backoff decides when it is tried; the gap is reported when
// the watch is back. With one target, any end of the stream ends fanctl.
import * as grpc from '@grpc/grpc-js';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import type { FanotifyClient, Received, WatchStream } from '../client';
import { monotonicClock } from '../common/clock';
import type { EventOutput } from './event-output';
import { describeStatus, formatOverflow } from './format';
import type { Io } from './io';

export interface Source {
  target: string;
  stream: WatchStream;
}

export type EventsHandler = (events: Event__Output[], response: Received<WatchResponse__Output>, from: Source) => void;

/**
 * A daemon that is up but answers UNAVAILABLE (it is shutting down) would
 * be asked again at once and again: each re-open waits this long first.
 */
const REOPEN_DELAY_MS = 250;

export class FleetWatch {
  private readonly streams = new Set<WatchStream>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;
  private running: number;
  private failed = false;
  private settle!: (code: number) => void;
  /** 0 when every watch ended cleanly or fanctl was stopped, 1 when one failed. */
  readonly done = new Promise<number>((resolve) => (this.settle = resolve));

  constructor(
    private readonly clients: FanotifyClient[],
    private readonly subscribe: Subscribe,
    private readonly output: EventOutput,
    private readonly io: Io,
    private readonly onEvents: EventsHandler,
  ) {
    this.running = clients.length;
    for (const c of clients) this.open(c, false);
  }

  /** Cancel every watch (the daemons apply timeout_decision to what is pending); done resolves 0 once all have ended. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    const ends = [...this.streams].map((s) => s.done);
    for (const s of this.streams) s.cancel();
    void Promise.all(ends).then(() => this.settle(0));
  }

  private get fleet(): boolean {
    return this.clients.length > 1;
  }

  /** lostAt: when this target's previous watch was lost (monotonic ms), if it was. */
  private open(client: FanotifyClient, waitForReady: boolean, lostAt?: number): void {
    const target = client.target;
    const tag = this.output.tag(target);
    const stream: WatchStream = client.watch(
      this.subscribe,
      {
        subscribed: (s) => {
          if (lostAt === undefined) this.io.note(`${tag}watching (watch ${s.watch_id}, ${s.report_mode})`);
          else this.output.notice(target, `RECONNECTED after ${((monotonicClock.now() - lostAt) / 1000).toFixed(1)} s; events in that gap were not seen`);
        },
        events: (events, response) => this.onEvents(events, response, { target, stream }),
        overflow: (o) => this.output.notice(target, formatOverflow(o)),
      },
      { waitForReady },
    );
    this.streams.add(stream);
    void stream.done.then((status) => {
      this.streams.delete(stream);
      if (!this.stopping) this.ended(client, status, stream.wasSubscribed, lostAt);
    });
  }

  private ended(client: FanotifyClient, status: grpc.StatusObject, wasActive: boolean, lostAt?: number): void {
    const tag = this.output.tag(client.target);
    if (this.fleet && status.code === grpc.status.UNAVAILABLE) {
      // Reported once per loss, not once per attempt while the target stays away.
      if (wasActive || lostAt === undefined) this.io.note(`${tag}lost (${describeStatus(status)}); reconnecting`);
      const since = wasActive || lostAt === undefined ? monotonicClock.now() : lostAt;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.open(client, true, since);
      }, REOPEN_DELAY_MS);
      this.timers.add(t);
      return;
    }
    if (status.code !== grpc.status.OK) {
      this.io.note(`${tag}${describeStatus(status)}`);
      this.failed = true;
    }
    if (--this.running === 0) this.settle(this.failed ? 1 : 0);
  }
}
