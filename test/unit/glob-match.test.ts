import { expect } from 'chai';
import picomatch from 'picomatch';
import { globTester } from '../../src/common/glob-match';

const PATHS = [
  '/d/x.key', '/d/a/x.key', '/d/a/b/x.key', '/d/.x.key', '/d/x.keys', '/d/x.txt', '/e/x.key', '/d',
  '/srv/app/config.yaml', '/srv/app/.env', '/srv/a]b', '/srv/a-b', '/usr/bin/cat', '/usr/lib/x/cat', '/',
];
const NAMES = ['x.key', '.x.key', 'x.txt', 'cat', 'bash', 'a]b', 'a-b', 'k', ''];

describe('unit: glob matching without backtracking regexes', () => {
  it('agrees with picomatch (dot files matched) on path globs', () => {
    const patterns = ['/d/*.key', '/d/**/*.key', '/d/**', '/d/?.key', '/d/[xy].key', '/**/cat', '/usr/*/cat', '/srv/app/*', '/srv/a[]]b', '/srv/a[-]b', '/d/a/**/x.key'];
    let compared = 0;
    for (const p of patterns) {
      const mine = globTester(p);
      const theirs = picomatch(p, { dot: true });
      for (const s of PATHS) {
        if (p.endsWith('/**') && s === p.slice(0, -3)) continue; // the directory itself: see below
        expect(mine(s), `${p} against ${s}`).to.equal(theirs(s));
        compared++;
      }
    }
    expect(compared).to.be.greaterThan(150);
  });

  it('agrees with picomatch on name globs', () => {
    for (const p of ['*.key', '*', '?', 'c?t', '[ab]*', 'a[]]b', 'x.*']) {
      const mine = globTester(p);
      const theirs = picomatch(p, { dot: true });
      for (const s of NAMES.filter(Boolean)) expect(mine(s), `${p} against ${s}`).to.equal(theirs(s));
    }
  });

  it('"**" takes zero or more directories, "*" never crosses "/"', () => {
    expect(globTester('/d/**/*.key')('/d/x.key')).to.equal(true);
    expect(globTester('/d/**/*.key')('/d/a/b/c/x.key')).to.equal(true);
    expect(globTester('/d/*.key')('/d/a/x.key')).to.equal(false);
    expect(globTester('*.key')('a/x.key')).to.equal(false);
    expect(globTester('/d/\\*.key')('/d/*.key')).to.equal(true);
    expect(globTester('/d/\\*.key')('/d/x.key')).to.equal(false);
  });

  it('"[!...]" and "[^...]" negate a set, as fnmatch(3) and .gitignore read them', () => {
    expect(globTester('/d/[!a-w].key')('/d/x.key')).to.equal(true);
    expect(globTester('/d/[!a-w].key')('/d/b.key')).to.equal(false);
    expect(globTester('[^c]*')('cat')).to.equal(false);
    expect(globTester('[^c]*')('bash')).to.equal(true);
  });

  it('answers patterns that make a backtracking regex take seconds (picomatch: 0.9 s and 37 s)', () => {
    const name = 'a'.repeat(254) + 'c';
    expect(globTester('*a*a*a*b')(name)).to.equal(false);
    expect(globTester('*a*a*a*a*b')(name)).to.equal(false);
    expect(globTester('*a*a*a*a*c')(name)).to.equal(true);
    const deep = '/' + Array.from({ length: 2000 }, () => 'a').join('/');
    expect(globTester('/**/a/**/a/**/b')(deep)).to.equal(false);
    expect(globTester('/**/a/**/a/**/a')(deep)).to.equal(true);
  });
});
