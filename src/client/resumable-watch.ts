// A watch that outlives its streams. It subscribes with a name and a
// linger, so the daemon keeps the watch (buffering its notifications) when
// the stream is lost: to a network blip, a proxy's reset, or a daemon
// restart that restores its watches. The stream is then opened again on
// the same channel with waitForReady, so grpc-js's reconnect backoff
// decides when, and joins the watch with Attach after the last sequence
// seen. The daemon replays what followed, or says Gap first when its buffer
// no longer held it all; anything seen twice at the seam is left out here
// by its sequence.
//
// A permission event waiting for a verdict is always handed over, sequence
// or not: the daemon sends one again to this stream when the stream that
// had it ended unanswered (failover, or this client's own lost stream).
// Answering twice is harmless (the daemon refuses the second and counts
// it); not answering would leave the opener to the timeout decision.
import * as grpc from '@grpc/grpc-js';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Gap__Output } from '../api/gen/fanotify/v1/Gap';
import type { MarkResult__Output } from '../api/gen/fanotify/v1/MarkResult';
import type { Overflow__Output } from '../api/gen/fanotify/v1/Overflow';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { Subscribed__Output } from '../api/gen/fanotify/v1/Subscribed';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import type { WatchStats__Output } from '../api/gen/fanotify/v1/WatchStats';
import type { Received, WatchHandlers, WatchOpening, WatchStream } from './watch-stream';

/**
 * How a stream came to be: the first Subscribe; an Attach (a lost stream
 * resumed, or the name was taken by a watch of this identity, which is
 * joined); or a new Subscribe after the watch was gone (its linger passed,
 * or the daemon keeps no named watches): what happened in between is unknown.
 */
export type ResumeHow = 'subscribed' | 'attached' | 'resubscribed';

export interface ResumableHandlers {
  subscribed?(subscribed: Subscribed__Output, how: ResumeHow): void;
  /**
   * One batch; `fresh` the indices of the events not seen before (every
   * one when absent). Verdicts go back on `stream`, the one they came on.
   */
  events?(events: Event__Output[], response: Received<WatchResponse__Output>, stream: WatchStream, fresh?: number[]): void;
  overflow?(overflow: Overflow__Output): void;
  /** Sequences that will never come (the daemon's resume buffer no longer held them). */
  gap?(gap: Gap__Output): void;
  /** The stream ended with `status` and the watch is being resumed; once per loss, not per attempt. */
  lost?(status: grpc.StatusObject): void;
  markResult?(result: MarkResult__Output): void;
  stats?(stats: WatchStats__Output): void;
}

export interface ResumeOptions {
  /** Wait before each re-open, so a daemon that answers UNAVAILABLE at once (shutting down) is not asked in a loop. Default 250 ms. */
  reopenDelayMs?: number;
  /** Retry before the first Subscribed too (a daemon not up yet). Default: such a failure ends the watch. */
  retryFirst?: boolean;
}

/** Opens a stream on the client's channel. */
export type StreamOpener = (opening: WatchOpening, handlers: WatchHandlers, waitForReady: boolean) => WatchStream;

/**
 * Ends a re-attach can mend: the connection or the daemon went
 * (UNAVAILABLE; INTERNAL for a reset stream), or the daemon ended the
 * stream and kept the watch (CANCELLED, ABORTED). The others say what to
 * fix, and end the watch.
 */
const RETRYABLE: ReadonlySet<number> = new Set([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.CANCELLED, grpc.status.ABORTED]);
const DEFAULT_REOPEN_DELAY_MS = 250;

type Opening = 'subscribe' | 'attach' | 'join';

export class ResumableWatch {
  private stream?: WatchStream;
  private last = 0n;
  /** The name the daemon confirmed in Subscribed: empty for a daemon that keeps no named watches. */
  private name = '';
  private everSubscribed = false;
  private lostReported = false;
  private stopping = false;
  private timer?: NodeJS.Timeout;
  private settle!: (status: grpc.StatusObject) => void;
  /** The final status: the daemon's when it ended the watch for good, CANCELLED after cancel(). */
  readonly done = new Promise<grpc.StatusObject>((resolve) => (this.settle = resolve));

