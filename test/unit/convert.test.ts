// proto <-> domain conversion and Subscribe validation, without a kernel.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { joinEntry } from '../../src/host/event';
import type { KernelFeatures } from '../../src/kernel/probe';
import { EVENT_TYPES, overflowToProto, parseSubscribe, parseVerdicts, statsToProto, typeToBit } from '../../src/api/convert';
import { fanotifyService } from '../../src/api/proto';
import type { WatchResponse, WatchResponse__Output } from '../../src/api/gen/fanotify/v1/WatchResponse';
import { FakeWatch, fakeKernel } from '../fixtures/fake-watches';
import { ApiError } from '../../src/api/errors';
import type { Subscribe } from '../../src/api/gen/fanotify/v1/Subscribe';
import type { VerdictBatch } from '../../src/api/gen/fanotify/v1/VerdictBatch';
import { subscribeMessage, verdictBatch } from '../fixtures/messages';

const LIMITS = { defaultVerdictTimeoutMs: 5000, maxVerdictTimeoutMs: 60000, defaultMaxBatchEvents: 256, maxBatchEvents: 4096, maxMarksPerWatch: 4, maxLingerMs: 60_000 };

const kernel = fakeKernel;

function rejects(fn: () => unknown, status: grpc.status, msg: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ApiError);
    expect(grpc.status[(err as ApiError).status]).to.equal(grpc.status[status]);
    expect((err as Error).message).to.match(msg);
    return;
  }
  expect.fail('expected an ApiError');
}

const mark = (extra: object = {}) => ({ path: '/tmp', events: ['EVENT_TYPE_OPEN'], ...extra });
/** A Subscribe as the handler gets it; `as` lets a test send what no typed client would (enum numbers the .proto lacks). */
const sub = (msg: object) => subscribeMessage(msg as Subscribe);
const verdicts = (msg: object) => verdictBatch(msg as VerdictBatch);
const WATCH = fanotifyService().Watch;
/** A watch's counters: 9 read, 8 sent, 3 client verdicts, 1 pending. */
function snapshot() {
  const w = new FakeWatch('w', { groupClass: 'content', marks: [] }, { verdictTimeoutMs: 1, timeoutDecision: 'allow', maxBatchEvents: 1, queueCapacity: 1 }, () => undefined);
  w.stats = { eventsRead: 9, eventsSent: 8, pending: 1, decisions: { client: 3, timeout: 0, disconnect: 0, shutdown: 0, self: 0, limit: 0, rule: 0, filter: 0 } };
  return w.snapshot();
}

