// The policy file: read, validated against one schema, and turned into
// rules (policy.ts applies them). The same schema is published as JSON
// Schema in docs/policy.schema.json (test/unit/policy-file.test.ts keeps
// the two equal), so an editor can check a policy before the daemon does.
import * as fs from 'node:fs';
import { z } from 'zod';
import { FanotifydError } from '../common/errors';
import { firstIssue, plainIssue, shown } from '../common/schema-error';

export interface PolicyRule {
  /** Glob (* any run of characters) over one client name: "local", "CN=x", "URI:spiffe://...", "DNS:host". */
  match: string;
  /** Path prefixes the client may mark (checked after resolving symlinks and ".."). */
  paths: string[];
  /** Mark scopes allowed: inode, mount, filesystem, mount_namespace, subtree. */
  scopes: string[];
  /** May use GROUP_CLASS_CONTENT / PRE_CONTENT (permission events). */
  permission: boolean;
  /** Concurrent watches for all clients this rule matches together. */
  maxWatches: number;
  /** May call GetInfo. */
  getInfo: boolean;
  /** Globs over watch names this client may Attach to although another client created them. */
  attach: string[];
}

export class PolicyError extends FanotifydError {
  constructor(message: string) {
    super('EPOLICY', message);
  }
}

export const POLICY_SCOPES = ['inode', 'mount', 'filesystem', 'mount_namespace', 'subtree'] as const;

const rule = z
  .strictObject({
    match: z
      .string()
      .min(1)
      .describe('Glob over one client name ("*" matches any run of characters): "local" for the unix socket, "CN=name", "DNS:host", "URI:spiffe://..." from a client certificate.'),
    paths: z
      .array(z.string().regex(/^\//, { error: (iss) => `${shown(iss.input)} is not an absolute path` }))
      .default([])
      .describe('Path prefixes the client may mark, compared after resolving symlinks and "..". None: no marks.'),
    scopes: z
      .array(z.enum(POLICY_SCOPES))
      .default(['inode'])
      .describe(
        'Mark scopes the client may use. A subtree mark is checked against paths like an inode mark, though the daemon answers the first open in each directory of the whole mount holding it.',
      ),
    permission: z.boolean().default(false).describe('May use the permission classes (GROUP_CLASS_CONTENT, GROUP_CLASS_PRE_CONTENT) and so block opens.'),
    maxWatches: z
      .number()
      .int({ error: (iss) => `${shown(iss.input)} is not an integer` })
      .min(0, { error: (iss) => `${shown(iss.input)} is below 0` })
      .max(2 ** 31 - 1, { error: (iss) => `${shown(iss.input)} is above 2^31-1` })
      .default(16)
      .describe('Concurrent watches of all clients this rule matches, together.'),
    getInfo: z.boolean().default(false).describe('May call GetInfo.'),
    attach: z
      .array(
        z
          .string()
          .min(1)
          // Watch names are letters, digits, ".", "_" and "-" (Subscribe.name): a glob with anything else would match none.
          .regex(/^[A-Za-z0-9._*-]*$/, { error: (iss) => `${shown(iss.input)} can match no watch name (letters, digits, ".", "_", "-"; "*" for any run of them)` }),
      )
      .default([])
      .describe(
        'Globs over watch names (Subscribe.name; "*" matches any run of characters) this client may Attach to although another client created them. The watch must still pass this rule as a Subscribe from this client would (paths, scopes, permission); attaching counts against no watch limit. None: only a watch\'s creator may attach.',
      ),
  })
  .describe('The first rule whose match fits one of the client\'s names applies to it.');

/** The policy file's schema: what the daemon accepts, and what docs/policy.schema.json publishes. */
export const policyFileSchema = z
  .strictObject({
    $schema: z.string().optional().describe('The JSON Schema this file follows, for editors; the daemon ignores it.'),
    rules: z.array(rule).describe('Rules in order; a client that no rule matches may do nothing.'),
  })
  .meta({
    title: 'fanotifyd policy file',
    description: 'Which client may mark what (--policy FILE; docs/security.md). Re-read on SIGHUP.',
  });

/** The JSON Schema of the policy file (draft 2020-12), as published in docs/policy.schema.json. */
export function policyJsonSchema(): Record<string, unknown> {
  // io 'input': the file as written, where keys with defaults may be left out.
  return z.toJSONSchema(policyFileSchema, { io: 'input' }) as Record<string, unknown>;
}

/** Validate a policy document (the file's text); every problem names the rule and key. */
export function parsePolicy(file: string, text: string): PolicyRule[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new PolicyError(`policy ${file}: ${(err as Error).message}`);
  }
  const parsed = policyFileSchema.safeParse(doc, { error: plainIssue });
  if (!parsed.success) {
    const { where, message, more } = firstIssue(parsed.error);
    throw new PolicyError(`policy ${file}: ${where ? `${where}: ` : ''}${message}${more ? ` (and ${more} more)` : ''}`);
  }
  return parsed.data.rules.map((r) => ({
    ...r,
    // "/srv/" and "/srv" are the same prefix; "/" stays.
    paths: r.paths.map((p) => (p.length > 1 ? p.replace(/\/+$/, '') || '/' : p)),
    scopes: [...r.scopes],
    attach: [...r.attach],
  }));
}

/**
 * Read and validate a policy file. Synchronous: for start-up, before any
 * mark exists. A reload while marks exist reads the file off the main
 * thread and calls parsePolicy (src/daemon/main.ts).
 */
export function loadPolicy(file: string): PolicyRule[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(`policy ${file}: ${(err as Error).message}`);
  }
  return parsePolicy(file, text);
}
