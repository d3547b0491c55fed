// Authorization: which client may mark what. A policy file lists rules;
// the first rule whose pattern matches one of the client's names applies.
// With no policy file every client may do everything (the unix socket's
// mode and group are then the only gate); with one, a client no rule
// matches may do nothing.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { GroupClass, MarkSpec } from '../kernel/group';
import { ApiError } from './errors';
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

export class Authorizer {
  /** undefined: no policy configured, everything allowed. */
  constructor(private rules?: PolicyRule[]) {}

  replace(rules: PolicyRule[] | undefined): void {
    this.rules = rules;
  }

  /** The rule for a client (by its comma-separated names), with its index. */
  ruleFor(identity: string): { rule: PolicyRule; index: number } | undefined {
    if (!this.rules) return undefined;
    const names = identity.split(',');
    const index = this.rules.findIndex((r) => names.some((n) => globMatch(r.match, n)));
    return index < 0 ? undefined : { rule: this.rules[index], index };
  }

  private require(identity: string): { rule: PolicyRule; name: string } | undefined {
    if (!this.rules) return undefined;
    const found = this.ruleFor(identity);
    if (!found) throw new ApiError(grpc.status.PERMISSION_DENIED, `no policy rule matches client "${identity}"`);
    return { rule: found.rule, name: `policy rule #${found.index} ("${found.rule.match}")` };
  }

  checkGetInfo(identity: string): void {
    const r = this.require(identity);
    if (r && !r.rule.getInfo) throw new ApiError(grpc.status.PERMISSION_DENIED, `${r.name} does not allow GetInfo`);
  }

  /** Check a watch (or a mark added to one); activeWatches counts this rule's watches. */
  checkWatch(identity: string, groupClass: GroupClass, marks: MarkSpec[], activeWatches?: (rule: PolicyRule) => number): void {
    const r = this.require(identity);
    if (!r) return;
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
    if (activeWatches && activeWatches(r.rule) >= r.rule.maxWatches) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `${r.name} allows at most ${r.rule.maxWatches} concurrent watches`);
    }
  }
}
