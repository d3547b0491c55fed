// The watch's vocabulary, shared by the watch, its queue and its sinks
// (kept apart so the queue and the watch need not import each other).
import type { Clock } from '../common/clock';
import type { JournalBudget, JournalOwner } from './journal-budget';
import type { FsEvent } from '../host/event';

export type Decision = 'allow' | 'deny';
/**
 * Who answered a permission event: the client's verdict, its deadline, the
 * stream's end, the pending limit, the daemon's stop, the daemon's own
 * access, a Rule of the watch, or the daemon because the event was filtered
 * out (include/exclude, or outside a subtree mark).
 */
export type DecidedBy = 'client' | 'timeout' | 'disconnect' | 'shutdown' | 'self' | 'limit' | 'rule' | 'filter';

/** Which events a filter or rule is about (Match in the .proto); an empty list matches anything. */
export interface MatchSpec {
  /** Globs over the event's path, .gitignore semantics. */
  paths: string[];
  /** Globs over the executable's path. */
  exes: string[];
  /** Globs over the command name. */
  comms: string[];
  uids: number[];
  gids: number[];
  /** FAN_* event bits; 0 matches any. */
  events: number;
  /** Container ids, whole or a prefix of at least 12 hex digits; unset or empty matches any. */
  containerIds?: string[];
  podUids?: string[];
  podNamespaces?: string[];
  /** Only processes in no container. */
  hostOnly?: boolean;
}

export interface RuleSpec {
  match: MatchSpec;
  decision: Decision;
  /** Deliver the event too (needs no verdict; it says the rule's decision and index). */
  report: boolean;
  /** With allow: an ignore mark for the file, as a cached verdict. */
  cache: boolean;
  /** With deny: FAN_DENY_ERRNO's errno; 0 = EPERM. */
  errno: number;
}

/** The filters and rules of a watch; swapped as a whole (ReplaceRules). */
export interface SelectionSpec {
  include: MatchSpec[];
  exclude: MatchSpec[];
  rules: RuleSpec[];
}

/** How much is read about an event's process: all, all but the command line, or its pid alone. */
export type ProcessDetails = 'full' | 'basic' | 'pid';

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
   * Called after each permission response to an event read for the client
   * is written to the kernel (never before), with the time since the event
   * was read (on `clock`). Not for the daemon's own accesses nor for events
   * the filters left out (answered ALLOW at once, counted in
   * decisions.self and decisions.filter): a filter over a busy filesystem
   * would fill the audit with them. A rule's decision comes with
   * item.ruleDecision set, and the event described in full.
   */
  onDecision?: (item: WatchEvent, allowed: boolean, by: DecidedBy, latencyMs: number) => void;
  /**
   * What verdict deadlines, latencies and the /proc cache's lifetimes are
   * measured on; monotonicClock unless a test steps one by hand.
   */
  clock?: Clock;
  /** Called once the watch has closed itself after a failure (onError). */
  onFailed?: (err: Error) => void;
  /** Filters and rules; none by default (every event delivered, every permission event to the client). */
  selection?: SelectionSpec;
  /**
   * 'full' by default. Whatever is asked, a filter or rule on uids, gids,
   * comms or exes reads the process (all but its command line) to decide;
   * the client is still sent only what it asked for.
   */
  processDetails?: ProcessDetails;
  /**
   * Coalescing window for notifications with the same types, path and pid;
   * 0 or unset: off. On, each notification is held up to this long (coalescer.ts).
   */
  coalesceMs?: number;
  /** Notifications delivered per second at most; past it they are dropped and counted; 0 or unset: no limit. */
  maxEventsPerSecond?: number;
  /**
   * Set for a named watch (Subscribe.name): it fans out to any number of
   * attached streams through a replay journal (fanout.ts) instead of one
   * stream's queue (outbox.ts), and may outlive its streams.
   */
  shared?: SharedOptions;
  /** The sequence the watch's first event or notice gets; 1 unless a restored watch goes on from its last. */
  firstSequence?: number;
  /**
   * A group fd opened by an earlier process of the daemon, taken over
   * instead of opening one (its marks are in the kernel already).
   */
  adoptFd?: number;
}

/** What a named watch needs beyond an unnamed one. */
export interface SharedOptions {
  /** How long the watch stays after its last stream ends; 0: it closes with it. */
  lingerMs: number;
  /** Encoded events and notices kept for streams to resume from (the oldest go first). */
  journalBytes: number;
  /** The daemon-wide bound every named watch's journal draws from (journal-budget.ts); unset: this watch's bound only. */
  budget?: JournalBudget;
  /** Whose journal it is, as the budget's log line and metrics name it. */
  owner?: JournalOwner;
  /** The encoder, needed before and between streams. */
  codec: EventCodec;
}

