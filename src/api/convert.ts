// proto <-> domain conversion. Requests arrive as proto-loader objects of
// the generated __Output types (enums as names, 64-bit integers as decimal
// strings, absent fields as their defaults); everything here checks shape
// and range before the domain layer sees it. The types are what a
// well-formed message gives: an enum number the .proto does not name
// arrives as that number, so every enum is looked up, never trusted.
import { constants as osConstants } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { KernelFeatures } from '../kernel/probe';
import type { GroupClass, GroupSpec, MarkScope, MarkSpec, ReportMode } from '../kernel/group';
import type { Decision, OverflowNotice } from '../watch/watch';
import { ApiError } from './errors';
import type { Decision__Output } from './gen/fanotify/v1/Decision';
import type { EventType__Output } from './gen/fanotify/v1/EventType';
import type { FlushMarks__Output } from './gen/fanotify/v1/FlushMarks';
import type { Mark__Output } from './gen/fanotify/v1/Mark';
import type { Overflow } from './gen/fanotify/v1/Overflow';
import type { ReportMode__Output } from './gen/fanotify/v1/ReportMode';
import type { Subscribe__Output } from './gen/fanotify/v1/Subscribe';
import type { VerdictBatch__Output } from './gen/fanotify/v1/VerdictBatch';

export const EVENT_TYPES: ReadonlyArray<[EventType__Output, number]> = [
  ['EVENT_TYPE_ACCESS', K.FAN_ACCESS],
  ['EVENT_TYPE_MODIFY', K.FAN_MODIFY],
  ['EVENT_TYPE_CLOSE_WRITE', K.FAN_CLOSE_WRITE],
  ['EVENT_TYPE_CLOSE_NOWRITE', K.FAN_CLOSE_NOWRITE],
  ['EVENT_TYPE_OPEN', K.FAN_OPEN],
  ['EVENT_TYPE_OPEN_EXEC', K.FAN_OPEN_EXEC],
  ['EVENT_TYPE_ATTRIB', K.FAN_ATTRIB],
  ['EVENT_TYPE_CREATE', K.FAN_CREATE],
  ['EVENT_TYPE_DELETE', K.FAN_DELETE],
  ['EVENT_TYPE_DELETE_SELF', K.FAN_DELETE_SELF],
  ['EVENT_TYPE_MOVED_FROM', K.FAN_MOVED_FROM],
  ['EVENT_TYPE_MOVED_TO', K.FAN_MOVED_TO],
  ['EVENT_TYPE_MOVE_SELF', K.FAN_MOVE_SELF],
  ['EVENT_TYPE_RENAME', K.FAN_RENAME],
  ['EVENT_TYPE_FS_ERROR', K.FAN_FS_ERROR],
  ['EVENT_TYPE_OPEN_PERM', K.FAN_OPEN_PERM],
  ['EVENT_TYPE_ACCESS_PERM', K.FAN_ACCESS_PERM],
  ['EVENT_TYPE_OPEN_EXEC_PERM', K.FAN_OPEN_EXEC_PERM],
  ['EVENT_TYPE_PRE_ACCESS', K.FAN_PRE_ACCESS],
  ['EVENT_TYPE_Q_OVERFLOW', K.FAN_Q_OVERFLOW],
  ['EVENT_TYPE_MNT_ATTACH', K.FAN_MNT_ATTACH],
  ['EVENT_TYPE_MNT_DETACH', K.FAN_MNT_DETACH],
];
const EVENT_BIT = new Map<unknown, number>(EVENT_TYPES);
/** [mask bit, EventType number]: the list above is in enum order, from 1. */
export const EVENT_TYPE_NUMBERS: ReadonlyArray<[number, number]> = EVENT_TYPES.map(([, bit], i) => [bit, i + 1]);

/** The mask bit of one EventType name; throws INVALID_ARGUMENT for unknown or unusable values. */
export function typeToBit(name: unknown, where: string): number {
  const bit = typeof name === 'string' ? EVENT_BIT.get(name) : undefined;
  if (bit === undefined || bit === K.FAN_Q_OVERFLOW) {
    throw new ApiError(
      grpc.status.INVALID_ARGUMENT,
      `${where}: ${String(name)} is not an event type that can be marked; use one of ${EVENT_TYPES.filter(([, b]) => b !== K.FAN_Q_OVERFLOW).map(([n]) => n).join(', ')}`,
    );
  }
  return bit;
}

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
const DECISIONS: Record<string, Decision> = { DECISION_ALLOW: 'allow', DECISION_DENY: 'deny' };

export interface SubscribeLimits {
  defaultVerdictTimeoutMs: number;
  maxVerdictTimeoutMs: number;
  defaultMaxBatchEvents: number;
  maxBatchEvents: number;
  maxMarksPerWatch: number;
}

export interface SubscribeRequest {
  group: GroupSpec;
  verdictTimeoutMs: number;
  timeoutDecision: Decision;
  maxBatchEvents: number;
  /** Leave FAN_REPORT_PIDFD out (Subscribe.skip_pid_verification). */
  skipPidVerification: boolean;
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
  return { group: { groupClass, marks, audit, reportTid, reportTargetFid, reportFdError, reportMode, dfidNameSupported: kernel.initFlags.get(K.FAN_REPORT_NAME) === true }, verdictTimeoutMs, timeoutDecision, maxBatchEvents, skipPidVerification };
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

/** The errnos the kernel accepts in FAN_DENY_ERRNO (measured on 6.18; docs/architecture.md). */
export const DENY_ERRNOS: ReadonlySet<string> = new Set(['EPERM', 'EIO', 'EBUSY', 'ETXTBSY', 'EAGAIN', 'ENOSPC', 'EDQUOT']);
const ERRNO_NAME = new Map(Object.entries(osConstants.errno).map(([n, v]) => [v as number, n]));

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
    if (cache && decision !== 'allow') throw invalid('cache applies to DECISION_ALLOW only: the kernel allows what it ignores');
    const errno = Number(v.errno ?? 0);
    if (errno !== 0) {
      if (decision !== 'deny') throw invalid('errno applies to DECISION_DENY only');
      if (watch.groupClass !== 'pre_content') throw invalid('errno needs a GROUP_CLASS_PRE_CONTENT watch; the kernel refuses it for other classes');
      const name = ERRNO_NAME.get(errno);
      if (!name || !DENY_ERRNOS.has(name)) {
        throw invalid(`errno ${errno}${name ? ` (${name})` : ''} is not one the kernel accepts; use one of ${[...DENY_ERRNOS].map((n) => `${n}=${osConstants.errno[n as keyof typeof osConstants.errno]}`).join(', ')}`);
      }
    }
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

export function overflowToProto(o: OverflowNotice): Overflow {
  return {
    source: o.source === 'kernel' ? 'OVERFLOW_SOURCE_KERNEL' : 'OVERFLOW_SOURCE_CLIENT',
    dropped: o.dropped,
    total: o.total,
  };
}
