// Settings read the same way by every program of the package (the daemon,
// the exporter): flags over a JSON config file over the defaults, checked by
// one schema, and a bad value reported as one line naming where the user
// wrote it: `--metrics: ...` or `config FILE: listen[1]: ...`.
import * as fs from 'node:fs';
import type { z } from 'zod';
import { firstIssue, plainIssue } from './schema-error';

type Raw = Record<string, unknown>;
type Source = { kind: 'flag' } | { kind: 'file'; file: string } | { kind: 'default' };

/** One setting: its schema, its --help line, and its default (none: optional). */
export interface Setting {
  schema: z.ZodType;
  help: string;
  /** The value's name in --help; none: a switch. */
  arg?: string;
  /** Repeatable flag; an array in the file. */
  multiple?: boolean;
  default?: unknown;
}

export interface SettingSources<T> {
  /** Every setting by flag name (also its key in the file), with its default. */
  settings: Record<string, { help: string; default?: unknown }>;
  /** The flags as parseArgs read them, commands (--config, --help) included. */
  flags: Raw;
  /** Flags that are commands, not settings. */
  commands: Record<string, unknown>;
  schema: z.ZodType<T>;
  /** The error thrown, with one line naming the flag or the file's key. */
  fail: (message: string) => Error;
}

export function readSettings<T>(p: SettingSources<T>): T {
  const sources = new Map<string, Source>();
  const merged: Raw = {};
  const take = (values: Raw, source: Source) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined || k in p.commands) continue;
      merged[k] = v;
      sources.set(k, source);
    }
  };
  take(Object.fromEntries(Object.entries(p.settings).map(([k, s]) => [k, s.default])), { kind: 'default' });
  const file = p.flags.config;
  if (typeof file === 'string') {
    const doc = readConfigFile(file, p.fail);
    const unknown = Object.keys(doc).find((k) => !(k in p.settings));
    if (unknown !== undefined) {
      throw p.fail(`config ${file}: ${unknown}: not a setting; the keys are the flags' names: ${Object.keys(p.settings).join(', ')}`);
    }
    take(doc, { kind: 'file', file });
  }
  take(p.flags, { kind: 'flag' });
  const parsed = p.schema.safeParse(merged, { error: plainIssue });
  if (!parsed.success) {
    const { path, message } = firstIssue(parsed.error);
    throw p.fail(`${locate(path, sources)}: ${message}`);
  }
  return parsed.data;
}

/** Where the problem is, as the user wrote it: `--metrics`, or `config FILE: listen[1]`. */
function locate(path: ReadonlyArray<PropertyKey>, sources: Map<string, Source>): string {
  const key = String(path[0] ?? '');
  const source = sources.get(key);
  if (source?.kind === 'file') return `config ${source.file}: ${key}${path.slice(1).map((p) => `[${String(p)}]`).join('')}`;
  return `--${key}`;
}

function readConfigFile(name: string, fail: (message: string) => Error): Raw {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(name, 'utf8'));
  } catch (err) {
    throw fail(`config ${name}: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw fail(`config ${name}: expected a JSON object of flag names and values`);
  return doc as Raw;
}
