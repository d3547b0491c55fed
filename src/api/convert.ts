// proto <-> domain conversion. Requests arrive as proto-loader objects of
// the generated __Output types (enums as names, 64-bit integers as decimal
// strings, absent fields as their defaults); everything here checks shape
// and range before the domain layer sees it. The types are what a
// well-formed message gives: an enum number the .proto does not name
// arrives as that number, so every enum is looked up, never trusted.
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { KernelFeatures } from '../kernel/probe';
import type { GroupClass, GroupSpec, MarkScope, MarkSpec, ReportMode } from '../kernel/group';
import type { Decision, OverflowNotice, ProcessDetails, SelectionSpec, WatchStats } from '../watch/types';
import { DECISIONS, decisionOptionsProblem } from './decisions';
import { ApiError } from './errors';
import { typeToBit } from './event-types';
import type { Decision__Output } from './gen/fanotify/v1/Decision';
import type { FlushMarks__Output } from './gen/fanotify/v1/FlushMarks';
import type { Mark__Output } from './gen/fanotify/v1/Mark';
import type { Overflow } from './gen/fanotify/v1/Overflow';
import type { OverflowSource__Output } from './gen/fanotify/v1/OverflowSource';
import type { ReportMode__Output } from './gen/fanotify/v1/ReportMode';
import type { Subscribe__Output } from './gen/fanotify/v1/Subscribe';
import type { VerdictBatch__Output } from './gen/fanotify/v1/VerdictBatch';
import type { WatchStats as WatchStatsMessage } from './gen/fanotify/v1/WatchStats';
import { boundedOption, parseProcessDetails, parseSelection } from './selection-request';

export { EVENT_TYPES, EVENT_TYPE_NUMBERS, typeToBit } from './event-types';

const GROUP_CLASSES: Record<string, GroupClass> = {
  GROUP_CLASS_UNSPECIFIED: 'notif',
  GROUP_CLASS_NOTIF: 'notif',
  GROUP_CLASS_CONTENT: 'content',
  GROUP_CLASS_PRE_CONTENT: 'pre_content',
};
const MARK_SCOPES: Record<string, MarkScope> = {
  MARK_SCOPE_UNSPECIFIED: 'inode',
  MARK_SCOPE_INODE: 'inode',
  MARK_SCOPE_MOUNT: 'mount',
  MARK_SCOPE_FILESYSTEM: 'filesystem',
  MARK_SCOPE_MOUNT_NAMESPACE: 'mount_namespace',
  MARK_SCOPE_SUBTREE: 'subtree',
};

export interface SubscribeLimits {
  defaultVerdictTimeoutMs: number;
  maxVerdictTimeoutMs: number;
  defaultMaxBatchEvents: number;
  maxBatchEvents: number;
  maxMarksPerWatch: number;
  /** The largest Subscribe.linger_ms (--max-linger-ms). */
  maxLingerMs: number;
}

export interface SubscribeRequest {
  group: GroupSpec;
  verdictTimeoutMs: number;
  timeoutDecision: Decision;
  maxBatchEvents: number;
  /** Leave FAN_REPORT_PIDFD out (Subscribe.skip_pid_verification). */
  skipPidVerification: boolean;
  /** Include, exclude and rules; undefined when the Subscribe had none. */
  selection?: SelectionSpec;
  processDetails: ProcessDetails;
  /** 0: off. */
  coalesceMs: number;
  /** 0: no limit. */
  maxEventsPerSecond: number;
  /** Subscribe.name; empty: unnamed (one stream, closed with it). */
  name: string;
  /** How long a named watch stays after its last stream; 0: it closes with it. */
  lingerMs: number;
}

/** The fields of Subscribe that are plain flags. */
type SubscribeFlag = 'report_tid' | 'report_target_fid' | 'report_fd_error';

