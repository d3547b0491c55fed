// A watch's filters and rules, compiled: which events reach the client
// (include, exclude) and which permission events the daemon answers itself
// (rules, the first that matches deciding).
//
// Each Match is checked cheapest first: the event's bits (in the record),
// then the process's ids and names (the process cache, /proc on a miss),
// then the path globs (a readlink or a handle lookup, then decoding the
// path to a string). What a check needs is asked of the subject only when
// an earlier check has not already failed, so a Match with event types
// alone reads nothing, and a path-only filter never reads /proc.
import { NameGlobSet, PathGlobSet, type PathText } from '../common/glob';
import type { ContainerInfo } from '../host/container';
import type { ProcessInfo } from '../host/process';
import * as K from '../kernel/constants';
import type { MatchSpec, RuleSpec, SelectionSpec } from './types';

/** What a Match looks at, each part produced on first request and kept for the event's other checks. */
export interface MatchSubject extends PathText {
  readonly mask: number;
  /** The process: `details` false when it could not be read (a process field then never matches). */
  process(): ProcessInfo;
  // pathName() and pathWhole(): '' when the event has no path.
}

/** decide()'s answer when the event goes to the client as it would without rules. */
export const DELIVER = -1;
/** decide()'s answer when include or exclude leaves the event out. */
export const FILTERED = -2;

class CompiledMatch {
  private readonly events: number;
  private readonly uids?: readonly number[];
  private readonly gids?: readonly number[];
  private readonly comms?: NameGlobSet;
  private readonly exes?: PathGlobSet;
  private readonly paths?: PathGlobSet;
  private readonly workload?: WorkloadMatch;
  /** The match reads the process. */
  readonly needsProcess: boolean;
  readonly needsPath: boolean;

  constructor(m: MatchSpec) {
    this.events = m.events;
    if (m.uids.length) this.uids = [...m.uids];
    if (m.gids.length) this.gids = [...m.gids];
    if (m.comms.length) this.comms = new NameGlobSet(m.comms);
    if (m.exes.length) this.exes = new PathGlobSet(m.exes);
    if (m.paths.length) this.paths = new PathGlobSet(m.paths);
    this.workload = workloadMatch(m);
    this.needsProcess = !!(this.uids || this.gids || this.comms || this.exes || this.workload);
    this.needsPath = !!this.paths;
  }

  test(s: MatchSubject): boolean {
    if (this.events !== 0 && (s.mask & this.events) === 0) return false;
    if (this.needsProcess && !this.testProcess(s.process())) return false;
    return !this.paths || this.paths.test(s);
  }

  private testProcess(p: ProcessInfo): boolean {
    // Nothing is known of a process that was gone before it could be read:
    // its zeros are not root's ids, nor its empty names anyone's.
    if (!p.details) return false;
    if (this.uids && !this.uids.includes(p.uid)) return false;
    if (this.gids && !this.gids.includes(p.gid)) return false;
    if (this.comms && !this.comms.test(p.comm)) return false;
    if (this.exes && (p.exe === '' || !this.exes.testString(p.exe))) return false;
    return !this.workload || this.workload.test(p.container);
  }
}

/** Match.container_ids, pod_uids, pod_namespaces and host_only. */
class WorkloadMatch {
  constructor(
    private readonly ids: readonly string[],
    private readonly podUids: readonly string[],
    private readonly namespaces: readonly string[],
    private readonly hostOnly: boolean,
  ) {}

  test(c: ContainerInfo | undefined): boolean {
    if (this.hostOnly && c) return false;
    if (!this.ids.length && !this.podUids.length && !this.namespaces.length) return true;
    if (!c) return false;
    // A prefix of 12 or more digits, as docker ps and podman ps print ids.
    if (this.ids.length && !this.ids.some((id) => c.id.startsWith(id))) return false;
    if (this.podUids.length && !this.podUids.includes(c.podUid)) return false;
    // Known only once the runtime has answered: until then, no match.
    return !this.namespaces.length || (c.podNamespace !== undefined && this.namespaces.includes(c.podNamespace));
  }
}

