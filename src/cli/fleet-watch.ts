// One watch per target, their events merged into one output. Each is a
// resumable watch (src/client/resumable-watch.ts): named and lingering, so
// a stream lost to the network or to a daemon restart is joined again
// after grpc-js's reconnect backoff and resumes after the last event seen,
// nothing lost or printed twice; where the daemon could not keep
// everything, a gap line says which events. With several targets, one not
// up yet is waited for too; with one, a first Subscribe that fails ends
// fanctl (the daemon is not there, or said what to fix).
import type * as grpc from '@grpc/grpc-js';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import type { FanotifyClient, Received, ResumableWatch, ResumeHow, WatchStream } from '../client';
import type { Subscribed__Output } from '../api/gen/fanotify/v1/Subscribed';
import { monotonicClock } from '../common/clock';
import type { EventOutput } from './event-output';
import { describeStatus, formatOverflow } from './format';
import type { Io } from './io';

export interface Source {
  target: string;
  /** The stream the events came on: verdicts go back on it. */
  stream: WatchStream;
}

/** `fresh`: the indices of the events not seen before (every one when absent). */
export type EventsHandler = (events: Event__Output[], response: Received<WatchResponse__Output>, from: Source, fresh?: number[]) => void;

export class FleetWatch {
  private readonly watches = new Set<ResumableWatch>();
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
    /** subscribe.linger_ms is fanctl's default: brought within each daemon's max_linger_ms, which a daemon may set lower. */
    fitLinger = false,
  ) {
    this.running = clients.length;
    for (const c of clients) {
      if (fitLinger && subscribe.linger_ms) void this.openWithinLimits(c);
      else this.open(c, subscribe);
    }
  }

  /** Asked of the daemon first; one that cannot be asked (not up yet) gets the default, as it would have. */
  private async openWithinLimits(client: FanotifyClient): Promise<void> {
    let max: number | undefined;
    try {
      max = Number((await client.getInfo({ timeoutMs: 5000 })).message.limits?.max_linger_ms ?? 0);
    } catch {
      max = undefined;
    }
    if (this.stopping) return void (--this.running === 0 && this.settle(0));
    const linger = Number(this.subscribe.linger_ms);
    this.open(client, max === undefined ? this.subscribe : { ...this.subscribe, linger_ms: Math.min(linger, max) });
  }

  /** Cancel every watch (a named one lingers on its daemon for its linger); done resolves 0 once all have ended. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    const ends = [...this.watches].map((w) => w.done);
    for (const w of this.watches) w.cancel();
    void Promise.all(ends).then(() => this.settle(0));
  }

  private open(client: FanotifyClient, subscribe: Subscribe): void {
    const target = client.target;
    const tag = this.output.tag(target);
    /** When the stream was lost (monotonic ms), while it is being resumed. */
    let lostAt: number | undefined;
    const watch = client.resumableWatch(
      subscribe,
      {
        subscribed: (s, how) => {
          this.resumed(target, s, how, lostAt);
          lostAt = undefined;
        },
        events: (events, response, stream, fresh) => this.onEvents(events, response, { target, stream }, fresh),
        overflow: (o) => this.output.notice(target, formatOverflow(o)),
        gap: (g) => this.output.gap(target, g),
        lost: (status) => {
          lostAt = monotonicClock.now();
          this.io.note(`${tag}lost (${describeStatus(status)}); reconnecting`);
        },
      },
      { retryFirst: this.clients.length > 1 },
    );
    this.watches.add(watch);
    void watch.done.then((status) => {
      this.watches.delete(watch);
      if (!this.stopping) this.ended(client, status);
    });
  }

  private resumed(target: string, s: Subscribed__Output, how: ResumeHow, lostAt?: number): void {
    const tag = this.output.tag(target);
    const after = lostAt === undefined ? '' : ` after ${((monotonicClock.now() - lostAt) / 1000).toFixed(1)} s`;
    const name = s.name ? `, name ${s.name}` : '';
    if (how === 'subscribed') this.io.note(`${tag}watching (watch ${s.watch_id}, ${s.report_mode}${name})`);
    else if (how === 'attached' && lostAt === undefined) this.io.note(`${tag}joined the running watch ${s.name} (watch ${s.watch_id})`);
    else if (how === 'attached') this.io.note(`${tag}resumed${after} (watch ${s.watch_id}${name})`);
    else this.output.notice(target, `RECONNECTED${after}; the watch was gone and was opened again: events in that gap were not seen`);
  }

  private ended(client: FanotifyClient, status: grpc.StatusObject): void {
    if (status.code !== 0) {
      this.io.note(`${this.output.tag(client.target)}${describeStatus(status)}`);
      this.failed = true;
    }
    if (--this.running === 0) this.settle(this.failed ? 1 : 0);
  }
}
