// What a client asks the daemon to do before an event reaches it: filters
// (include, exclude), rules the daemon answers itself, how much it reads
// about the process, coalescing and a rate limit. Parsed from Subscribe and
// from ReplaceRules alike, so both refuse the same things with the same
// words; every message names the field path (`Subscribe.rules[2].match.paths[0]`).
//
// The patterns are compiled by the watch, on the main thread, into matchers
// every event runs through: the counts are bounded here so that a client
// cannot make the daemon compile, or try per event, an unbounded number.
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { GroupClass } from '../kernel/group';
import type { MatchSpec, ProcessDetails, RuleSpec, SelectionSpec } from '../watch/types';
import { DECISIONS, decisionOptionsProblem } from './decisions';
import { ApiError } from './errors';
import { typeToBit } from './event-types';
import type { Match__Output } from './gen/fanotify/v1/Match';
import type { ProcessDetails__Output } from './gen/fanotify/v1/ProcessDetails';
import type { Rule__Output } from './gen/fanotify/v1/Rule';

export const SELECTION_LIMITS = {
  /** Match messages of include, exclude and rules together. */
  maxMatches: 256,
  /** Globs (paths, exes and comms) of all those matches together. */
  maxGlobs: 1024,
  /** One glob's length in bytes: PATH_MAX. */
  maxGlobBytes: 4096,
  /** uids, gids, container ids, pod uids and pod namespaces of all those matches together. */
  maxIds: 1024,
  /** Subscribe.coalesce_ms: a minute; a longer window holds events back longer than anyone watching would wait. */
  maxCoalesceMs: 60_000,
  /**
   * Subscribe.max_events_per_second: far above what one watch delivers
   * (200,000-400,000 events/s measured in dfid_name mode), so a higher
   * limit would mean no limit; 0 says that.
   */
  maxEventsPerSecond: 1_000_000,
} as const;

/** The fields Subscribe and ReplaceRules share. */
export interface SelectionMessage {
  include?: Match__Output[] | null;
  exclude?: Match__Output[] | null;
  rules?: Rule__Output[] | null;
}

/**
 * What the watch the selection is for allows. Not its process details: a
 * match on exes, comms, uids or gids has the watch read them to decide,
 * whatever the client asked to be sent.
 */
export interface SelectionContext {
  groupClass: GroupClass;
}

const invalid = (text: string) => new ApiError(grpc.status.INVALID_ARGUMENT, text);

/**
 * Include, exclude and rules, validated for the watch. `where` is the
 * message they came in (Subscribe or ReplaceRules), the start of every
 * field path in an error.
 */
export function parseSelection(msg: SelectionMessage, where: string, ctx: SelectionContext): SelectionSpec {
  const include = msg.include ?? [];
  const exclude = msg.exclude ?? [];
  const rules = msg.rules ?? [];
  if (rules.length > 0 && ctx.groupClass === 'notif') {
    throw invalid(`${where}.rules: a GROUP_CLASS_NOTIF watch has no permission events to decide; subscribe with GROUP_CLASS_CONTENT or GROUP_CLASS_PRE_CONTENT, or send no rules`);
  }
  checkCounts(where, [...include, ...exclude, ...rules.map((r) => r?.match)]);
  return {
    include: include.map((m, i) => parseMatch(m, `${where}.include[${i}]`, false)),
    exclude: exclude.map((m, i) => parseMatch(m, `${where}.exclude[${i}]`, false)),
    rules: rules.map((r, i) => parseRule(r, `${where}.rules[${i}]`, ctx)),
  };
}