function workloadMatch(m: MatchSpec): WorkloadMatch | undefined {
  const ids = m.containerIds ?? [];
  const pods = m.podUids ?? [];
  const namespaces = m.podNamespaces ?? [];
  if (!ids.length && !pods.length && !namespaces.length && !m.hostOnly) return undefined;
  return new WorkloadMatch(ids, pods, namespaces, m.hostOnly === true);
}

function anyOf(ms: readonly CompiledMatch[], s: MatchSubject): boolean {
  for (const m of ms) if (m.test(s)) return true;
  return false;
}

/** Every event bit of a mark's mask: all but the flags FAN_ONDIR and FAN_EVENT_ON_CHILD. */
const EVENT_BITS = ~(K.FAN_ONDIR | K.FAN_EVENT_ON_CHILD);

/**
 * A Match that names event types and nothing else. Checked over every
 * field but events, whatever fields MatchSpec gains: a Match with any other
 * field set may leave some of its types' events in, so the kernel must
 * still report them.
 */
function onlyEvents(m: MatchSpec): boolean {
  return Object.entries(m).every(([k, v]) => k === 'events' || (Array.isArray(v) ? v.length === 0 : !v));
}

/**
 * The event types include and exclude leave out whatever else an event
 * is: those of an exclude Match that names types alone (every type for an
 * empty one), and, when there is an include, those no include Match can
 * match. The kernel need not report them at all: the watch leaves them out
 * of its marks (placed-marks.ts), so such an event costs the daemon
 * nothing, where reading one and dropping it cost 4-5 us. A permission
 * event left out this way is one the daemon would have allowed at once.
 */
export function filteredOutTypes(spec: SelectionSpec): number {
  let out = 0;
  for (const m of spec.exclude) if (onlyEvents(m)) out |= m.events === 0 ? EVENT_BITS : m.events;
  if (spec.include.length) {
    let possible = 0;
    for (const m of spec.include) possible |= m.events === 0 ? EVENT_BITS : m.events;
    out |= EVENT_BITS & ~possible;
  }
  return out & EVENT_BITS;
}

export class Selection {
  private readonly include: CompiledMatch[];
  private readonly exclude: CompiledMatch[];
  private readonly ruleMatches: CompiledMatch[];
  readonly rules: readonly RuleSpec[];
  /** Nothing to check: every event goes to the client, and the reader builds no subject. */
  readonly empty: boolean;
  /** Some check reads the process (uids, gids, comms, exes or the workload's fields). */
  readonly needsProcess: boolean;

  /** Throws GlobError (src/common/glob.ts) for the first glob that cannot be used, saying what to write. */
  constructor(spec: SelectionSpec = { include: [], exclude: [], rules: [] }) {
    this.include = spec.include.map((m) => new CompiledMatch(m));
    this.exclude = spec.exclude.map((m) => new CompiledMatch(m));
    this.ruleMatches = spec.rules.map((r) => new CompiledMatch(r.match));
    this.rules = spec.rules.map((r) => ({ ...r, match: { ...r.match } }));
    const all = [...this.include, ...this.exclude, ...this.ruleMatches];
    this.empty = all.length === 0;
    this.needsProcess = all.some((m) => m.needsProcess);
  }

  /**
   * FILTERED when include (if any) has no match for the event or exclude
   * has one; otherwise, for a permission event, the index of the first
   * rule that matches it; otherwise DELIVER.
   */
  decide(s: MatchSubject, permission: boolean): number {
    if (this.include.length && !anyOf(this.include, s)) return FILTERED;
    if (this.exclude.length && anyOf(this.exclude, s)) return FILTERED;
    if (permission) {
      for (let i = 0; i < this.ruleMatches.length; i++) if (this.ruleMatches[i].test(s)) return i;
    }
    return DELIVER;
  }
}