describe('unit: convert', () => {
  // Mask to names is the encoder's (test/unit/wire.test.ts).
  it('maps every EventType to one mask bit', () => {
    const bits = new Set<number>();
    for (const [name, bit] of EVENT_TYPES) {
      bits.add(bit);
      if (bit !== K.FAN_Q_OVERFLOW) expect(typeToBit(name, 'x')).to.equal(bit);
    }
    expect(bits.size).to.equal(EVENT_TYPES.length);
  });

  it('refuses Q_OVERFLOW, UNSPECIFIED and unknown values as mark events', () => {
    for (const v of ['EVENT_TYPE_Q_OVERFLOW', 'EVENT_TYPE_UNSPECIFIED', 99, 'EVENT_TYPE_NOPE']) {
      rejects(() => typeToBit(v, 'marks[0]'), grpc.status.INVALID_ARGUMENT, /not an event type that can be marked/);
    }
  });

  it('accepts a good Subscribe and fills in the defaults', () => {
    const r = parseSubscribe(sub({ group_class: 'GROUP_CLASS_UNSPECIFIED', marks: [mark({ scope: 'MARK_SCOPE_UNSPECIFIED', on_child: true })], verdict_timeout_ms: 0, timeout_decision: 'DECISION_UNSPECIFIED', max_batch_events: 0 }), LIMITS, kernel());
    expect(r.group.groupClass).to.equal('notif');
    expect(r.group.marks).to.deep.equal([{ path: '/tmp', scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }]);
    expect(r.verdictTimeoutMs).to.equal(5000);
    expect(r.maxBatchEvents).to.equal(256);
    expect(r.timeoutDecision).to.equal('allow');
    const p = parseSubscribe(sub({ group_class: 'GROUP_CLASS_CONTENT', marks: [mark({ events: ['EVENT_TYPE_OPEN_PERM'], on_dir: true, scope: 'MARK_SCOPE_FILESYSTEM' })], verdict_timeout_ms: 100, timeout_decision: 'DECISION_DENY', max_batch_events: 7 }), LIMITS, kernel());
    expect(p.group.marks[0]).to.deep.equal({ path: '/tmp', scope: 'filesystem', mask: K.FAN_OPEN_PERM | K.FAN_ONDIR, flags: 0 });
    expect([p.verdictTimeoutMs, p.timeoutDecision, p.maxBatchEvents]).to.deep.equal([100, 'deny', 7]);
  });

  const bad: Array<[string, object, grpc.status, RegExp, KernelFeatures?]> = [
    ['no marks', { marks: [] }, grpc.status.INVALID_ARGUMENT, /marks is empty/],
    ['too many marks', { marks: [mark(), mark(), mark(), mark(), mark()] }, grpc.status.RESOURCE_EXHAUSTED, /5 marks exceed the limit of 4/],
    ['missing path', { marks: [{ events: ['EVENT_TYPE_OPEN'] }] }, grpc.status.INVALID_ARGUMENT, /marks\[0\]: path is missing/],
    ['relative path', { marks: [mark({ path: 'tmp/x' })] }, grpc.status.INVALID_ARGUMENT, /"tmp\/x" is relative/],
    ['NUL in path', { marks: [mark({ path: '/tmp/a\0b' })] }, grpc.status.INVALID_ARGUMENT, /NUL byte/],
    ['unknown class', { group_class: 99, marks: [mark()] }, grpc.status.INVALID_ARGUMENT, /group_class 99 is unknown/],
    ['unknown scope', { marks: [mark({ scope: 42 })] }, grpc.status.INVALID_ARGUMENT, /scope 42 is unknown/],
    ['no events', { marks: [mark({ events: [] })] }, grpc.status.INVALID_ARGUMENT, /events is empty/],
    ['UNSPECIFIED event', { marks: [mark({ events: ['EVENT_TYPE_UNSPECIFIED'] })] }, grpc.status.INVALID_ARGUMENT, /EVENT_TYPE_UNSPECIFIED is not/],
    ['permission event on NOTIF', { marks: [mark({ events: ['EVENT_TYPE_OPEN_PERM'] })] }, grpc.status.INVALID_ARGUMENT, /GROUP_CLASS_CONTENT or GROUP_CLASS_PRE_CONTENT/],
    ['PRE_ACCESS on CONTENT', { group_class: 'GROUP_CLASS_CONTENT', marks: [mark({ events: ['EVENT_TYPE_PRE_ACCESS'] })] }, grpc.status.INVALID_ARGUMENT, /needs group_class GROUP_CLASS_PRE_CONTENT/],
    ['timeout above the maximum', { verdict_timeout_ms: 2 ** 32 - 1, marks: [mark()] }, grpc.status.INVALID_ARGUMENT, /exceeds the daemon's maximum of 60000/],
    ['batch above the maximum', { max_batch_events: 5000, marks: [mark()] }, grpc.status.INVALID_ARGUMENT, /max_batch_events 5000 exceeds/],
    ['mount events on an inode mark', { marks: [mark({ events: ['EVENT_TYPE_MNT_ATTACH'] })] }, grpc.status.INVALID_ARGUMENT, /go with MARK_SCOPE_MOUNT_NAMESPACE/],
    ['file events on a mount namespace', { marks: [mark({ scope: 'MARK_SCOPE_MOUNT_NAMESPACE' })] }, grpc.status.INVALID_ARGUMENT, /go with MARK_SCOPE_MOUNT_NAMESPACE/],
    ['unknown timeout decision', { timeout_decision: 9, marks: [mark()] }, grpc.status.INVALID_ARGUMENT, /timeout_decision 9 is unknown/],
    ['event the kernel lacks', { marks: [mark()] }, grpc.status.FAILED_PRECONDITION, /does not support EVENT_TYPE_OPEN/, kernel({ events: new Map([[K.FAN_OPEN, false]]) })],
    ['class the kernel lacks', { group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [mark()] }, grpc.status.FAILED_PRECONDITION, /does not support GROUP_CLASS_PRE_CONTENT/, kernel({ classes: { notif: true, content: true, pre_content: false } })],
    ['scope the kernel lacks', { marks: [mark({ scope: 'MARK_SCOPE_FILESYSTEM' })] }, grpc.status.FAILED_PRECONDITION, /does not support MARK_SCOPE_FILESYSTEM/, kernel({ scopes: { inode: true, mount: true, filesystem: false, mount_namespace: true, subtree: true } })],
  ];
  for (const [what, msg, status, re, k] of bad) {
    it(`refuses a Subscribe with ${what}`, () => {
      rejects(() => parseSubscribe(sub({ group_class: 'GROUP_CLASS_NOTIF', ...msg }), LIMITS, k ?? kernel()), status, re);
    });
  }

  it('requires a permission watch to state its timeout_decision, and names the field', () => {
    for (const group_class of ['GROUP_CLASS_CONTENT', 'GROUP_CLASS_PRE_CONTENT']) {
      for (const timeout_decision of [undefined, 'DECISION_UNSPECIFIED']) {
        rejects(
          () => parseSubscribe(sub({ group_class, timeout_decision, marks: [mark({ events: ['EVENT_TYPE_OPEN_PERM'] })] }), LIMITS, kernel()),
          grpc.status.INVALID_ARGUMENT,
          /^Subscribe\.timeout_decision is required for permission classes: DECISION_ALLOW \(fail open\) or DECISION_DENY \(fail closed\)$/,
        );
      }
      for (const [name, decision] of [['DECISION_ALLOW', 'allow'], ['DECISION_DENY', 'deny']]) {
        const r = parseSubscribe(sub({ group_class, timeout_decision: name, marks: [mark({ events: ['EVENT_TYPE_OPEN_PERM'] })] }), LIMITS, kernel());
        expect(r.timeoutDecision).to.equal(decision);
      }
    }
    // A notification watch has no verdicts to time out.
    expect(parseSubscribe(sub({ marks: [mark()] }), LIMITS, kernel()).timeoutDecision).to.equal('allow');
  });

  it('parses verdicts and refuses an UNSPECIFIED decision', () => {
    expect(parseVerdicts(verdicts({ verdicts: [{ id: '12', decision: 'DECISION_DENY' }, { id: '3', decision: 'DECISION_ALLOW', cache: true }] }))).to.deep.equal([
      { id: 12, decision: 'deny', cache: false, errno: 0, audit: false, auditRule: 0 },
      { id: 3, decision: 'allow', cache: true, errno: 0, audit: false, auditRule: 0 },
    ]);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_UNSPECIFIED' }] })), grpc.status.INVALID_ARGUMENT, /verdicts\[0\]: decision DECISION_UNSPECIFIED/);
  });

  it('checks verdict options against the watch', () => {
    const pre = { groupClass: 'pre_content' as const, audit: false };
    expect(parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_DENY', errno: 5 }] }), pre)[0].errno).to.equal(5);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_DENY', errno: 2 }] }), pre), grpc.status.INVALID_ARGUMENT, /errno 2 \(ENOENT\) is not one the kernel accepts/);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_DENY', errno: 5 }] }), { groupClass: 'content', audit: false }), grpc.status.INVALID_ARGUMENT, /needs a GROUP_CLASS_PRE_CONTENT watch/);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_ALLOW', errno: 5 }] }), pre), grpc.status.INVALID_ARGUMENT, /DECISION_DENY only/);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_DENY', cache: true }] }), pre), grpc.status.INVALID_ARGUMENT, /cache applies to DECISION_ALLOW only/);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_ALLOW', audit: true }] }), pre), grpc.status.INVALID_ARGUMENT, /enable_audit/);
    rejects(() => parseVerdicts(verdicts({ verdicts: [{ id: '1', decision: 'DECISION_ALLOW', audit_rule: 3 }] }), { groupClass: 'content', audit: true }), grpc.status.INVALID_ARGUMENT, /audit_rule needs audit/);
  });

  it('sends every overflow source and the watch counters as the .proto has them', () => {
    const roundTrip = (msg: WatchResponse) => WATCH.responseDeserialize(WATCH.responseSerialize(msg)) as WatchResponse__Output;
    for (const [source, name] of [['kernel', 'OVERFLOW_SOURCE_KERNEL'], ['client', 'OVERFLOW_SOURCE_CLIENT'], ['rate_limit', 'OVERFLOW_SOURCE_RATE_LIMIT']] as const) {
      expect(roundTrip({ overflow: overflowToProto({ source, dropped: 3, total: 2 ** 40, seq: 2 ** 50 }) }).overflow).to.deep.equal({ source: name, dropped: '3', total: String(2 ** 40), sequence: String(2 ** 50) });
    }
    const stats = roundTrip({ stats: statsToProto(snapshot(), '18446744073709551615') }).stats!;
    expect(stats).to.deep.equal({
      request_id: '18446744073709551615',
      read: '9',
      delivered: '8',
      dropped_client_queue: '0',
      kernel_overflows: '0',
      dropped_rate_limit: '0',
      filtered: '0',
      coalesced: '0',
      decided_by_rule: '0',
      decided_by_client: '3',
      decided_by_timeout: '0',
      decided_by_daemon: '0',
      pending: '1',
      verdicts_refused: '0',
      consumers: 0,
      reassigned: '0',
      gap_sequences: '0',
    });
  });

  it('joins a directory and an entry name', () => {
    expect(joinEntry(Buffer.from('/'), Buffer.from('etc')).toString()).to.equal('/etc');
    expect(joinEntry(Buffer.from('/srv'), Buffer.from('x')).toString()).to.equal('/srv/x');
    expect(joinEntry(Buffer.from('/srv'), Buffer.from('.')).toString()).to.equal('/srv');
    expect(joinEntry(Buffer.from('/srv'), Buffer.alloc(0)).toString()).to.equal('/srv');
  });
});
