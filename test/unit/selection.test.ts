// A watch's filters and rules, compiled: every Match field alone and
// together, include with exclude, the first matching rule, and what each
// check costs (what it asks of the event). No kernel: subjects are fakes.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { unknownProcess, type ProcessInfo } from '../../src/host/process';
import { DELIVER, filteredOutTypes, FILTERED, Selection, type MatchSubject } from '../../src/watch/selection';
import type { MatchSpec, RuleSpec, SelectionSpec } from '../../src/watch/types';

const match = (m: Partial<MatchSpec>): MatchSpec => ({ paths: [], exes: [], comms: [], uids: [], gids: [], events: 0, ...m });
const rule = (m: Partial<MatchSpec>, r: Partial<RuleSpec> = {}): RuleSpec => ({ match: match(m), decision: 'allow', report: false, cache: false, errno: 0, ...r });
const selection = (s: Partial<SelectionSpec>) => new Selection({ include: [], exclude: [], rules: [], ...s });

const PROC: ProcessInfo = { ...unknownProcess(42), uid: 1000, gid: 100, comm: 'python3', exe: '/usr/bin/python3.12', details: true };

/** An event with a path and a process, counting what a decision asked of it. */
function subject(opts: { mask?: number; path?: string; process?: ProcessInfo } = {}) {
  const asked = { process: 0, name: 0, whole: 0 };
  const path = opts.path ?? '/srv/app/config.yaml';
  const s: MatchSubject = {
    mask: opts.mask ?? K.FAN_OPEN,
    process: () => (asked.process++, opts.process ?? PROC),
    pathName: () => (asked.name++, path.slice(path.lastIndexOf('/') + 1)),
    pathWhole: () => (asked.whole++, path),
  };
  return { s, asked };
}

const decide = (sel: Selection, opts: Parameters<typeof subject>[0] = {}, permission = false) => sel.decide(subject(opts).s, permission);
const included = (m: Partial<MatchSpec>, opts: Parameters<typeof subject>[0] = {}) => decide(selection({ include: [match(m)] }), opts) === DELIVER;

