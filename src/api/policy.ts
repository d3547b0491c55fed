// Authorization: which client may mark what. A policy file lists rules;
// the first rule whose pattern matches one of the client's names (a whole
// name, never part of one) applies.
// With no policy file every client may do everything (the unix socket's
// mode and group are then the only gate); with one, a client no rule
// matches may do nothing.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { GroupClass, MarkSpec } from '../kernel/group';
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
    if (groupClass !== 'notif' && !r.rule.permission) {
      throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} does not allow permission events (group_class ${groupClass.toUpperCase()})`);
    }
    for (const m of marks) {
      if (!r.rule.scopes.includes(m.scope)) {
        throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} does not allow ${m.scope} marks (allowed: ${r.rule.scopes.join(', ')})`);
      }
      // Resolve symlinks and "..": /allowed/../etc is /etc. realpath opens nothing.
      let real: string;
      try {
        real = m.scope === 'mount_namespace' ? m.path : fs.realpathSync(m.path);
      } catch {
        real = m.path; // fanotify_mark will report the path's own error
      }
      if (!r.rule.paths.some((p) => under(real, p))) {
        throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} does not allow marks on ${real} (allowed: ${r.rule.paths.join(', ') || 'none'})`);
      }
    }
    return r;
  }
}
