// The one compiled glob matcher the daemon's filters and fanctl share:
// .gitignore's rules over paths, whole-string globs over command names.
import { expect } from 'chai';
import { compilePathGlob, GlobError, NameGlobSet, PathGlobSet } from '../../src/common/glob';

const anyPath = (patterns: string[], p: string) => new PathGlobSet(patterns).testString(p);

describe('unit: globs', () => {
  it('matches a pattern without "/" against the last name, in any directory', () => {
    expect(anyPath(['*.key'], '/d/x.key')).to.equal(true);
    expect(anyPath(['*.key'], '/d/a/b/x.key')).to.equal(true);
    expect(anyPath(['*.key'], '/d/x.key.txt')).to.equal(false);
    expect(anyPath(['secret'], '/tmp/secret/x')).to.equal(false);
    expect(anyPath(['cc1'], '/usr/libexec/gcc/x86_64-linux-gnu/13/cc1')).to.equal(true);
  });

  it('matches a pattern with "/" against the whole path, "**" being zero or more directories', () => {
    for (const p of ['/d/x.key', '/d/a/x.key', '/d/a/b/c/x.key']) expect(anyPath(['/d/**/*.key'], p), p).to.equal(true);
    expect(anyPath(['/d/**/*.key'], '/e/d/x.key')).to.equal(false);
    expect(anyPath(['**/secret'], '/secret')).to.equal(true);
    expect(anyPath(['**/secret'], '/a/b/secret')).to.equal(true);
  });

  it('keeps "*" and "?" within one name and matches dot files', () => {
    expect(anyPath(['/srv/*.key'], '/srv/x/a.key')).to.equal(false);
    expect(anyPath(['/srv/?.key'], '/srv/ab.key')).to.equal(false);
    expect(anyPath(['*.key'], '/d/.hidden.key')).to.equal(true);
    expect(anyPath(['/d/*'], '/d/.env')).to.equal(true);
  });

  it('takes a path equal to its pattern as a match, as picomatch does, and never matches an empty path', () => {
    expect(anyPath(['/d/(x).key'], '/d/(x).key')).to.equal(true);
    expect(anyPath(['*'], '')).to.equal(false);
  });

  it('matches when any pattern of a set does, deciding by name first and decoding only what a set needs', () => {
    const set = new PathGlobSet(['*.key', '/etc/**']);
    expect(set.testString('/etc/passwd')).to.equal(true);
    expect(set.testString('/srv/a.key')).to.equal(true);
    expect(set.testString('/srv/a.txt')).to.equal(false);
    let wholeAsked = 0;
    const byName = new PathGlobSet(['*.key']);
    expect(byName.test({ pathName: () => 'a.key', pathWhole: () => (wholeAsked++, '/srv/a.key') })).to.equal(true);
    expect(byName.test({ pathName: () => 'a.txt', pathWhole: () => (wholeAsked++, '/srv/a.txt') })).to.equal(false);
    expect(wholeAsked).to.equal(0);
  });

  it('matches a name glob against the whole string', () => {
    const comms = new NameGlobSet(['python*', 'make']);
    expect(comms.test('python3')).to.equal(true);
    expect(comms.test('make')).to.equal(true);
    expect(comms.test('cmake')).to.equal(false);
    expect(comms.test('')).to.equal(false);
  });

  it('refuses a pattern that cannot mean what its author meant, saying what to write', () => {
    expect(() => compilePathGlob('secrets/*.key')).to.throw(GlobError, /must start with "\/" \(an absolute path\) or "\*\*\/"/);
    expect(() => compilePathGlob('/srv/secrets/')).to.throw(GlobError, /cannot end with "\/".*"\/srv\/secrets\/\*\*"/);
    expect(() => new PathGlobSet([''])).to.throw(GlobError, /empty pattern/);
    expect(() => new NameGlobSet([''])).to.throw(GlobError, /empty pattern/);
    try {
      compilePathGlob('a/b');
      expect.fail('no error');
    } catch (err) {
      expect((err as GlobError).code).to.equal('EGLOB');
    }
  });
});
