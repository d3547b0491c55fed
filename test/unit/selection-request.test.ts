// Filters, rules and delivery options of Subscribe and ReplaceRules, as the
// daemon receives them (encoded and decoded with the .proto): what is
// accepted becomes the watch's SelectionSpec, what is refused names its
// field path and says what to write instead. No kernel, no root.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { parseSubscribe } from '../../src/api/convert';
import { ApiError } from '../../src/api/errors';
import type { Subscribe } from '../../src/api/gen/fanotify/v1/Subscribe';
import type { ReplaceRules } from '../../src/api/gen/fanotify/v1/ReplaceRules';
import { parseSelection, SELECTION_LIMITS, type SelectionContext } from '../../src/api/selection-request';
import { fakeKernel } from '../fixtures/fake-watches';
import { subscribeMessage, watchRequest } from '../fixtures/messages';

const LIMITS = { defaultVerdictTimeoutMs: 5000, maxVerdictTimeoutMs: 60000, defaultMaxBatchEvents: 256, maxBatchEvents: 4096, maxMarksPerWatch: 4, maxLingerMs: 60_000 };

const kernel = fakeKernel;

/** The error fn throws: an ApiError with this status, whose message matches. */
function refused(fn: () => unknown, status: grpc.status, msg: RegExp): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ApiError);
    expect(grpc.status[(err as ApiError).status], (err as Error).message).to.equal(grpc.status[status]);
    expect((err as Error).message).to.match(msg);
    return (err as Error).message;
  }
  return expect.fail(`expected an ApiError matching ${msg}`);
}

const PERM_MARKS = [{ path: '/tmp/x', events: ['EVENT_TYPE_OPEN_PERM' as const] }];
/** A Subscribe as the handler gets it, for a permission watch of `group_class` unless the test says otherwise. */
function subscribe(extra: object, group_class = 'GROUP_CLASS_CONTENT') {
  const msg = { group_class, timeout_decision: 'DECISION_ALLOW', marks: group_class === 'GROUP_CLASS_NOTIF' ? [{ path: '/tmp/x', events: ['EVENT_TYPE_OPEN'] }] : PERM_MARKS, ...extra };
  return parseSubscribe(subscribeMessage(msg as Subscribe), LIMITS, kernel());
}
const replaceRules = (msg: object, ctx: SelectionContext = { groupClass: 'content' }) =>
  parseSelection(watchRequest({ replace_rules: msg as ReplaceRules }).replace_rules!, 'ReplaceRules', ctx);

const ANY = { paths: [], exes: [], comms: [], uids: [], gids: [], events: 0 };

