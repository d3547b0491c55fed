// The policy file: read, validated, and turned into rules (policy.ts applies them).
import * as fs from 'node:fs';
import { FanotifydError } from '../common/errors';

export interface PolicyRule {
  /** Glob (* any run of characters) over one client name: "local", "CN=x", "URI:spiffe://...", "DNS:host". */
  match: string;
  /** Path prefixes the client may mark (checked after resolving symlinks and ".."). */
  paths: string[];
  /** Mark scopes allowed: inode, mount, filesystem, mount_namespace. */
  scopes: string[];
  /** May use GROUP_CLASS_CONTENT / PRE_CONTENT (permission events). */
  permission: boolean;
  /** Concurrent watches for all clients this rule matches together. */
  maxWatches: number;
  /** May call GetInfo. */
  getInfo: boolean;
}

export class PolicyError extends FanotifydError {
  constructor(message: string) {
    super('EPOLICY', message);
  }
}

const SCOPES = new Set(['inode', 'mount', 'filesystem', 'mount_namespace']);

/** Read and validate a policy file; every problem names the rule and key. */
export function loadPolicy(file: string): PolicyRule[] {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new PolicyError(`policy ${file}: ${(err as Error).message}`);
  }
  const rules = (doc as { rules?: unknown })?.rules;
  if (!Array.isArray(rules)) throw new PolicyError(`policy ${file}: "rules" must be a list`);
  return rules.map((r: Record<string, unknown>, i) => {
    const where = `policy ${file}: rules[${i}]`;
    if (typeof r?.match !== 'string' || r.match === '') throw new PolicyError(`${where}.match must be a non-empty string`);
    const paths = r.paths ?? [];
    if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string' || !p.startsWith('/'))) throw new PolicyError(`${where}.paths must be a list of absolute paths`);
    const scopes = r.scopes ?? ['inode'];
    if (!Array.isArray(scopes) || scopes.some((s) => !SCOPES.has(s as string))) throw new PolicyError(`${where}.scopes must be a list of ${[...SCOPES].join(', ')}`);
    const maxWatches = r.maxWatches ?? 16;
    if (!Number.isInteger(maxWatches) || (maxWatches as number) < 0) throw new PolicyError(`${where}.maxWatches must be a non-negative integer`);
    for (const key of ['permission', 'getInfo']) {
      if (r[key] !== undefined && typeof r[key] !== 'boolean') throw new PolicyError(`${where}.${key} must be true or false`);
    }
    for (const key of Object.keys(r)) {
      if (!['match', 'paths', 'scopes', 'permission', 'maxWatches', 'getInfo'].includes(key)) throw new PolicyError(`${where}: unknown key "${key}"`);
    }
    return {
      match: r.match,
      paths: (paths as string[]).map((p) => (p.length > 1 ? p.replace(/\/+$/, '') : p)),
      scopes: scopes as string[],
      permission: r.permission === true,
      maxWatches: maxWatches as number,
      getInfo: r.getInfo === true,
    };
  });
}