/** Validate a Subscribe message against the API and this kernel. */
export function parseSubscribe(msg: Subscribe__Output, limits: SubscribeLimits, kernel: KernelFeatures): SubscribeRequest {
  const invalid = (text: string) => new ApiError(grpc.status.INVALID_ARGUMENT, `Subscribe: ${text}`);
  const unsupported = (text: string) => new ApiError(grpc.status.FAILED_PRECONDITION, `Subscribe: ${text}`);

  // A field left out reads as its zero value, as in proto3.
  const groupClass = GROUP_CLASSES[msg.group_class ?? 'GROUP_CLASS_UNSPECIFIED'];
  if (!groupClass) throw invalid(`group_class ${String(msg.group_class)} is unknown`);
  if (!kernel.classes[groupClass]) throw unsupported(`this kernel (${kernel.release}) does not support ${msg.group_class}`);

  const marksIn: Mark__Output[] = Array.isArray(msg.marks) ? msg.marks : [];
  if (marksIn.length === 0) throw invalid('marks is empty; give at least one Mark with a path and events');
  if (marksIn.length > limits.maxMarksPerWatch) {
    throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `Subscribe: ${marksIn.length} marks exceed the limit of ${limits.maxMarksPerWatch} per watch`);
  }
  const marks: MarkSpec[] = marksIn.map((m, i) => parseMark(m, `Subscribe: marks[${i}]`, groupClass, kernel));
  const audit = msg.enable_audit === true;
  if (audit && !kernel.initFlags.get(K.FAN_ENABLE_AUDIT)) throw unsupported(`this kernel (${kernel.release}) does not support enable_audit`);

  let verdictTimeoutMs = Number(msg.verdict_timeout_ms ?? 0);
  if (verdictTimeoutMs === 0) verdictTimeoutMs = limits.defaultVerdictTimeoutMs;
  if (verdictTimeoutMs > limits.maxVerdictTimeoutMs) {
    throw invalid(`verdict_timeout_ms ${verdictTimeoutMs} exceeds the daemon's maximum of ${limits.maxVerdictTimeoutMs}`);
  }
  const timeoutDecision = parseTimeoutDecision(msg.timeout_decision, groupClass);

  let maxBatchEvents = Number(msg.max_batch_events ?? 0);
  if (maxBatchEvents === 0) maxBatchEvents = limits.defaultMaxBatchEvents;
  if (maxBatchEvents > limits.maxBatchEvents) {
    throw invalid(`max_batch_events ${maxBatchEvents} exceeds the daemon's maximum of ${limits.maxBatchEvents}`);
  }
  const flag = (field: SubscribeFlag, bit: number): boolean => {
    const on = msg[field] === true;
    if (on && !kernel.initFlags.get(bit)) throw unsupported(`this kernel (${kernel.release}) does not support ${field}`);
    return on;
  };
  const reportTid = flag('report_tid', K.FAN_REPORT_TID);
  const reportTargetFid = flag('report_target_fid', K.FAN_REPORT_TARGET_FID);
  const reportFdError = flag('report_fd_error', K.FAN_REPORT_FD_ERROR);
  const rm = msg.report_mode ?? 'REPORT_MODE_UNSPECIFIED';
  if (!Object.hasOwn(REPORT_MODE_OF, rm)) throw invalid(`report_mode ${String(rm)} is unknown`);
  const reportMode = REPORT_MODE_OF[rm];
  if (reportMode === 'dfid_name' && !kernel.initFlags.get(K.FAN_REPORT_NAME)) throw unsupported(`this kernel (${kernel.release}) does not support REPORT_MODE_DFID_NAME`);
  const skipPidVerification = msg.skip_pid_verification === true;
  const group = { groupClass, marks, audit, reportTid, reportTargetFid, reportFdError, reportMode, dfidNameSupported: kernel.initFlags.get(K.FAN_REPORT_NAME) === true };
  return { group, verdictTimeoutMs, timeoutDecision, maxBatchEvents, skipPidVerification, ...parseDelivery(msg, groupClass), ...parseNaming(msg, limits) };
}

const WATCH_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/** Subscribe.name and linger_ms. */
function parseNaming(msg: Subscribe__Output, limits: SubscribeLimits): Pick<SubscribeRequest, 'name' | 'lingerMs'> {
  const name = typeof msg.name === 'string' ? msg.name : '';
  const lingerMs = Number(msg.linger_ms ?? 0);
  if (name !== '') checkWatchName(name, 'Subscribe');
  if (lingerMs > 0 && name === '') throw new ApiError(grpc.status.INVALID_ARGUMENT, 'Subscribe: linger_ms needs a name: only a named watch can be attached to after its stream ends');
  if (lingerMs > limits.maxLingerMs) {
    throw new ApiError(grpc.status.INVALID_ARGUMENT, `Subscribe: linger_ms ${lingerMs} exceeds the daemon's maximum of ${limits.maxLingerMs} (--max-linger-ms)`);
  }
  return { name, lingerMs };
}

/** A watch name as Subscribe.name and Attach.name take it. */
export function checkWatchName(name: string, where: string): void {
  if (!WATCH_NAME.test(name)) {
    throw new ApiError(grpc.status.INVALID_ARGUMENT, `${where}: name "${name.slice(0, 140)}" is not 1-128 letters, digits, ".", "_" or "-"`);
  }
}

/** What Subscribe says about the events between the kernel and the client: filters, rules, process details, coalescing, rate. */
function parseDelivery(msg: Subscribe__Output, groupClass: GroupClass): Pick<SubscribeRequest, 'selection' | 'processDetails' | 'coalesceMs' | 'maxEventsPerSecond'> {
  const processDetails = parseProcessDetails(msg.process_details);
  const selection = parseSelection(msg, 'Subscribe', { groupClass });
  const none = selection.include.length + selection.exclude.length + selection.rules.length === 0;
  return {
    selection: none ? undefined : selection,
    processDetails,
    coalesceMs: boundedOption('coalesce_ms', msg.coalesce_ms),
    maxEventsPerSecond: boundedOption('max_events_per_second', msg.max_events_per_second),
  };
}

