// Authorization: which client may mark what. A policy file lists rules;
// the first rule whose pattern matches one of the client's names (a whole
// name, never part of one) applies.
// With no policy file every client may do everything (the unix socket's
// mode and group are then the only gate); with one, a client no rule
// matches may do nothing.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { realMarkPath, type GroupClass, type MarkSpec } from '../kernel/group';
import { ApiError } from './errors';
import { describeIdentity, type ClientIdentity } from './identity';
import type { PolicyRule } from './policy-file';
export { loadPolicy, PolicyError, type PolicyRule } from './policy-file';

function globMatch(glob: string, s: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return re.test(s);
}

/** Is p (already resolved) the prefix itself or below it? */
function under(p: string, prefix: string): boolean {
  return prefix === '/' || p === prefix || p.startsWith(prefix + '/');
}

/** The rule that applies to a client, its place in the file, and how messages name it. */
export interface RuleMatch {
  rule: PolicyRule;
  index: number;
  /** 'policy rule #0 ("local")' */
  name: string;
}

export class Authorizer {
  /** undefined: no policy configured, everything allowed. */
  constructor(private rules?: PolicyRule[]) {}

  replace(rules: PolicyRule[] | undefined): void {
    this.rules = rules;
  }

  /** The first rule matching one of the client's names; undefined with no policy or no match. */
  ruleFor(identity: ClientIdentity): RuleMatch | undefined {
    if (!this.rules) return undefined;
    const index = this.rules.findIndex((r) => identity.names.some((n) => globMatch(r.match, n)));
    if (index < 0) return undefined;
    const rule = this.rules[index];
    return { rule, index, name: `policy rule #${index} (${JSON.stringify(rule.match)})` };
  }

  private require(identity: ClientIdentity): RuleMatch | undefined {
    if (!this.rules) return undefined;
    const found = this.ruleFor(identity);
    if (!found) throw new ApiError(grpc.status.PERMISSION_DENIED, `no policy rule matches client ${describeIdentity(identity)}`);
    return found;
  }

  checkGetInfo(identity: ClientIdentity): void {
    const r = this.require(identity);
    if (r && !r.rule.getInfo) throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} does not allow GetInfo`);
  }

  /**
   * Check a watch's class and marks (or a mark added to one). Returns the
   * rule that allowed it, whose watch limit the registry applies.
   */
  checkWatch(identity: ClientIdentity, groupClass: GroupClass, marks: readonly MarkSpec[]): RuleMatch | undefined {
    const r = this.require(identity);
    if (!r) return undefined;
    const [first] = refusals(r.rule, groupClass, marks, true);
    if (first) throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} ${first}`);
    return r;
  }

  /**
   * May a client attach to a named watch another client created? Only under
   * a rule whose `attach` globs cover the watch's name, and only to a watch
   * it could have opened itself: class and every mark pass this client's
   * rule as a Subscribe would, so attaching never shows or decides more.
   * Without a policy file only the creator may attach (the registry finds
   * a client's own watches without asking here).
   */
  checkAttach(identity: ClientIdentity, w: ForeignWatch): AttachGrant {
    const refused = (why: string) => new ApiError(grpc.status.PERMISSION_DENIED, `the watch named "${w.name}" belongs to another client; ${why}`);
    if (!this.rules) throw refused('only the client that created it may attach (with no policy file, no other client may)');
    const r = this.ruleFor(identity);
    if (!r) throw refused(`no policy rule matches client ${describeIdentity(identity)}`);
    const glob = r.rule.attach.find((g) => globMatch(g, w.name));
    if (glob === undefined) {
      const have = r.rule.attach.length ? `its attach: ${r.rule.attach.map((g) => JSON.stringify(g)).join(', ')}` : 'it has no attach';
      throw refused(`${r.name} does not allow attaching to it (${have})`);
    }
    const missing = refusals(r.rule, w.groupClass, w.marks, false);
    if (missing.length > 0) {
      throw new ApiError(
        grpc.status.PERMISSION_DENIED,
        `${r.name} allows attaching to the watch named "${w.name}" of client ${describeIdentity(w.owner)} (attach ${JSON.stringify(glob)}), but not what it watches: it ${missing.join('; it ')}`,
      );
    }
    return { ...r, glob };
  }
}

/** A named watch another client created, as an attach grant is checked against it. */
export interface ForeignWatch {
  readonly name: string;
  readonly owner: ClientIdentity;
  readonly groupClass: GroupClass;
  /** Every mark the watch holds or may hold (asked at Subscribe or added since). */
  readonly marks: readonly MarkSpec[];
}

/** The rule that let a client attach to another client's watch, and its glob that named the watch. */
export interface AttachGrant extends RuleMatch {
  glob: string;
}

/**
 * What a rule does not allow of a class and marks, each as "does not allow
 * ..."; none: all allowed. `firstOnly` is a Subscribe's check: it stops at
 * the first (one thing to fix), and leaves a path that does not resolve to
 * fanotify_mark; an Attach's is told all the watch holds beyond the rule,
 * a path that no longer resolves among it.
 */
function refusals(rule: PolicyRule, groupClass: GroupClass, marks: readonly MarkSpec[], firstOnly: boolean): string[] {
  const out: string[] = [];
  const add = (why: string) => {
    if (!out.includes(why)) out.push(why);
    return firstOnly;
  };
  if (groupClass !== 'notif' && !rule.permission && add(`does not allow permission events (group_class ${groupClass.toUpperCase()})`)) return out;
  for (const m of marks) {
    if (!rule.scopes.includes(m.scope)) {
      if (add(`does not allow ${m.scope} marks (allowed: ${rule.scopes.join(', ')})`)) return out;
      continue;
    }
    // Resolve symlinks and "..", as the kernel will for the mark: beneath the host root when there is
    // one, symlinks before ".." (/allowed/link/.. is the link target's parent). Opens nothing a mark sees.
    let real: string;
    try {
      real = m.scope === 'mount_namespace' ? m.path : realMarkPath(m.path);
    } catch {
      // At Subscribe, fanotify_mark will report the path's own error; the path is judged with ".." taken
      // lexically meanwhile. At Attach the mark exists already, on whatever the path led to then
      // ("/srv/t/../../etc" with /srv/t since removed): unknown now, so refused.
      if (!firstOnly) {
        if (add(`cannot tell what ${m.path} is now (it does not resolve), so cannot allow it`)) return out;
        continue;
      }
      real = path.resolve(m.path);
    }
    if (!rule.paths.some((p) => under(real, p)) && add(`does not allow marks on ${real} (allowed: ${rule.paths.join(', ') || 'none'})`)) return out;
  }
  return out;
}
