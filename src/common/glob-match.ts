// Glob matching without regular expressions, in time bounded by the
// product of the pattern's and the string's lengths. A client's glob runs
// on the daemon's main thread against every event it filters, so its cost
// must not depend on what the client wrote: picomatch compiles a glob to a
// backtracking regex, and there "*a*a*a*b" took 0.9 s against one 255-byte
// name and "*a*a*a*a*b" 37 s (Node 20, this machine), stalling every watch.
//
// The syntax is .gitignore's: "*" any run of characters but "/", "?" one
// character but "/", "[...]" one character of a set ("!" or "^" first
// negates it, "a-z" is a range), "\" takes the next character literally,
// and a whole "**" segment stands for zero or more path segments. Dot
// files are matched like any other name.
//
// Each element of a pattern (a character token, or a segment) takes exactly
// one element of the string, but for "*" and "**", which take any number.
// For such patterns, matching left to right and, on a mismatch, letting the
// last star take one more element is exact (a later star can take
// whatever an earlier one would have), and it never goes back further than
// that star: O(pattern x string) steps.

/** One character of a pattern: a literal, any character ("?"), or a set. */
type CharToken = { kind: 'char'; c: string } | { kind: 'any' } | { kind: 'set'; negated: boolean; ranges: Array<[string, string]> } | { kind: 'star' };

function parseSet(p: string, start: number): { token: CharToken; next: number } | undefined {
  let i = start + 1;
  let negated = false;
  if (p[i] === '!' || p[i] === '^') {
    negated = true;
    i++;
  }
  const ranges: Array<[string, string]> = [];
  // A "]" first in the set is a member, as in fnmatch(3).
  let first = true;
  while (i < p.length && (p[i] !== ']' || first)) {
    first = false;
    let lo = p[i];
    if (lo === '\\' && i + 1 < p.length) lo = p[++i];
    let hi = lo;
    if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
      hi = p[i + 2] === '\\' && i + 3 < p.length ? p[i + 3] : p[i + 2];
      i += p[i + 2] === '\\' ? 3 : 2;
    }
    ranges.push([lo, hi]);
    i++;
  }
  // No closing "]": the "[" is a literal character.
  if (i >= p.length) return undefined;
  return { token: { kind: 'set', negated, ranges }, next: i + 1 };
}

function parseSegment(p: string): CharToken[] {
  const tokens: CharToken[] = [];
  for (let i = 0; i < p.length; ) {
    const c = p[i];
    if (c === '*') {
      // Consecutive stars within a name are one star.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
      i++;
    } else if (c === '?') {
      tokens.push({ kind: 'any' });
      i++;
    } else if (c === '[') {
      const set = parseSet(p, i);
      if (set) {
        tokens.push(set.token);
        i = set.next;
      } else {
        tokens.push({ kind: 'char', c });
        i++;
      }
    } else if (c === '\\' && i + 1 < p.length) {
      tokens.push({ kind: 'char', c: p[i + 1] });
      i += 2;
    } else {
      tokens.push({ kind: 'char', c });
      i++;
    }
  }
  return tokens;
}

function tokenTakes(t: CharToken, c: string): boolean {
  switch (t.kind) {
    case 'char':
      return t.c === c;
    case 'any':
      return true;
    case 'set': {
      let inSet = false;
      for (const [lo, hi] of t.ranges) if (c >= lo && c <= hi) inSet = true;
      return inSet !== t.negated;
    }
    default:
      return false;
  }
}

/**
 * The one matching loop, for characters within a name and for segments
 * within a path: `takes(i, j)` says whether pattern element i takes string
 * element j, `isStar(i)` whether element i takes any number of elements.
 */
function matchSequence(patternLength: number, stringLength: number, isStar: (i: number) => boolean, takes: (i: number, j: number) => boolean): boolean {
  let i = 0;
  let j = 0;
  let starAt = -1;
  let starTook = 0;
  while (j < stringLength) {
    if (i < patternLength && isStar(i)) {
      starAt = i++;
      starTook = j;
    } else if (i < patternLength && takes(i, j)) {
      i++;
      j++;
    } else if (starAt >= 0) {
      i = starAt + 1;
      j = ++starTook;
    } else {
      return false;
    }
  }
  while (i < patternLength && isStar(i)) i++;
  return i === patternLength;
}

function segmentMatcher(segment: string): (name: string) => boolean {
  const tokens = parseSegment(segment);
  if (tokens.every((t) => t.kind === 'char')) return (name) => name === segment.replace(/\\(.)/g, '$1');
  return (name) =>
    matchSequence(
      tokens.length,
      name.length,
      (i) => tokens[i].kind === 'star',
      (i, j) => tokenTakes(tokens[i], name[j]),
    );
}

/** A tester for one glob over a whole string with no path structure (a command name): "*" takes any character. */
export function nameTester(pattern: string): (s: string) => boolean {
  return segmentMatcher(pattern);
}

/**
 * A tester for one glob over a whole string: over the names of a path
 * when the pattern has "/" (each "**" segment taking zero or more names),
 * else over the string as one name.
 */
export function globTester(pattern: string): (s: string) => boolean {
  if (!pattern.includes('/')) {
    const name = segmentMatcher(pattern);
    return (s) => !s.includes('/') && name(s);
  }
  const segments = pattern.split('/');
  const globstar = segments.map((s) => s === '**');
  const matchers = segments.map((s) => (s === '**' ? () => true : segmentMatcher(s)));
  return (s) => {
    const names = s.split('/');
    return matchSequence(
      segments.length,
      names.length,
      (i) => globstar[i],
      (i, j) => matchers[i](names[j]),
    );
  };
}
