// Globs read as .gitignore reads them, compiled once (glob-match.ts) and shared
// by the daemon's filters and rules and by fanctl:
//   - a pattern without "/" matches the last name of a path, in any
//     directory ("*.key" matches /d/x.key and /d/a/b/x.key);
//   - a pattern with "/" matches the whole absolute path, and "**" there
//     stands for zero or more directories ("/d/**/*.key" matches /d/x.key);
//   - "*" and "?" match within one name, dot files included.
// A name glob (a process's comm) matches the whole string instead.
import { FanotifydError } from './errors';
import { globTester, nameTester } from './glob-match';

/** A pattern that cannot mean what its author meant; the message says what to write instead. */
export class GlobError extends FanotifydError {
  constructor(message: string) {
    super('EGLOB', message);
  }
}

/** Whether a pattern is matched against a path's last name or against the whole path. */
export type GlobTarget = 'name' | 'path';

export interface Glob {
  pattern: string;
  target: GlobTarget;
  /** Matches the string given: the last name for a 'name' glob, the whole path for a 'path' one. */
  test(s: string): boolean;
}

/**
 * A glob's test. Not picomatch's regex: it backtracks, and a client's
 * pattern such as "*a*a*a*a*b" took 37 s against one 255-byte name on the
 * main thread (glob-match.ts matches in pattern x string steps). A leading
 * "!" is the caller's to read (fanctl's exceptions), never the matcher's.
 */
function tester(pattern: string): (s: string) => boolean {
  const test = globTester(pattern);
  return (s) => s !== '' && test(s);
}

/**
 * One path glob, checked: throws GlobError, saying what to write, for an
 * empty pattern, one ending with "/", or one with "/" that is not
 * absolute. `label` names the pattern in messages (its text as the user
 * wrote it, when the caller stripped something).
 */
export function compilePathGlob(pattern: string, label = pattern): Glob {
  if (pattern === '') throw new GlobError(`"${label}" is an empty pattern`);
  if (pattern.endsWith('/')) {
    throw new GlobError(`"${label}": events name files, so a pattern cannot end with "/"; "${pattern}**" matches everything under a directory`);
  }
  if (!pattern.includes('/')) return { pattern, target: 'name', test: tester(pattern) };
  // "**/x" means x in any directory in .gitignore; any other pattern with a
  // "/" is anchored there at the .gitignore's directory. Events have no
  // such directory, so such a pattern must be absolute.
  if (!pattern.startsWith('/') && !pattern.startsWith('**/')) {
    throw new GlobError(`"${label}": a pattern with "/" must start with "/" (an absolute path) or "**/" (any directory); "${lastName(pattern)}" alone matches that name anywhere`);
  }
  return { pattern, target: 'path', test: tester(pattern) };
}

/** The part after the last "/" (all of it when there is none). */
export function lastName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/**
 * A path as text, each part made on first request: a set of name globs
 * never needs more than the last name, and a caller that tests several
 * sets against one path can decode it once.
 */
export interface PathText {
  pathName(): string;
  pathWhole(): string;
}

/** Any of several path globs. */
export class PathGlobSet {
  private readonly byName: Glob[] = [];
  private readonly byPath: Glob[] = [];

  /** Throws GlobError for the first pattern that cannot be used. */
  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      const g = compilePathGlob(p);
      (g.target === 'name' ? this.byName : this.byPath).push(g);
    }
  }

  get empty(): boolean {
    return this.byName.length === 0 && this.byPath.length === 0;
  }

  test(p: PathText): boolean {
    if (this.byName.length) {
      const n = p.pathName();
      for (const g of this.byName) if (g.test(n)) return true;
    }
    if (this.byPath.length) {
      const w = p.pathWhole();
      for (const g of this.byPath) if (g.test(w)) return true;
    }
    return false;
  }

  /** For a path held as a string. */
  testString(p: string): boolean {
    return this.test({ pathName: () => lastName(p), pathWhole: () => p });
  }
}

/** Any of several globs over a whole string with no path structure (a command name). */
export class NameGlobSet {
  private readonly tests: ((s: string) => boolean)[];

  constructor(patterns: readonly string[]) {
    this.tests = patterns.map((p) => {
      if (p === '') throw new GlobError('"" is an empty pattern');
      const test = nameTester(p);
      return (s: string) => s !== '' && test(s);
    });
  }

  test(s: string): boolean {
    for (const t of this.tests) if (t(s)) return true;
    return false;
  }
}