/**
 * What the kernel is told when a verdict does not come. A permission watch
 * must say it: fail open or fail closed is a choice for whoever runs the
 * policy, never a default nobody chose. A notification watch has no
 * verdicts, so its value does not matter.
 */
function parseTimeoutDecision(td: Decision__Output | undefined, groupClass: GroupClass): Decision {
  if (td === undefined || td === 'DECISION_UNSPECIFIED') {
    if (groupClass === 'notif') return 'allow';
    throw new ApiError(
      grpc.status.INVALID_ARGUMENT,
      'Subscribe.timeout_decision is required for permission classes: DECISION_ALLOW (fail open) or DECISION_DENY (fail closed)',
    );
  }
  const decision = DECISIONS[td];
  if (!decision) throw new ApiError(grpc.status.INVALID_ARGUMENT, `Subscribe: timeout_decision ${String(td)} is unknown; use DECISION_ALLOW or DECISION_DENY`);
  return decision;
}

type MarkFlag = 'dont_follow' | 'only_dir' | 'evictable' | 'ignore' | 'ignore_survives_modify';
const MARK_FLAG_FIELDS: ReadonlyArray<[MarkFlag, number]> = [
  ['dont_follow', K.FAN_MARK_DONT_FOLLOW],
  ['only_dir', K.FAN_MARK_ONLYDIR],
  ['evictable', K.FAN_MARK_EVICTABLE],
  ['ignore', K.FAN_MARK_IGNORE],
  ['ignore_survives_modify', K.FAN_MARK_IGNORED_SURV_MODIFY],
];

/** A Mark message, validated for a watch of the given class. `where` prefixes every message. */
export function parseMark(m: Mark__Output | null | undefined, where: string, groupClass: GroupClass, kernel: KernelFeatures): MarkSpec {
  const invalid = (text: string) => new ApiError(grpc.status.INVALID_ARGUMENT, `${where}: ${text}`);
  if (!m || typeof m !== 'object') throw invalid('mark is missing');
  const path: unknown = m.path;
  if (typeof path !== 'string' || path === '') throw invalid('path is missing; give an absolute path');
  if (!path.startsWith('/')) throw invalid(`path "${path}" is relative; give an absolute path`);
  if (path.includes('\0')) throw invalid('path contains a NUL byte');
  const scope = MARK_SCOPES[m.scope ?? 'MARK_SCOPE_UNSPECIFIED'];
  if (!scope) throw invalid(`scope ${String(m.scope)} is unknown`);
  if (!kernel.scopes[scope]) {
    throw new ApiError(grpc.status.FAILED_PRECONDITION, `${where}: this kernel (${kernel.release}) does not support ${m.scope}`);
  }
  const events: unknown[] = Array.isArray(m.events) ? m.events : [];
  if (events.length === 0) throw invalid('events is empty; name at least one EventType');
  let mask = 0;
  for (const e of events) {
    const bit = typeToBit(e, where);
    if (kernel.events.get(bit) === false) {
      throw new ApiError(grpc.status.FAILED_PRECONDITION, `${where}: this kernel (${kernel.release}) does not support ${String(e)}`);
    }
    if (bit & K.FAN_PERMISSION_EVENTS && groupClass === 'notif') {
      throw invalid(`${String(e)} is a permission event; subscribe with group_class GROUP_CLASS_CONTENT or GROUP_CLASS_PRE_CONTENT`);
    }
    if (bit === K.FAN_PRE_ACCESS && groupClass !== 'pre_content') {
      throw invalid('EVENT_TYPE_PRE_ACCESS needs group_class GROUP_CLASS_PRE_CONTENT');
    }
    mask |= bit;
  }
  const mntEvents = mask & (K.FAN_MNT_ATTACH | K.FAN_MNT_DETACH);
  if ((scope === 'mount_namespace') !== (mntEvents !== 0) || (mntEvents && mask !== mntEvents)) {
    throw invalid('EVENT_TYPE_MNT_ATTACH and EVENT_TYPE_MNT_DETACH go with MARK_SCOPE_MOUNT_NAMESPACE (a path like /proc/PID/ns/mnt), and only they');
  }
  if (m.on_child) mask |= K.FAN_EVENT_ON_CHILD;
  if (m.on_dir) mask |= K.FAN_ONDIR;
  let flags = 0;
  for (const [field, bit] of MARK_FLAG_FIELDS) {
    if (!m[field]) continue;
    if (kernel.markFlags.get(bit) === false) {
      throw new ApiError(grpc.status.FAILED_PRECONDITION, `${where}: this kernel (${kernel.release}) does not support ${field}`);
    }
    flags |= bit;
  }
  return { path, scope, mask, flags };
}

