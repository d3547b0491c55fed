// One line from a failed zod parse: where (the key's path, as the user
// wrote it: rules[2].scopes[0]) and what to fix. Used for the daemon's
// config and the policy file, which stop start-up with exactly one line.
import type { z } from 'zod';

/** `rules[2].scopes[0]`; '' for the document itself. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** A value as a user would recognise it in the message: JSON, shortened. */
export function shown(value: unknown): string {
  const s = value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${shown(value)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object',
};

/**
 * Plain messages for zod's generic issues (a schema's own message wins):
 * passed as the `error` option of safeParse.
 */
export function plainIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'missing';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${kind(issue.input)}`;
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_value':
      return `${shown(issue.input)} is not one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'string' && issue.minimum === 1) return 'must not be empty';
      if (issue.origin === 'array') return `needs at least ${issue.minimum} item${issue.minimum === 1 ? '' : 's'}`;
      return `${shown(issue.input)} is below ${issue.minimum}`;
    case 'too_big':
      return `${shown(issue.input)} is above ${issue.maximum}`;
    default:
      return undefined;
  }
}

/** The first issue as `path: message` (path omitted when empty), and how many more there are. */
export function firstIssue(error: z.ZodError): { path: ReadonlyArray<PropertyKey>; where: string; message: string; more: number } {
  const issue = error.issues[0];
  return { path: issue.path, where: formatPath(issue.path), message: issue.message, more: error.issues.length - 1 };
}
