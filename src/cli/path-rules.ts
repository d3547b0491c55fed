// Which paths a guard denies: globs (picomatch) read as .gitignore reads
// them, the rules people already know.
//   - a pattern without "/" matches the file name in any directory
//     ("*.key" matches /d/x.key and /d/a/b/x.key);
//   - a pattern with "/" matches the whole absolute path, and "**" there
//     stands for zero or more directories ("/d/**/*.key" matches /d/x.key);
//   - "*" and "?" match within one name, dot files included;
//   - a pattern starting with "!" takes paths back out; the last pattern
//     that matches a path decides.
import * as path from 'node:path';
import picomatch from 'picomatch';

export class PatternError extends Error {}

interface Rule {
  pattern: string;
  negated: boolean;
  matches(p: string): boolean;
}

// dot: "*" matches ".x.key" as it does in .gitignore (and a guard that
// skipped dot files would let them through). nonegate: "!" is ours to read.
const OPTIONS: picomatch.PicomatchOptions = { dot: true, nonegate: true };

function compile(raw: string): Rule {
  const negated = raw.startsWith('!');
  const pattern = negated ? raw.slice(1) : raw;
  if (pattern === '') throw new PatternError(`"${raw}" is an empty pattern`);
  if (pattern.endsWith('/')) {
    throw new PatternError(`"${raw}": events name files, so a pattern cannot end with "/"; "${pattern}**" matches everything under a directory`);
  }
  if (!pattern.includes('/')) {
    const byName = picomatch(pattern, OPTIONS);
    return { pattern: raw, negated, matches: (p) => byName(path.posix.basename(p)) };
  }
  // "**/x" means x in any directory in .gitignore; any other pattern with a
  // "/" is anchored there at the .gitignore's directory. A guard has no such
  // directory (it may guard several), so such a pattern must be absolute.
  if (!pattern.startsWith('/') && !pattern.startsWith('**/')) {
    throw new PatternError(`"${raw}": a pattern with "/" must start with "/" (an absolute path) or "**/" (any directory); "${path.posix.basename(pattern)}" alone matches that name anywhere`);
  }
  const byPath = picomatch(pattern, OPTIONS);
  return { pattern: raw, negated, matches: (p) => byPath(p) };
}

export class PathRules {
  private readonly rules: Rule[];

  /** Throws PatternError, saying what to write instead, for a pattern that cannot mean what its author meant. */
  constructor(patterns: readonly string[]) {
    this.rules = patterns.map(compile);
  }

  /** The pattern that decides `p` (the last one matching), or undefined. */
  decidingPattern(p: string): { pattern: string; negated: boolean } | undefined {
    for (let i = this.rules.length - 1; i >= 0; i--) {
      if (this.rules[i].matches(p)) return { pattern: this.rules[i].pattern, negated: this.rules[i].negated };
    }
    return undefined;
  }

  /** True when the last matching pattern is not negated. */
  matches(p: string): boolean {
    const d = this.decidingPattern(p);
    return d !== undefined && !d.negated;
  }
}