describe('unit: filters and rules in Subscribe and ReplaceRules', () => {
  it('turns include, exclude, rules and the delivery options into the watch options', () => {
    const r = subscribe({
      include: [{ paths: ['/srv/**', '*.conf'], comms: ['nginx*'], uids: [0, 1000], events: ['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_OPEN'] }],
      exclude: [{ exes: ['/usr/bin/*'], gids: [7] }],
      rules: [
        { match: { paths: ['*.key'] }, decision: 'DECISION_DENY', report: true },
        { match: { events: ['EVENT_TYPE_OPEN_PERM'] }, decision: 'DECISION_ALLOW', cache: true },
        { decision: 'DECISION_ALLOW' },
      ],
      process_details: 'PROCESS_DETAILS_BASIC',
      coalesce_ms: 250,
      max_events_per_second: 5000,
    });
    expect(r.selection).to.deep.equal({
      include: [{ paths: ['/srv/**', '*.conf'], exes: [], comms: ['nginx*'], uids: [0, 1000], gids: [], events: K.FAN_OPEN_PERM | K.FAN_OPEN }],
      exclude: [{ ...ANY, exes: ['/usr/bin/*'], gids: [7] }],
      rules: [
        { match: { ...ANY, paths: ['*.key'] }, decision: 'deny', report: true, cache: false, errno: 0 },
        { match: { ...ANY, events: K.FAN_OPEN_PERM }, decision: 'allow', report: false, cache: true, errno: 0 },
        // A rule without a match decides everything that reaches it.
        { match: ANY, decision: 'allow', report: false, cache: false, errno: 0 },
      ],
    });
    expect([r.processDetails, r.coalesceMs, r.maxEventsPerSecond]).to.deep.equal(['basic', 250, 5000]);
  });

  it('leaves the selection out, reads full process details and turns coalescing and the rate limit off by default', () => {
    const r = subscribe({}, 'GROUP_CLASS_NOTIF');
    expect(r.selection).to.equal(undefined);
    expect([r.processDetails, r.coalesceMs, r.maxEventsPerSecond]).to.deep.equal(['full', 0, 0]);
    for (const [name, d] of [['PROCESS_DETAILS_UNSPECIFIED', 'full'], ['PROCESS_DETAILS_FULL', 'full'], ['PROCESS_DETAILS_BASIC', 'basic'], ['PROCESS_DETAILS_PID', 'pid']]) {
      expect(subscribe({ process_details: name }).processDetails, name).to.equal(d);
    }
    // Filters alone on a notification watch are fine; they need no verdicts.
    expect(subscribe({ exclude: [{ comms: ['updatedb'] }] }, 'GROUP_CLASS_NOTIF').selection!.exclude).to.have.length(1);
  });

  it('accepts the globs .gitignore reads: a name anywhere, an absolute path, "**/" for any directory', () => {
    const globs = ['*.key', '/srv/**/*.key', '**/secrets/*', 'a?c', '[ab]*'];
    expect(subscribe({ include: [{ paths: globs, exes: ['/usr/bin/cat', 'cat'] }] }).selection!.include[0].paths).to.deep.equal(globs);
    // A command name is a name, not a path: a "/" in it is just a character.
    expect(subscribe({ include: [{ comms: ['kworker/0:1'] }] }).selection!.include[0].comms).to.deep.equal(['kworker/0:1']);
  });

  const badGlobs: Array<[string, string, RegExp]> = [
    ['an empty pattern', '', /^Subscribe\.include\[0\]\.paths\[1\]: the pattern is empty; remove it/],
    ['a NUL byte', '/a\0b', /^Subscribe\.include\[0\]\.paths\[1\]: the pattern contains a NUL byte/],
    ['a pattern past PATH_MAX', '/' + 'a'.repeat(4096), /^Subscribe\.include\[0\]\.paths\[1\]: the pattern is 4097 bytes, over the limit of 4096/],
    ['a leading "!"', '!*.key', /^Subscribe\.include\[0\]\.paths\[1\]: "!\*\.key": a leading "!" does not negate in a Match; put the pattern in exclude \(or in an earlier rule\) instead, or write "\\!" for a name that starts with "!"$/],
    ['a trailing "/"', '/srv/', /^Subscribe\.include\[0\]\.paths\[1\]: "\/srv\/": events name files, so a pattern cannot end with "\/"; "\/srv\/\*\*" matches everything under a directory/],
    ['a relative trailing "/"', 'build/', /"\*\*\/build\/\*\*" matches everything under a directory/],
    [
      'a relative pattern with "/"',
      'etc/*.conf',
      /^Subscribe\.include\[0\]\.paths\[1\]: "etc\/\*\.conf" has a "\/" but is not absolute: start it with "\/" \(an absolute path\) or "\*\*\/" \(any directory\), or drop the directory part \("\*\.conf" alone matches that name anywhere\)$/,
    ],
  ];
  for (const [what, glob, re] of badGlobs) {
    it(`refuses a path glob with ${what}, naming the field`, () => {
      refused(() => subscribe({ include: [{ paths: ['*.ok', glob] }] }), grpc.status.INVALID_ARGUMENT, re);
    });
  }

  it('checks exes as paths and comms as names, in include, exclude and rules alike', () => {
    refused(() => subscribe({ exclude: [{}, { exes: ['bin/sh'] }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.exclude\[1\]\.exes\[0\]: "bin\/sh" has a "\/" but is not absolute/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_ALLOW', match: { comms: [''] } }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.match\.comms\[0\]: the pattern is empty/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_ALLOW' }, { decision: 'DECISION_DENY', match: { paths: ['a/b'] } }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[1\]\.match\.paths\[0\]: "a\/b"/);
    refused(() => subscribe({ include: [{ comms: ['!cat'] }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.include\[0\]\.comms\[0\]: "!cat": a leading "!"/);
  });

  it('reads event names with the marks\' table and refuses the ones that are not event types', () => {
    for (const e of ['EVENT_TYPE_UNSPECIFIED', 'EVENT_TYPE_Q_OVERFLOW', 77]) {
      refused(() => subscribe({ include: [{ events: ['EVENT_TYPE_OPEN', e] }] }), grpc.status.INVALID_ARGUMENT, new RegExp(`^Subscribe\\.include\\[0\\]\\.events\\[1\\]: ${e} is not an event type`));
    }
  });

  it('refuses rule decisions that are not ALLOW or DENY', () => {
    refused(() => subscribe({ rules: [{ decision: 'DECISION_ALLOW' }, { match: { paths: ['*.key'] } }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[1\]\.decision: DECISION_UNSPECIFIED is not DECISION_ALLOW or DECISION_DENY; a rule must say which$/);
    refused(() => subscribe({ rules: [{ decision: 9 }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.decision: 9 is not/);
  });

  it('checks a rule\'s cache and errno as a verdict\'s', () => {
    const pre = 'GROUP_CLASS_PRE_CONTENT';
    refused(() => subscribe({ rules: [{ decision: 'DECISION_DENY', cache: true }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.cache applies to DECISION_ALLOW only: the kernel allows what it ignores$/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_ALLOW', errno: 5 }] }, pre), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.errno applies to DECISION_DENY only$/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_DENY', errno: 5 }] }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.errno needs a GROUP_CLASS_PRE_CONTENT watch/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_DENY', errno: 2 }] }, pre), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.errno 2 \(ENOENT\) is not one the kernel accepts; use one of EPERM=1, EIO=5/);
    refused(() => subscribe({ rules: [{ decision: 'DECISION_DENY', errno: -1 }] }, pre), grpc.status.INVALID_ARGUMENT, /^Subscribe\.rules\[0\]\.errno -1 is not one the kernel accepts/);
    const ok = subscribe({ rules: [{ decision: 'DECISION_DENY', errno: 5, report: true }] }, pre).selection!.rules[0];
    expect([ok.decision, ok.errno, ok.report]).to.deep.equal(['deny', 5, true]);
  });

  it('refuses rules on a notification watch, which has nothing to decide', () => {
    refused(
      () => subscribe({ rules: [{ decision: 'DECISION_ALLOW' }] }, 'GROUP_CLASS_NOTIF'),
      grpc.status.INVALID_ARGUMENT,
      /^Subscribe\.rules: a GROUP_CLASS_NOTIF watch has no permission events to decide; subscribe with GROUP_CLASS_CONTENT or GROUP_CLASS_PRE_CONTENT, or send no rules$/,
    );
  });

  it('refuses a rule about events it could never decide', () => {
    refused(
      () => subscribe({ rules: [{ decision: 'DECISION_DENY', match: { events: ['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_CLOSE_WRITE'] } }] }),
      grpc.status.INVALID_ARGUMENT,
      /^Subscribe\.rules\[0\]\.match\.events\[1\]: EVENT_TYPE_CLOSE_WRITE is not a permission event; a rule decides only/,
    );
  });

  it('takes process fields in a match whatever process_details sends, and refuses an unknown process_details', () => {
    // The watch reads the process to decide; the client is sent only the pid.
    const r = subscribe({ process_details: 'PROCESS_DETAILS_PID', exclude: [{ comms: ['cron'], uids: [0] }], rules: [{ decision: 'DECISION_ALLOW', match: { exes: ['/usr/bin/*'], gids: [5] } }] });
    expect(r.processDetails).to.equal('pid');
    expect(r.selection!.exclude[0]).to.deep.include({ comms: ['cron'], uids: [0] });
    expect(r.selection!.rules[0].match).to.deep.include({ exes: ['/usr/bin/*'], gids: [5] });
    refused(() => subscribe({ process_details: 12 }), grpc.status.INVALID_ARGUMENT, /^Subscribe\.process_details: 12 is unknown; use PROCESS_DETAILS_FULL, PROCESS_DETAILS_BASIC or PROCESS_DETAILS_PID$/);
  });

  it('bounds the number of matches, globs and ids per watch, and says the limit', () => {
    const L = SELECTION_LIMITS;
    const matches = (n: number) => Array.from({ length: n }, () => ({ paths: ['*.x'] }));
    expect(subscribe({ include: matches(L.maxMatches - 1), rules: [{ decision: 'DECISION_ALLOW' }] }).selection!.include).to.have.length(L.maxMatches - 1);
    refused(
      () => subscribe({ include: matches(100), exclude: matches(100), rules: Array.from({ length: 57 }, () => ({ decision: 'DECISION_ALLOW' })) }),
      grpc.status.RESOURCE_EXHAUSTED,
      /^Subscribe: include, exclude and rules hold 257 matches together, over the limit of 256 per watch$/,
    );
    const globs = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`);
    expect(subscribe({ include: [{ paths: globs(1000) }], exclude: [{ comms: globs(24) }] }).selection!.include[0].paths).to.have.length(1000);
    refused(
      () => subscribe({ include: [{ paths: globs(1000) }], rules: [{ decision: 'DECISION_ALLOW', match: { exes: globs(25) } }] }),
      grpc.status.RESOURCE_EXHAUSTED,
      /^Subscribe: the matches of include, exclude and rules hold 1025 globs \(paths, exes and comms\), over the limit of 1024 per watch$/,
    );
    const ids = Array.from({ length: 600 }, (_, i) => i);
    refused(() => subscribe({ include: [{ uids: ids }], exclude: [{ gids: ids }] }), grpc.status.RESOURCE_EXHAUSTED, /hold 1200 ids \(uids, gids, container ids, pod uids and namespaces\), over the limit of 1024 per watch$/);
  });

  it('bounds coalesce_ms and max_events_per_second, and says the bound', () => {
    expect(subscribe({ coalesce_ms: 60_000, max_events_per_second: 1_000_000 }, 'GROUP_CLASS_NOTIF')).to.deep.include({ coalesceMs: 60_000, maxEventsPerSecond: 1_000_000 });
    refused(() => subscribe({ coalesce_ms: 60_001 }, 'GROUP_CLASS_NOTIF'), grpc.status.INVALID_ARGUMENT, /^Subscribe\.coalesce_ms: 60001 is over the daemon's maximum of 60000; 0 turns it off$/);
    refused(() => subscribe({ max_events_per_second: 2 ** 32 - 1 }, 'GROUP_CLASS_NOTIF'), grpc.status.INVALID_ARGUMENT, /^Subscribe\.max_events_per_second: 4294967295 is over the daemon's maximum of 1000000; 0 turns it off$/);
  });

  it('checks ReplaceRules as Subscribe, with its own field paths', () => {
    expect(replaceRules({ request_id: 3, include: [{ paths: ['/srv/**'] }], rules: [{ decision: 'DECISION_DENY', match: { paths: ['*.key'] } }] })).to.deep.equal({
      include: [{ ...ANY, paths: ['/srv/**'] }],
      exclude: [],
      rules: [{ match: { ...ANY, paths: ['*.key'] }, decision: 'deny', report: false, cache: false, errno: 0 }],
    });
    // An empty ReplaceRules clears all three.
    expect(replaceRules({ request_id: 4 })).to.deep.equal({ include: [], exclude: [], rules: [] });
    refused(() => replaceRules({ rules: [{ decision: 'DECISION_ALLOW' }, { decision: 'DECISION_UNSPECIFIED' }] }), grpc.status.INVALID_ARGUMENT, /^ReplaceRules\.rules\[1\]\.decision: DECISION_UNSPECIFIED/);
    refused(() => replaceRules({ exclude: [{ paths: ['x/'] }] }), grpc.status.INVALID_ARGUMENT, /^ReplaceRules\.exclude\[0\]\.paths\[0\]: "x\/"/);
    refused(() => replaceRules({ rules: [{ decision: 'DECISION_ALLOW' }] }, { groupClass: 'notif' }), grpc.status.INVALID_ARGUMENT, /^ReplaceRules\.rules: a GROUP_CLASS_NOTIF watch/);
    refused(() => replaceRules({ include: Array.from({ length: 257 }, () => ({})) }), grpc.status.RESOURCE_EXHAUSTED, /^ReplaceRules: include, exclude and rules hold 257 matches/);
  });
});