describe('unit: selection (filters and rules)', () => {
  it('delivers everything when it has no filters and no rules', () => {
    const sel = selection({});
    expect(sel.empty).to.equal(true);
    expect(decide(sel, {}, true)).to.equal(DELIVER);
  });

  it('matches each field alone', () => {
    expect(included({ events: K.FAN_OPEN | K.FAN_CLOSE_WRITE })).to.equal(true);
    expect(included({ events: K.FAN_MODIFY })).to.equal(false);
    expect(included({ paths: ['*.yaml'] })).to.equal(true);
    expect(included({ paths: ['/srv/**/*.json'] })).to.equal(false);
    expect(included({ exes: ['python3*'] })).to.equal(true);
    expect(included({ exes: ['/usr/bin/*'] })).to.equal(true);
    expect(included({ exes: ['/bin/*'] })).to.equal(false);
    expect(included({ comms: ['py*'] })).to.equal(true);
    expect(included({ comms: ['make'] })).to.equal(false);
    expect(included({ uids: [0, 1000] })).to.equal(true);
    expect(included({ uids: [0] })).to.equal(false);
    expect(included({ gids: [100] })).to.equal(true);
    expect(included({ gids: [0] })).to.equal(false);
  });

  it('needs every set field to match, and any one entry within a field', () => {
    expect(included({ uids: [1000], paths: ['*.yaml'], events: K.FAN_OPEN })).to.equal(true);
    expect(included({ uids: [1000], paths: ['*.json'], events: K.FAN_OPEN })).to.equal(false);
    expect(included({ uids: [0], paths: ['*.yaml'] })).to.equal(false);
    expect(included({ comms: ['make', 'python3'], gids: [1, 100] })).to.equal(true);
    expect(included({ comms: ['python3'], exes: ['/usr/local/**'] })).to.equal(false);
  });

  it('never matches a process field of a process that could not be read (its zeros are not root)', () => {
    const gone = unknownProcess(42);
    expect(included({ uids: [0] }, { process: gone })).to.equal(false);
    expect(included({ gids: [0] }, { process: gone })).to.equal(false);
    expect(included({ comms: ['*'] }, { process: gone })).to.equal(false);
    // A kernel thread or zombie has no exe.
    expect(included({ exes: ['*'] }, { process: { ...PROC, exe: '' } })).to.equal(false);
    expect(included({ paths: ['*'] }, { path: '' })).to.equal(false);
  });

  it('delivers only what one include matches, and never what an exclude matches', () => {
    const sel = selection({ include: [match({ paths: ['/srv/**'] }), match({ uids: [0] })], exclude: [match({ paths: ['*.tmp'] })] });
    expect(decide(sel, { path: '/srv/a.txt' })).to.equal(DELIVER);
    expect(decide(sel, { path: '/etc/passwd', process: { ...PROC, uid: 0 } })).to.equal(DELIVER);
    expect(decide(sel, { path: '/etc/passwd' })).to.equal(FILTERED);
    expect(decide(sel, { path: '/srv/a.tmp' })).to.equal(FILTERED);
    expect(decide(selection({ exclude: [match({ comms: ['python3'] })] }))).to.equal(FILTERED);
  });

  it('gives a permission event to the first rule that matches it, after the filters, and no rule to a notification', () => {
    const sel = selection({
      exclude: [match({ paths: ['*.log'] })],
      rules: [rule({ paths: ['*.key'] }, { decision: 'deny' }), rule({ paths: ['/srv/**'] }), rule({})],
    });
    expect(decide(sel, { mask: K.FAN_OPEN_PERM, path: '/srv/a.key' }, true)).to.equal(0);
    expect(decide(sel, { mask: K.FAN_OPEN_PERM, path: '/srv/a.txt' }, true)).to.equal(1);
    expect(decide(sel, { mask: K.FAN_OPEN_PERM, path: '/etc/a.txt' }, true)).to.equal(2);
    expect(decide(sel, { mask: K.FAN_OPEN_PERM, path: '/srv/a.log' }, true)).to.equal(FILTERED);
    expect(decide(sel, { path: '/srv/a.key' }, false)).to.equal(DELIVER);
    expect(decide(selection({ rules: [rule({ uids: [0] })] }), { mask: K.FAN_OPEN_PERM }, true)).to.equal(DELIVER);
    expect(sel.rules[0].decision).to.equal('deny');
  });

  it('asks for nothing but the event bits when a match has only event types, even when they fail', () => {
    const sel = selection({ include: [match({ events: K.FAN_CLOSE_WRITE })], rules: [rule({ events: K.FAN_OPEN_PERM })] });
    for (const [mask, permission] of [[K.FAN_OPEN, false], [K.FAN_CLOSE_WRITE, false]] as const) {
      const { s, asked } = subject({ mask });
      sel.decide(s, permission);
      expect(asked).to.deep.equal({ process: 0, name: 0, whole: 0 });
    }
    expect(sel.needsProcess).to.equal(false);
  });

  it('checks event bits, then the process, then the path, stopping at the first that fails', () => {
    const sel = selection({ include: [match({ events: K.FAN_OPEN, uids: [0], paths: ['/srv/**'] })] });
    const a = subject({ mask: K.FAN_MODIFY });
    sel.decide(a.s, false);
    expect(a.asked).to.deep.equal({ process: 0, name: 0, whole: 0 });
    const b = subject();
    sel.decide(b.s, false);
    expect(b.asked).to.deep.equal({ process: 1, name: 0, whole: 0 });
    expect(sel.needsProcess).to.equal(true);
  });

  it('never reads the process for a path-only filter, and decodes only the last name for name globs', () => {
    const sel = selection({ exclude: [match({ paths: ['*.tmp', '*.swp'] })] });
    const { s, asked } = subject({ path: '/srv/a.tmp' });
    expect(sel.decide(s, false)).to.equal(FILTERED);
    expect(asked.process).to.equal(0);
    expect(asked.whole).to.equal(0);
    expect(sel.needsProcess).to.equal(false);
  });

  it('refuses a bad glob when compiled, saying which', () => {
    expect(() => selection({ include: [match({ paths: ['srv/*.key'] })] })).to.throw(/"srv\/\*\.key": a pattern with "\/" must start with "\/"/);
    expect(() => selection({ rules: [rule({ exes: ['/usr/bin/'] })] })).to.throw(/cannot end with "\/"/);
  });

  it('keeps its own copy of the rules: a spec changed later changes nothing', () => {
    const spec: SelectionSpec = { include: [], exclude: [], rules: [rule({}, { decision: 'deny' })] };
    const sel = new Selection(spec);
    spec.rules[0].decision = 'allow';
    expect(sel.rules[0].decision).to.equal('deny');
  });

  describe('the event types include and exclude leave out whatever else an event is (kept out of the kernel marks)', () => {
    const out = (s: Partial<SelectionSpec>) => filteredOutTypes({ include: [], exclude: [], rules: [], ...s });
    const EVENT_BITS = ~(K.FAN_ONDIR | K.FAN_EVENT_ON_CHILD);

    it('leaves out the types of an exclude that names types alone, and every type for an empty exclude', () => {
      expect(out({ exclude: [match({ events: K.FAN_OPEN | K.FAN_ACCESS })] })).to.equal(K.FAN_OPEN | K.FAN_ACCESS);
      expect(out({ exclude: [match({})] })).to.equal(EVENT_BITS);
    });

    it('leaves out nothing for an exclude with any other field set: some of its events may still be delivered', () => {
      for (const m of [{ paths: ['*.o'] }, { exes: ['/bin/x'] }, { comms: ['cc'] }, { uids: [0] }, { gids: [0] }]) {
        expect(out({ exclude: [match({ events: K.FAN_OPEN, ...m })] }), JSON.stringify(m)).to.equal(0);
      }
      // A field MatchSpec gains later counts as set too.
      expect(out({ exclude: [{ ...match({ events: K.FAN_OPEN }), container_ids: ['c1'] } as MatchSpec] })).to.equal(0);
    });

    it('leaves out the types no include can match, whatever else the includes name', () => {
      expect(out({ include: [match({ events: K.FAN_OPEN, paths: ['*.c'] }), match({ events: K.FAN_CLOSE_WRITE, uids: [0] })] })).to.equal(EVENT_BITS & ~(K.FAN_OPEN | K.FAN_CLOSE_WRITE));
      expect(out({ include: [match({ events: K.FAN_OPEN }), match({ paths: ['*.c'] })] })).to.equal(0);
      expect(out({ include: [match({ events: K.FAN_OPEN })], exclude: [match({ events: K.FAN_ACCESS })] })).to.equal(EVENT_BITS & ~K.FAN_OPEN);
    });

    it('agrees with decide(): every event of a type left out is FILTERED', () => {
      const spec = { include: [match({ events: K.FAN_OPEN | K.FAN_CLOSE_WRITE, paths: ['*.c'] })], exclude: [match({ events: K.FAN_CLOSE_WRITE })], rules: [] };
      const o = filteredOutTypes(spec);
      const sel = new Selection(spec);
      for (const bit of [K.FAN_OPEN, K.FAN_CLOSE_WRITE, K.FAN_ACCESS, K.FAN_MODIFY]) {
        if (o & bit) expect(decide(sel, { mask: bit, path: '/x/a.c' }), `type ${bit}`).to.equal(FILTERED);
      }
      expect(o & K.FAN_OPEN).to.equal(0);
    });

    it('never leaves out types for rules alone (a rule decides by more than the type)', () => {
      expect(out({ rules: [rule({ events: K.FAN_OPEN_PERM })] })).to.equal(0);
    });
  });
});