  constructor(
    private readonly opener: StreamOpener,
    private readonly subscribe: Subscribe,
    private readonly handlers: ResumableHandlers,
    private readonly options: ResumeOptions = {},
  ) {
    this.open('subscribe', false);
  }

  /** The highest sequence seen: where the next Attach resumes. */
  get lastSequence(): bigint {
    return this.last;
  }

  /** The stream now open (or last open). */
  get current(): WatchStream | undefined {
    return this.stream;
  }

  /** Stop: cancel the stream (a named watch then lingers on the daemon for its linger_ms). Idempotent. */
  cancel(): void {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.stream && this.stream.state !== 'ended') this.stream.cancel();
    else this.settle({ code: grpc.status.CANCELLED, details: 'cancelled', metadata: new grpc.Metadata() });
  }

  private open(kind: Opening, waitForReady: boolean): void {
    const name = this.subscribe.name ?? '';
    // join: the name was taken, by a watch this identity may join; from the oldest event it buffered.
    const opening: WatchOpening = kind === 'subscribe' ? this.subscribe : { attach: { name, after_sequence: kind === 'join' ? '0' : this.last.toString() } };
    const how: ResumeHow = kind !== 'subscribe' ? 'attached' : this.everSubscribed ? 'resubscribed' : 'subscribed';
    const h = this.handlers;
    const stream = this.opener(
      opening,
      {
        subscribed: (s) => {
          // A new watch numbers its events from the start again.
          if (kind === 'subscribe') this.last = 0n;
          this.everSubscribed = true;
          this.lostReported = false;
          this.name = s.name;
          h.subscribed?.(s, how);
        },
        events: (events, response) => this.onEvents(events, response, stream),
        overflow: (o) => {
          if (this.advance(o.sequence)) h.overflow?.(o);
        },
        gap: (g) => {
          this.advance(g.to_sequence);
          h.gap?.(g);
        },
        markResult: (r) => h.markResult?.(r),
        stats: (s) => h.stats?.(s),
      },
      waitForReady,
    );
    this.stream = stream;
    void stream.done.then((status) => this.ended(status, kind, stream.wasSubscribed));
  }

  private ended(status: grpc.StatusObject, kind: Opening, wasSubscribed: boolean): void {
    if (this.stopping) return this.settle(status);
    const { code } = status;
    if (!wasSubscribed && kind === 'subscribe' && code === grpc.status.ALREADY_EXISTS && this.subscribe.name) return this.open('join', false);
    // The watch of that name is still opening (another engine started with this one): join it once it is open.
    if (!wasSubscribed && kind === 'join' && code === grpc.status.UNAVAILABLE) return this.later('join');
    // The watch is gone: open it again.
    if (!wasSubscribed && kind !== 'subscribe' && code === grpc.status.NOT_FOUND) return this.open('subscribe', true);
    if (RETRYABLE.has(code) && (this.everSubscribed || this.options.retryFirst)) {
      if (wasSubscribed || !this.lostReported) {
        this.lostReported = true;
        this.handlers.lost?.(status);
      }
      return this.later(this.name ? 'attach' : 'subscribe');
    }
    this.settle(status);
  }

  private later(kind: Opening): void {
    this.timer = setTimeout(() => this.open(kind, true), this.options.reopenDelayMs ?? DEFAULT_REOPEN_DELAY_MS);
  }

  /** Whether `sequence` is new (or unnumbered); the highest seen moves up to it. */
  private advance(sequence: string | undefined): boolean {
    const seq = BigInt(sequence || '0');
    if (seq === 0n) return true;
    if (seq <= this.last) return false;
    this.last = seq;
    return true;
  }

  private onEvents(events: Event__Output[], response: Received<WatchResponse__Output>, stream: WatchStream): void {
    let fresh: number[] | undefined;
    events.forEach((ev, i) => {
      const isNew = this.advance(ev.sequence) || ev.needs_verdict;
      if (!isNew) fresh ??= Array.from({ length: i }, (_, j) => j);
      else fresh?.push(i);
    });
    if (fresh && fresh.length === 0) return;
    this.handlers.events?.(events, response, stream, fresh);
  }
}
