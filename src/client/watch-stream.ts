// One Watch stream, typed: the Subscribe (or Attach) goes out as it opens, responses
// come back to the handlers by kind, and it ends exactly once, with the
// call's status. Ending it is cancelling the call: a half-close leaves a
// watch running on the daemon, so end() would not stop it.
import * as grpc from '@grpc/grpc-js';
import type { Attach } from '../api/gen/fanotify/v1/Attach';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Gap__Output } from '../api/gen/fanotify/v1/Gap';
import type { MarkResult__Output } from '../api/gen/fanotify/v1/MarkResult';
import type { Overflow__Output } from '../api/gen/fanotify/v1/Overflow';
import type { ReplaceRules } from '../api/gen/fanotify/v1/ReplaceRules';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { Subscribed__Output } from '../api/gen/fanotify/v1/Subscribed';
import type { Verdict } from '../api/gen/fanotify/v1/Verdict';
import type { WatchRequest } from '../api/gen/fanotify/v1/WatchRequest';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import type { WatchStats__Output } from '../api/gen/fanotify/v1/WatchStats';

/** A decoded message with the bytes it came in (for a second decoder, such as canonical JSON). */
export interface Received<T> {
  message: T;
  bytes: Buffer;
}

export interface WatchHandlers {
  subscribed?(subscribed: Subscribed__Output): void;
  /** One EventBatch, in kernel order; `response` is the whole WatchResponse it came in. */
  events?(events: Event__Output[], response: Received<WatchResponse__Output>): void;
  overflow?(overflow: Overflow__Output): void;
  /** Answers AddMark, RemoveMark, FlushMarks and ReplaceRules, by request_id. */
  markResult?(result: MarkResult__Output): void;
  /** Answers getStats, by request_id. */
  stats?(stats: WatchStats__Output): void;
  /** Sequences this stream will never get (the resume buffer no longer held them). */
  gap?(gap: Gap__Output): void;
}

/** What opens a stream: a new watch, or joining a named one. */
export type WatchOpening = Subscribe | { attach: Attach };

export type WatchCall = grpc.ClientDuplexStream<WatchRequest, Received<WatchResponse__Output>>;

/** subscribing: Subscribe sent, no answer yet; active: Subscribed came; ended: the call has its status. */
export type WatchState = 'subscribing' | 'active' | 'ended';

export class WatchStream {
  private current: WatchState = 'subscribing';
  private answered = false;
  /** The call's final status: OK when the daemon ended it, CANCELLED after cancel(), else what failed. */
  readonly done: Promise<grpc.StatusObject>;

  constructor(
    private readonly call: WatchCall,
    opening: WatchOpening,
    handlers: WatchHandlers,
  ) {
    call.on('data', (response: Received<WatchResponse__Output>) => this.dispatch(response, handlers));
    // grpc-js emits 'error' and then 'status' for a failed call; the status says it all.
    call.on('error', () => undefined);
    this.done = new Promise((resolve) =>
      call.once('status', (status: grpc.StatusObject) => {
        this.current = 'ended';
        resolve(status);
      }),
    );
    call.write('attach' in opening ? { attach: opening.attach } : { subscribe: opening });
  }

  get state(): WatchState {
    return this.current;
  }

  /** Subscribed came on this stream (it may have ended since). */
  get wasSubscribed(): boolean {
    return this.answered;
  }

  /** Answers for events with needs_verdict; dropped once the stream has ended (the daemon applied timeout_decision). */
  sendVerdicts(verdicts: Verdict[]): void {
    if (this.current === 'ended' || verdicts.length === 0) return;
    this.call.write({ verdicts: { verdicts } });
  }

  /**
   * Swap the watch's include, exclude and rules at once; the MarkResult
   * with the same request_id says whether the daemon took them. Dropped
   * once the stream has ended.
   */
  replaceRules(replace: ReplaceRules): void {
    if (this.current !== 'ended') this.call.write({ replace_rules: replace });
  }

  /** Ask for the watch's counters; they come to the stats handler with this request_id. */
  getStats(requestId: number | string): void {
    if (this.current !== 'ended') this.call.write({ get_stats: { request_id: requestId } });
  }

  /** End the watch: the daemon closes its group and applies timeout_decision to anything pending. Idempotent. */
  cancel(): void {
    if (this.current !== 'ended') this.call.cancel();
  }

  private dispatch(response: Received<WatchResponse__Output>, handlers: WatchHandlers): void {
    const m = response.message;
    switch (m.response) {
      case 'subscribed':
        this.current = 'active';
        this.answered = true;
        handlers.subscribed?.(m.subscribed!);
        break;
      case 'events':
        handlers.events?.(m.events!.events, response);
        break;
      case 'overflow':
        handlers.overflow?.(m.overflow!);
        break;
      case 'mark_result':
        handlers.markResult?.(m.mark_result!);
        break;
      case 'stats':
        handlers.stats?.(m.stats!);
        break;
      case 'gap':
        handlers.gap?.(m.gap!);
        break;
    }
  }
}
