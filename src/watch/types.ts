// The watch's vocabulary, shared by the watch, its queue and its sinks
// (kept apart so the queue and the watch need not import each other).
import type { Clock } from '../common/clock';
import type { FsEvent } from '../host/event';

export type Decision = 'allow' | 'deny';
export type DecidedBy = 'client' | 'timeout' | 'disconnect' | 'shutdown' | 'self' | 'limit';

export interface WatchOptions {
  verdictTimeoutMs: number;
  timeoutDecision: Decision;
  maxBatchEvents: number;
  /** Notification events held for a slow client before new ones are dropped. */
  queueCapacity: number;
  /** Encoded size a batch stays within (but for a single larger event); no limit when unset. */
  maxBatchBytes?: number;
  /**
   * Permission events awaiting a verdict at most; past it a new one is
   * answered with the timeout decision at once (and still delivered, as
   * needing no verdict), so a client that stops answering cannot make the
   * daemon hold an unbounded number of blocked processes and fds.
   */
  maxPending?: number;
  /** Called with the time from reading an event to the client's verdict on it. */
  onVerdictLatency?: (ms: number) => void;
  /**
   * Called after each permission response is written to the kernel (never
   * before), with the time since the event was read (on `clock`).
   */
  onDecision?: (item: WatchEvent, allowed: boolean, by: DecidedBy, latencyMs: number) => void;
  /**
   * What verdict deadlines, latencies and the /proc cache's lifetimes are
   * measured on; monotonicClock unless a test steps one by hand.
   */
  clock?: Clock;
  /** Called once the watch has closed itself after a failure (onError). */
  onFailed?: (err: Error) => void;
}

export interface WatchEvent {
  id: number;
  ev: FsEvent;
  /** A permission event (never dropped for a slow client). */
  permission: boolean;
  /** True while a verdict is awaited; cleared once the event is answered. */
  needsVerdict: boolean;
  /**
   * When the event was read, on the watch's clock (WatchOptions.clock,
   * monotonic): the base of its deadline and latencies. Set on every event
   * a watch reads; ev.timeMs is the wall-clock timestamp for clients.
   */
  readAt?: number;
  /**
   * A permission event's pidfd, held with its event fd until the event is
   * answered, when both are closed (one close_range when they are
   * consecutive, as the kernel makes them).
   */
  pidfd?: number;
}

export interface OverflowNotice {
  source: 'kernel' | 'client';
  dropped: number;
  total: number;
}

export interface EncodedEvent {
  bytes: Uint8Array;
  tail?: Uint8Array;
}

/**
 * Where a watch sends its output, and how its events are encoded for it
 * (the queue holds notification events encoded: event-queue.ts). A false
 * return means: stop until resume().
 */
export interface WatchSink {
  /**
   * One event's encoding: `bytes`, valid until the next call, then `tail`,
   * bytes that never change and may be held (shared by many events). A
   * notification event is encoded when queued, a permission event when
   * sent, and again if it did not fit in that batch: encode must have no
   * side effects.
   */
  encode(it: WatchEvent): EncodedEvent;
  /** `count` events: their encodings one after another, valid only during the call. */
  sendEvents(encoded: Buffer, count: number): boolean;
  sendOverflow(notice: OverflowNotice): boolean;
}

export interface VerdictOptions {
  /** Cache an ALLOW in the kernel with an ignore mark until the file is modified. */
  cache?: boolean;
  /** FAN_DENY_ERRNO: the errno a DENY fails the operation with. */
  errno?: number;
  /** FAN_AUDIT: ask the kernel for an audit record. */
  audit?: boolean;
  /** With audit: FAN_INFO naming the policy rule that decided. */
  auditRule?: number;
}

export interface WatchStats {
  eventsRead: number;
  eventsSent: number;
  notificationsDropped: number;
  kernelOverflows: number;
  decodeErrors: number;
  malformedRecords: number;
  unknownVerdicts: number;
  responseErrors: number;
  /** Responses the kernel refused with extra bits (errno, audit) and took as plain ALLOW/DENY. */
  responseFallbacks: number;
  cachedVerdicts: number;
  cacheErrors: number;
  decisions: Record<DecidedBy, number>;
  /** Permission responses by what they said. */
  allowed: number;
  denied: number;
  pending: number;
  queued: number;
}
