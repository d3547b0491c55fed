// The options a watch is opened with: the client's Subscribe within the
// daemon's limits, and the hooks that report its decisions.
import type { JournalBudget } from '../watch/journal-budget';
import type { DecidedBy, WatchEvent, WatchOptions } from '../watch/types';
import type { SubscribeLimits, SubscribeRequest } from './convert';
import { eventCodec } from './wire';

export interface ServiceLimits extends SubscribeLimits {
  queueCapacity: number;
  maxWatches: number;
  maxPendingPerWatch: number;
  maxWatchesPerIdentity: number;
  /** A Watch stream must send Subscribe this soon (the connection handshake time); unset: no limit. */
  handshakeTimeoutMs?: number;
  /** The server's largest message (--max-message-bytes); batches stay below it too. */
  maxMessageBytes?: number;
  /** Bytes of encoded events and notices a named watch keeps for streams to resume from (--resume-buffer-bytes). */
  resumeBufferBytes: number;
  /** Bytes every named watch's journal together keeps (--resume-buffer-total-bytes); the budget below enforces it. */
  resumeBufferTotalBytes?: number;
  /** The one budget all named watches' journals draw from; unset: each is bounded by resumeBufferBytes alone. */
  resumeBudget?: JournalBudget;
}

/** Where audit records go (--audit-file). */
export interface AuditSink {
  record(kind: string, fields: Record<string, unknown>): void;
}

/**
 * Largest EventBatch message sent (but for a single event, at most a few
 * tens of KiB): a client with grpc's default 4 MiB receive limit must never
 * get a message it refuses, which would end its stream.
 */
export const MAX_BATCH_BYTES = 1024 * 1024;
/** A WatchResponse around a batch's events adds a tag and a length: at most 6 bytes. */
const BATCH_HEADER_BYTES = 6;

export interface WatchHooks {
  audit?: AuditSink;
  /** Log and audit fields naming the client. */
  who: Record<string, unknown>;
  onVerdictLatency(ms: number): void;
  /** The watch closed itself after an internal failure. */
  onFailed(err: Error): void;
}

export function watchOptions(id: string, req: SubscribeRequest, limits: ServiceLimits, hooks: WatchHooks): WatchOptions {
  return {
    verdictTimeoutMs: req.verdictTimeoutMs,
    timeoutDecision: req.timeoutDecision,
    maxBatchEvents: req.maxBatchEvents,
    queueCapacity: limits.queueCapacity,
    // grpc-js would end the stream on a message past its send limit.
    maxBatchBytes: Math.min(MAX_BATCH_BYTES, (limits.maxMessageBytes ?? Infinity) - BATCH_HEADER_BYTES),
    maxPending: limits.maxPendingPerWatch,
    onVerdictLatency: hooks.onVerdictLatency,
    onDecision: hooks.audit ? auditDecision(hooks.audit, id, hooks.who) : undefined,
    onFailed: hooks.onFailed,
    selection: req.selection,
    processDetails: req.processDetails,
    coalesceMs: req.coalesceMs,
    maxEventsPerSecond: req.maxEventsPerSecond,
    // A named watch may have several streams, or none for a while: it reads into its journal.
    shared: req.name
      ? { lingerMs: req.lingerMs, journalBytes: limits.resumeBufferBytes, budget: limits.resumeBudget, owner: { watch: id, name: req.name }, codec: eventCodec }
      : undefined,
  };
}

/** One audit record per permission response, after the kernel has it. */
function auditDecision(audit: AuditSink, id: string, who: Record<string, unknown>): NonNullable<WatchOptions['onDecision']> {
  return (item: WatchEvent, allowed: boolean, by: DecidedBy, latencyMs: number) =>
    audit.record('decision', {
      watch: id,
      ...who,
      event: item.id,
      path: item.ev.path?.toString('utf8') ?? '',
      pid: item.ev.process.pid,
      exe: item.ev.process.exe,
      decision: allowed ? 'allow' : 'deny',
      decided_by: by,
      // Which of the watch's rules (its index, as Event.rule says it).
      ...(by === 'rule' && item.ruleDecision ? { rule: item.ruleDecision.index } : {}),
      // On the watch's monotonic clock: a wall-clock step cannot skew it.
      latency_ms: latencyMs,
    });
}