/** Bounds on the whole before any pattern is looked at. */
function checkCounts(where: string, matches: Array<Match__Output | null | undefined>): void {
  const exhausted = (text: string) => new ApiError(grpc.status.RESOURCE_EXHAUSTED, `${where}: ${text}`);
  const L = SELECTION_LIMITS;
  if (matches.length > L.maxMatches) {
    throw exhausted(`include, exclude and rules hold ${matches.length} matches together, over the limit of ${L.maxMatches} per watch`);
  }
  let globs = 0;
  let ids = 0;
  for (const m of matches) {
    globs += (m?.paths?.length ?? 0) + (m?.exes?.length ?? 0) + (m?.comms?.length ?? 0);
    ids += (m?.uids?.length ?? 0) + (m?.gids?.length ?? 0) + (m?.container_ids?.length ?? 0) + (m?.pod_uids?.length ?? 0) + (m?.pod_namespaces?.length ?? 0);
  }
  if (globs > L.maxGlobs) throw exhausted(`the matches of include, exclude and rules hold ${globs} globs (paths, exes and comms), over the limit of ${L.maxGlobs} per watch`);
  if (ids > L.maxIds) throw exhausted(`the matches of include, exclude and rules hold ${ids} ids (uids, gids, container ids, pod uids and namespaces), over the limit of ${L.maxIds} per watch`);
}

function parseRule(r: Rule__Output | null | undefined, field: string, ctx: SelectionContext): RuleSpec {
  const match = parseMatch(r?.match, `${field}.match`, true);
  const decision = DECISIONS[r?.decision ?? 'DECISION_UNSPECIFIED'];
  if (!decision) throw invalid(`${field}.decision: ${String(r?.decision ?? 'DECISION_UNSPECIFIED')} is not DECISION_ALLOW or DECISION_DENY; a rule must say which`);
  const cache = r?.cache === true;
  const errno = Number(r?.errno ?? 0);
  const problem = decisionOptionsProblem(decision, cache, errno, ctx.groupClass);
  if (problem) throw invalid(`${field}.${problem}`);
  return { match, decision, report: r?.report === true, cache, errno };
}

/** A Match; a missing one matches anything. In a rule, its events must be permission events. */
function parseMatch(m: Match__Output | null | undefined, field: string, inRule: boolean): MatchSpec {
  let events = 0;
  (m?.events ?? []).forEach((e, j) => {
    const bit = typeToBit(e, `${field}.events[${j}]`);
    if (inRule && !(bit & K.FAN_PERMISSION_EVENTS)) {
      throw invalid(`${field}.events[${j}]: ${String(e)} is not a permission event; a rule decides only EVENT_TYPE_OPEN_PERM, EVENT_TYPE_ACCESS_PERM, EVENT_TYPE_OPEN_EXEC_PERM and EVENT_TYPE_PRE_ACCESS`);
    }
    events |= bit;
  });
  const spec: MatchSpec = {
    paths: (m?.paths ?? []).map((g, j) => checkGlob(g, `${field}.paths[${j}]`, true)),
    exes: (m?.exes ?? []).map((g, j) => checkGlob(g, `${field}.exes[${j}]`, true)),
    comms: (m?.comms ?? []).map((g, j) => checkGlob(g, `${field}.comms[${j}]`, false)),
    uids: (m?.uids ?? []).map(Number),
    gids: (m?.gids ?? []).map(Number),
    events,
  };
  return { ...spec, ...parseWorkload(m, field) };
}

const CONTAINER_ID = /^[0-9a-f]{12,64}$/;
/** An RFC 4122 uid as kubelet writes it (metadata.uid). */
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A DNS-1123 label, which a namespace name is. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Match's workload fields; only those set, so a Match without them reads as before. */
function parseWorkload(m: Match__Output | null | undefined, field: string): Pick<MatchSpec, 'containerIds' | 'podUids' | 'podNamespaces' | 'hostOnly'> {
  const out: Pick<MatchSpec, 'containerIds' | 'podUids' | 'podNamespaces' | 'hostOnly'> = {};
  const list = (values: string[] | undefined, name: string, re: RegExp, what: string): string[] =>
    (values ?? []).map((v, j) => {
      if (typeof v !== 'string' || !re.test(v)) throw invalid(`${field}.${name}[${j}]: "${String(v)}" is not ${what}`);
      return v;
    });
  const ids = list(m?.container_ids, 'container_ids', CONTAINER_ID, 'a container id: write 12 to 64 lowercase hex digits, the whole id or its start (as `podman ps` or `crictl ps` prints it)');
  const pods = list(m?.pod_uids, 'pod_uids', POD_UID, 'a pod uid: write it as metadata.uid shows it (8-4-4-4-12 lowercase hex digits)');
  const namespaces = list(m?.pod_namespaces, 'pod_namespaces', NAMESPACE, 'a namespace name (lowercase letters, digits and "-", at most 63)');
  if (m?.host_only && (ids.length || pods.length || namespaces.length)) {
    throw invalid(`${field}.host_only: a process in no container has no container id, pod uid or namespace; put host_only in a Match of its own`);
  }
  if (ids.length) out.containerIds = ids;
  if (pods.length) out.podUids = pods;
  if (namespaces.length) out.podNamespaces = namespaces;
  if (m?.host_only) out.hostOnly = true;
  return out;
}