/** How a watch's events become bytes for a stream (src/api/wire.ts in the daemon). */
export interface EventCodec {
  /**
   * One event's encoding: `bytes`, valid until the next call, then `tail`,
   * bytes that never change and may be held (shared by many events). A
   * notification event is encoded when queued, a permission event when
   * sent, and again if it did not fit in that batch: encode must have no
   * side effects. Writes `it.seq` when set.
   */
  encode(it: WatchEvent): EncodedEvent;
  /**
   * An encoding made without a sequence (a coalesced event, encoded when
   * its window opened) with `seq` added; valid until the next call.
   * Unset: the encoding is kept as it is.
   */
  withSequence?(e: EncodedEvent, seq: number): EncodedEvent;
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
  /** Notifications this one stands for (coalescing); unset: 1. */
  count?: number;
  /**
   * A Rule decided this permission event: its decision and its index in
   * the rules. Set on every event a rule decides (onDecision reads it);
   * only a rule with `report` delivers the event.
   */
  ruleDecision?: { decision: Decision; index: number };
  /** Its place in the watch's sequence, given when it is queued (Event.sequence). */
  seq?: number;
}

export interface OverflowNotice {
  source: 'kernel' | 'client' | 'rate_limit';
  dropped: number;
  total: number;
  /** Its place in the watch's sequence (Overflow.sequence). */
  seq?: number;
}

/** Sequences a stream will never get, both ends inclusive (Gap). */
export interface GapNotice {
  from: number;
  to: number;
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
export interface WatchSink extends EventCodec {
  /** `count` events: their encodings one after another, valid only during the call. */
  sendEvents(encoded: Buffer, count: number): boolean;
  sendOverflow(notice: OverflowNotice): boolean;
  /** This stream lost those sequences (a named watch's journal no longer held them). */
  sendGap?(gap: GapNotice): boolean;
  /** The watch closed under the stream (not by its detach()): with the error when it failed. */
  closed?(err?: Error): void;
}

/** Where a stream of a named watch resumes. */
export interface AttachFrom {
  /** The last sequence the stream has; 0: from the oldest held. */
  afterSequence?: number;
  /** Only what is read from now on. */
  liveOnly?: boolean;
}

/** One stream's hold on a watch: its verdicts, its flow control, its end. */
export interface Attachment {
  /** The sink can take more after returning false. */
  resume(): void;
  /**
   * A verdict from this stream. False when the id is unknown or answered,
   * or (a shared watch) was not sent to this stream: then it is refused.
   */
  verdict(id: number, decision: Decision, opts?: VerdictOptions): boolean;
  /** The stream ended: a named watch's events move to its other streams, or it lingers; an unnamed one closes. Idempotent. */
  detach(): void;
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
  /** Events left out by include or exclude, or outside a subtree mark (permission events among them allowed at once). */
  filtered: number;
  /** Ignore marks placed on directories outside a subtree, so the kernel stops asking about them. */
  subtreeIgnores: number;
  /** Ignore marks that could not be placed (but for a directory gone meanwhile). */
  subtreeIgnoreErrors: number;
  /** Directory moves seen on the subtrees' filesystems (the flush follows those into a subtree). */
  subtreeMoves: number;
  /** Times the ignore marks were flushed: a directory moved into a subtree, or a subtree added. */
  subtreeFlushes: number;
  /** Mounts at or below a subtree's directory marked, those mounted later included. */
  subtreeMounts: number;
  /** Notifications folded into an earlier one by coalescing (each is in that one's count). */
  coalesced: number;
  /** Notifications dropped by maxEventsPerSecond. */
  droppedRateLimit: number;
  /** Verdicts refused: the stream that sent them was not sent the event (a shared watch). */
  verdictsRefused: number;
  /** Streams attached now. */
  consumers: number;
  /** Permission events moved to another stream when theirs ended. */
  reassigned: number;
  /** Sequences lost to streams as Gaps, summed over streams. */
  gapSequences: number;
  /** Permission responses by what they said. */
  allowed: number;
  denied: number;
  pending: number;
  queued: number;
}

/** Every counter at zero: a new watch's statistics. */
export function emptyStats(): WatchStats {
  return {
    eventsRead: 0,
    eventsSent: 0,
    notificationsDropped: 0,
    kernelOverflows: 0,
    decodeErrors: 0,
    malformedRecords: 0,
    unknownVerdicts: 0,
    responseErrors: 0,
    responseFallbacks: 0,
    cachedVerdicts: 0,
    cacheErrors: 0,
    decisions: { client: 0, timeout: 0, disconnect: 0, shutdown: 0, self: 0, limit: 0, rule: 0, filter: 0 },
    filtered: 0,
    subtreeIgnores: 0,
    subtreeIgnoreErrors: 0,
    subtreeMoves: 0,
    subtreeFlushes: 0,
    subtreeMounts: 0,
    coalesced: 0,
    droppedRateLimit: 0,
    verdictsRefused: 0,
    consumers: 0,
    reassigned: 0,
    gapSequences: 0,
    allowed: 0,
    denied: 0,
    pending: 0,
    queued: 0,
  };
}
