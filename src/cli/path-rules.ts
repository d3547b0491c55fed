// Which paths a guard denies: the globs of src/common/glob.ts (.gitignore's
// rules, the ones people already know), plus .gitignore's exceptions: a
// pattern starting with "!" takes paths back out, and the last pattern
// that matches a path decides.
import { compilePathGlob, GlobError, lastName, type Glob } from '../common/glob';

/** A pattern that cannot mean what its author meant; the message says what to write instead. */
export const PatternError = GlobError;

interface Rule {
  pattern: string;
  negated: boolean;
  glob: Glob;
}

function compile(raw: string): Rule {
  const negated = raw.startsWith('!');
  return { pattern: raw, negated, glob: compilePathGlob(negated ? raw.slice(1) : raw, raw) };
}

export class PathRules {
  private readonly rules: Rule[];

  /** Throws PatternError, saying what to write instead, for a pattern that cannot mean what its author meant. */
  constructor(patterns: readonly string[]) {
    this.rules = patterns.map(compile);
  }

  /** The pattern that decides `p` (the last one matching), or undefined. */
  decidingPattern(p: string): { pattern: string; negated: boolean } | undefined {
    const name = lastName(p);
    for (let i = this.rules.length - 1; i >= 0; i--) {
      const r = this.rules[i];
      if (r.glob.test(r.glob.target === 'name' ? name : p)) return { pattern: r.pattern, negated: r.negated };
    }
    return undefined;
  }

  /** True when the last matching pattern is not negated. */
  matches(p: string): boolean {
    const d = this.decidingPattern(p);
    return d !== undefined && !d.negated;
  }
}