/**
 * A glob as .gitignore reads it (the watch compiles it). Refused: what
 * cannot mean what its author meant. A path glob with "/" is anchored at a
 * directory, and a daemon has none to anchor it at but the root, so it
 * must say so; fanctl's path-rules.ts reads --deny patterns the same way.
 */
function checkGlob(g: unknown, field: string, isPath: boolean): string {
  if (typeof g !== 'string' || g === '') throw invalid(`${field}: the pattern is empty; remove it, or write "*" to match anything`);
  if (g.includes('\0')) throw invalid(`${field}: the pattern contains a NUL byte`);
  const bytes = Buffer.byteLength(g);
  if (bytes > SELECTION_LIMITS.maxGlobBytes) throw invalid(`${field}: the pattern is ${bytes} bytes, over the limit of ${SELECTION_LIMITS.maxGlobBytes}`);
  if (g.startsWith('!')) {
    throw invalid(`${field}: "${g}": a leading "!" does not negate in a Match; put the pattern in exclude (or in an earlier rule) instead, or write "\\!" for a name that starts with "!"`);
  }
  if (!isPath) return g;
  if (g.endsWith('/')) {
    const under = g.startsWith('/') || g.startsWith('**/') ? `${g}**` : `**/${g}**`;
    throw invalid(`${field}: "${g}": events name files, so a pattern cannot end with "/"; "${under}" matches everything under a directory`);
  }
  if (g.includes('/') && !g.startsWith('/') && !g.startsWith('**/')) {
    const name = g.slice(g.lastIndexOf('/') + 1);
    throw invalid(
      `${field}: "${g}" has a "/" but is not absolute: start it with "/" (an absolute path) or "**/" (any directory), or drop the directory part ("${name}" alone matches that name anywhere)`,
    );
  }
  return g;
}

const PROCESS_DETAILS: Record<string, ProcessDetails> = {
  PROCESS_DETAILS_UNSPECIFIED: 'full',
  PROCESS_DETAILS_FULL: 'full',
  PROCESS_DETAILS_BASIC: 'basic',
  PROCESS_DETAILS_PID: 'pid',
};

export function parseProcessDetails(v: ProcessDetails__Output | undefined): ProcessDetails {
  const d = PROCESS_DETAILS[v ?? 'PROCESS_DETAILS_UNSPECIFIED'];
  if (!d) throw invalid(`Subscribe.process_details: ${String(v)} is unknown; use PROCESS_DETAILS_FULL, PROCESS_DETAILS_BASIC or PROCESS_DETAILS_PID`);
  return d;
}

/** Subscribe.coalesce_ms or max_events_per_second, within its bound; 0 is off. */
export function boundedOption(field: 'coalesce_ms' | 'max_events_per_second', v: number | undefined): number {
  const n = Number(v ?? 0);
  const max = field === 'coalesce_ms' ? SELECTION_LIMITS.maxCoalesceMs : SELECTION_LIMITS.maxEventsPerSecond;
  if (n > max) throw invalid(`Subscribe.${field}: ${n} is over the daemon's maximum of ${max}; 0 turns it off`);
  return n;
}