export { DENY_ERRNOS } from './decisions';

export interface VerdictRequest {
  id: number;
  decision: Decision;
  cache: boolean;
  /** 0, or the errno for FAN_DENY_ERRNO. */
  errno: number;
  audit: boolean;
  /** FAN_INFO audit rule number, 0 for none. */
  auditRule: number;
}

/** Verdicts of a VerdictBatch, validated against the watch they are for. */
export function parseVerdicts(msg: VerdictBatch__Output | null | undefined, watch: { groupClass: GroupClass; audit: boolean } = { groupClass: 'content', audit: false }): VerdictRequest[] {
  const list = Array.isArray(msg?.verdicts) ? msg.verdicts : [];
  return list.map((v, i) => {
    const invalid = (text: string) => new ApiError(grpc.status.INVALID_ARGUMENT, `verdicts[${i}]: ${text}`);
    const decision = DECISIONS[v?.decision];
    if (!decision) throw invalid(`decision ${String(v?.decision)} is not DECISION_ALLOW or DECISION_DENY`);
    const cache = v.cache === true;
    const errno = Number(v.errno ?? 0);
    const problem = decisionOptionsProblem(decision, cache, errno, watch.groupClass);
    if (problem) throw invalid(problem);
    const audit = v.audit === true;
    if (audit && !watch.audit) throw invalid('audit needs a watch subscribed with enable_audit');
    const auditRule = Number(v.audit_rule ?? 0);
    if (auditRule && !audit) throw invalid('audit_rule needs audit set');
    // Ids are below 2^53 for the life of any watch; a larger one matches nothing.
    return { id: Number(v.id), decision, cache, errno, audit, auditRule };
  });
}

export function parseFlushScope(msg: FlushMarks__Output | null | undefined): MarkScope {
  const scope = MARK_SCOPES[msg?.scope ?? 'MARK_SCOPE_UNSPECIFIED'];
  if (!scope) throw new ApiError(grpc.status.INVALID_ARGUMENT, `FlushMarks: scope ${String(msg?.scope)} is unknown`);
  return scope;
}

const REPORT_MODES: Record<ReportMode, ReportMode__Output> = { fd: 'REPORT_MODE_FD', dfid_name: 'REPORT_MODE_DFID_NAME', mnt: 'REPORT_MODE_MNT' };
const REPORT_MODE_OF: Record<string, ReportMode | undefined> = {
  REPORT_MODE_UNSPECIFIED: undefined,
  ...Object.fromEntries(Object.entries(REPORT_MODES).map(([mode, name]) => [name, mode as ReportMode])),
};
export function reportModeName(mode: ReportMode): ReportMode__Output {
  return REPORT_MODES[mode];
}
export function decisionName(d: Decision): Decision__Output {
  return d === 'allow' ? 'DECISION_ALLOW' : 'DECISION_DENY';
}

const OVERFLOW_SOURCES: Record<OverflowNotice['source'], OverflowSource__Output> = {
  kernel: 'OVERFLOW_SOURCE_KERNEL',
  client: 'OVERFLOW_SOURCE_CLIENT',
  rate_limit: 'OVERFLOW_SOURCE_RATE_LIMIT',
};

export function overflowToProto(o: OverflowNotice): Overflow {
  return {
    source: OVERFLOW_SOURCES[o.source],
    dropped: o.dropped,
    total: o.total,
    sequence: o.seq ?? 0,
  };
}

/**
 * Counters the watch keeps once filters, coalescing and the rate limit
 * run in it; a watch without them has none (0).
 */
type SelectionCounters = Partial<Record<'filtered' | 'coalesced' | 'droppedRateLimit', number>>;

/** A watch's counters as GetStats answers them. */
export function statsToProto(s: WatchStats, requestId: string): WatchStatsMessage {
  const c = s as WatchStats & SelectionCounters;
  const d = s.decisions;
  return {
    request_id: requestId,
    read: s.eventsRead,
    delivered: s.eventsSent,
    dropped_client_queue: s.notificationsDropped,
    kernel_overflows: s.kernelOverflows,
    dropped_rate_limit: c.droppedRateLimit ?? 0,
    filtered: c.filtered ?? 0,
    coalesced: c.coalesced ?? 0,
    decided_by_rule: d.rule,
    decided_by_client: d.client,
    // The watch's timeout_decision, for each of the reasons it stands in for a verdict.
    decided_by_timeout: d.timeout + d.disconnect + d.limit,
    decided_by_daemon: d.self + d.filter + d.shutdown,
    pending: s.pending,
    verdicts_refused: s.verdictsRefused,
    consumers: s.consumers,
    reassigned: s.reassigned,
    gap_sequences: s.gapSequences,
  };
}
