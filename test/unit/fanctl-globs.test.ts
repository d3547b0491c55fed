// fanctl guard's globs, read as .gitignore reads them. No daemon, no root.
import { expect } from 'chai';
import { PathRules } from '../../src/cli/path-rules';

const matches = (patterns: string[], p: string) => new PathRules(patterns).matches(p);

describe('unit: fanctl globs', () => {
  it('a pattern without "/" matches the file name in any directory', () => {
    expect(matches(['*.key'], '/d/x.key')).to.equal(true);
    expect(matches(['*.key'], '/d/a/b/x.key')).to.equal(true);
    expect(matches(['*.secret'], '/srv/db.secret')).to.equal(true);
    expect(matches(['*.key'], '/d/x.key.txt')).to.equal(false);
    expect(matches(['secret'], '/tmp/d/secret')).to.equal(true);
    expect(matches(['secret'], '/tmp/secret/x')).to.equal(false);
  });

  it('"**" stands for zero or more directories', () => {
    for (const p of ['/d/x.key', '/d/a/x.key', '/d/a/b/c/x.key']) expect(matches(['/d/**/*.key'], p), p).to.equal(true);
    expect(matches(['/d/**/*.key'], '/e/x.key')).to.equal(false);
    expect(matches(['/d/**/*.key'], '/d/x.txt')).to.equal(false);
    expect(matches(['/srv/**/a.key'], '/srv/x/y/a.key')).to.equal(true);
    expect(matches(['**/secret'], '/tmp/d/secret')).to.equal(true);
    expect(matches(['**/secret'], '/secret')).to.equal(true);
    expect(matches(['/d/**'], '/d/a/b')).to.equal(true);
  });

  it('"*" and "?" stay within one name, and match dot files', () => {
    expect(matches(['/srv/*.key'], '/srv/a.key')).to.equal(true);
    expect(matches(['/srv/*.key'], '/srv/x/a.key')).to.equal(false);
    expect(matches(['/srv/?.key'], '/srv/a.key')).to.equal(true);
    expect(matches(['/srv/?.key'], '/srv/ab.key')).to.equal(false);
    expect(matches(['*.key'], '/d/.hidden.key')).to.equal(true);
    expect(matches(['/d/*'], '/d/.env')).to.equal(true);
  });

  it('takes other characters literally', () => {
    expect(matches(['/a.b'], '/axb')).to.equal(false);
    expect(matches(['/a+b'], '/a+b')).to.equal(true);
    expect(matches(['/d/(x).key'], '/d/(x).key')).to.equal(true);
  });

  it('"!" takes paths back out, and the last matching pattern decides', () => {
    expect(matches(['*.key', '!public.key'], '/d/public.key')).to.equal(false);
    expect(matches(['*.key', '!public.key'], '/d/private.key')).to.equal(true);
    expect(matches(['!public.key', '*.key'], '/d/public.key')).to.equal(true);
    expect(new PathRules(['*.key', '!/d/**']).decidingPattern('/d/a.key')).to.deep.equal({ pattern: '!/d/**', negated: true });
  });

  it('refuses patterns that cannot mean what their author meant, saying what to write', () => {
    expect(() => new PathRules(['secrets/*.key'])).to.throw(/must start with "\/" \(an absolute path\) or "\*\*\/"/);
    expect(() => new PathRules(['/srv/secrets/'])).to.throw(/cannot end with "\/".*"\/srv\/secrets\/\*\*"/);
    expect(() => new PathRules(['!'])).to.throw(/empty pattern/);
  });
});
