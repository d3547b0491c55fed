// The Watch stream's state machine, with a fake call and a fake watch
// factory: no root, no kernel, no FFI. Each test plays one interleaving of
// requests, preparations, cancels and shutdown, and checks the stream's
// status, the watch (opened or not, closed how) and the registry's slots.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import { FanotifydError } from '../../src/common/errors';
import { Authorizer } from '../../src/api/policy';
import { FanotifyService, type ServiceLimits } from '../../src/api/service';
import type { WatchCall } from '../../src/api/watch-session';
import type { WatchRequest } from '../../src/api/gen/fanotify/v1/WatchRequest';
import { FakeCall, FakeFactory, fakeKernel, settled, silentLog } from '../fixtures/fake-watches';
import { watchRequest } from '../fixtures/messages';
import * as K from '../../src/kernel/constants';
import { unknownProcess } from '../../src/host/process';
import type { WatchResponse } from '../../src/api/gen/fanotify/v1/WatchResponse';

const LIMITS: ServiceLimits = {
  defaultVerdictTimeoutMs: 5000,
  maxVerdictTimeoutMs: 60000,
  defaultMaxBatchEvents: 256,
  maxBatchEvents: 4096,
  maxMarksPerWatch: 4,
  queueCapacity: 100,
  maxWatches: 2,
  maxPendingPerWatch: 10,
  maxWatchesPerIdentity: 8,
  maxLingerMs: 60_000,
  resumeBufferBytes: 1024 * 1024,
};

const NOTIF = { marks: [{ path: '/tmp', events: ['EVENT_TYPE_OPEN' as const] }] };
const PERM = { group_class: 'GROUP_CLASS_CONTENT' as const, timeout_decision: 'DECISION_DENY' as const, marks: [{ path: '/tmp', events: ['EVENT_TYPE_OPEN_PERM' as const] }] };

function setup(opts: { deferred?: boolean; limits?: Partial<ServiceLimits>; authorizer?: Authorizer } = {}) {
  const factory = new FakeFactory(opts.deferred);
  const service = new FanotifyService(factory, fakeKernel(), { ...LIMITS, ...opts.limits }, silentLog, 'test', opts.authorizer);
  const watchHandler = service.implementation().Watch as (call: WatchCall) => void;
  const open = (cert?: ConstructorParameters<typeof FakeCall>[0]) => {
    const call = new FakeCall(cert);
    watchHandler(call.asCall());
    return call;
  };
  const send = (call: FakeCall, req: WatchRequest) => call.send(watchRequest(req));
  return { factory, service, open, send };
}

const code = (call: FakeCall) => (call.status ? grpc.status[call.status.code] : undefined);

describe('unit: watch session (state machine, no kernel)', () => {
  it('opens a watch on Subscribe and answers Subscribed with what is in force', async () => {
    const { factory, service, open, send } = setup();
    const call = open();
    send(call, { subscribe: PERM });
    await settled();
    expect(factory.opened).to.have.length(1);
    const [sub] = call.messages('subscribed');
    expect(sub).to.deep.include({ watch_id: factory.opened[0].id, timeout_decision: 'DECISION_DENY', verdict_timeout_ms: 5000, max_batch_events: 256, queue_capacity: 100, report_mode: 'REPORT_MODE_FD' });
    expect(service.activeWatches).to.equal(1);
    expect(call.status).to.equal(undefined);
  });

  it('keeps the watch running after the client half-closes, and closes it when the client cancels', async () => {
    const { factory, service, open, send } = setup();
    const call = open();
    send(call, { subscribe: NOTIF });
    call.halfClose();
    await settled();
    const [w] = factory.opened;
    expect(w.isClosed).to.equal(false);
    expect(call.status).to.equal(undefined);
    // Events still go out after the half-close.
    expect(w.sink!.sendOverflow({ source: 'client', dropped: 1, total: 1 })).to.equal(true);
    expect(call.messages('overflow')).to.have.length(1);
    call.cancel();
    expect(w.closedBy).to.equal('disconnect');
    expect(service.registry.reserved).to.equal(0);
  });

  it('ends a stream whose requests end before Subscribe with OK', () => {
    const { open } = setup();
    const call = open();
    call.halfClose();
    expect(code(call)).to.equal('OK');
  });

  it('names every request kind when a WatchRequest has none set', () => {
    const { open, send } = setup();
    const call = open();
    send(call, {});
    expect(code(call)).to.equal('INVALID_ARGUMENT');
    for (const kind of ['subscribe', 'verdicts', 'add_mark', 'remove_mark', 'flush_marks', 'replace_rules', 'get_stats']) expect(call.status!.details).to.include(kind);
  });

  it('refuses verdicts before Subscribe, and before Subscribed', async () => {
    const { open, send, factory } = setup({ deferred: true });
    const early = open();
    send(early, { verdicts: { verdicts: [{ id: '1', decision: 'DECISION_ALLOW' }] } });
    expect(code(early)).to.equal('FAILED_PRECONDITION');
    expect(early.status!.details).to.match(/before Subscribe; send Subscribe first/);

    const waiting = open();
    send(waiting, { subscribe: PERM });
    send(waiting, { verdicts: { verdicts: [{ id: '1', decision: 'DECISION_ALLOW' }] } });
    expect(code(waiting)).to.equal('FAILED_PRECONDITION');
    expect(waiting.status!.details).to.match(/before Subscribed was received/);
    await factory.resolveAll();
    expect(factory.opened).to.have.length(0);
    expect(factory.released).to.equal(1);
  });

  it('refuses a second Subscribe on the stream and closes the first watch', async () => {
    const { open, send, factory } = setup();
    const call = open();
    send(call, { subscribe: NOTIF });
    await settled();
    send(call, { subscribe: NOTIF });
    expect(code(call)).to.equal('FAILED_PRECONDITION');
    expect(factory.opened[0].closedBy).to.equal('disconnect');
  });

  it('passes verdicts to the watch', async () => {
    const { open, send, factory } = setup();
    const call = open();
    send(call, { subscribe: PERM });
    await settled();
    send(call, { verdicts: { verdicts: [{ id: '7', decision: 'DECISION_DENY' }] } });
    expect(factory.opened[0].verdicts).to.deep.equal([{ id: 7, decision: 'deny' }]);
  });

  it('answers mark requests with a MarkResult, failures included, and keeps the stream', async () => {
    const { open, send, factory } = setup();
    const call = open();
    send(call, { subscribe: PERM });
    await settled();
    send(call, { add_mark: { request_id: 5, mark: { path: '/srv', events: ['EVENT_TYPE_OPEN_PERM'] } } });
    send(call, { add_mark: { request_id: 6, mark: { path: '/proc/self', events: ['EVENT_TYPE_OPEN_PERM'] } } });
    await settled();
    const results = call.messages('mark_result');
    expect(results.map((r) => [r.request_id, r.code])).to.deep.equal([
      ['5', grpc.status.OK],
      ['6', grpc.status.INVALID_ARGUMENT],
    ]);
    expect(factory.opened[0].marks.map((m) => m.path)).to.deep.equal(['/srv']);
    expect(call.status).to.equal(undefined);
  });

  it('opens nothing when the client cancels while the watch is being prepared', async () => {
    const { open, send, factory, service } = setup({ deferred: true });
    const call = open();
    send(call, { subscribe: NOTIF });
    expect(service.registry.reserved).to.equal(1);
    call.cancel();
    await factory.resolveAll();
    expect(factory.opened).to.have.length(0);
    expect(factory.released).to.equal(1);
    expect(service.registry.reserved).to.equal(0);
  });

  it('refuses a Subscribe that completes after shutdown began with UNAVAILABLE, and opens nothing', async () => {
    const { open, send, factory, service } = setup({ deferred: true });
    const call = open();
    send(call, { subscribe: PERM });
    service.shutdown();
    expect(code(call)).to.equal('UNAVAILABLE');
    await factory.resolveAll();
    expect(factory.opened, 'a watch opened after shutdown began').to.have.length(0);
    expect(factory.released).to.equal(1);
    expect(service.registry.reserved).to.equal(0);
    // And a Subscribe sent after shutdown is refused the same way.
    const late = open();
    expect(code(late)).to.equal('UNAVAILABLE');
  });

  it('closes an open watch on shutdown with the shutdown answer and tells the client UNAVAILABLE', async () => {
    const { open, send, factory, service } = setup();
    const call = open();
    send(call, { subscribe: PERM });
    await settled();
    service.shutdown();
    expect(factory.opened[0].closedBy).to.equal('shutdown');
    expect(code(call)).to.equal('UNAVAILABLE');
    expect(service.activeWatches).to.equal(0);
  });

  it('ends the stream with INTERNAL when the watch fails', async () => {
    const { open, send, factory, service } = setup();
    const call = open();
    send(call, { subscribe: NOTIF });
    await settled();
    factory.opened[0].fail(new Error('read: EIO'));
    expect(code(call)).to.equal('INTERNAL');
    expect(call.status!.details).to.match(/the watch failed and was closed: read: EIO/);
    expect(service.registry.reserved).to.equal(0);
  });

  it('frees the slot when the watch cannot be prepared or opened', async () => {
    const { open, send, factory, service } = setup({ deferred: true });
    const call = open();
    send(call, { subscribe: NOTIF });
    await factory.rejectAll(new ApiError(grpc.status.NOT_FOUND, 'statfs /x: ENOENT'));
    expect(code(call)).to.equal('NOT_FOUND');
    expect(service.registry.reserved).to.equal(0);

    factory.openError = new ApiError(grpc.status.INVALID_ARGUMENT, 'fanotify_mark: EINVAL');
    const second = open();
    send(second, { subscribe: NOTIF });
    await factory.resolveAll();
    expect(code(second)).to.equal('INVALID_ARGUMENT');
    expect(service.registry.reserved).to.equal(0);
  });

  it('ends a stream that sends no Subscribe within the handshake time', async () => {
    const { open } = setup({ limits: { handshakeTimeoutMs: 10 } });
    const call = open();
    await new Promise<void>((resolve) => {
      const check = () => (call.status ? resolve() : setImmediate(check));
      check();
    });
    expect(code(call)).to.equal('DEADLINE_EXCEEDED');
  });

  it('resumes the watch on drain after a refused write', async () => {
    const { open, send, factory } = setup();
    const call = open();
    send(call, { subscribe: NOTIF });
    await settled();
    const w = factory.opened[0];
    call.writable = false;
    expect(w.sink!.sendOverflow({ source: 'client', dropped: 1, total: 1 })).to.equal(false);
    expect(w.sink!.sendOverflow({ source: 'client', dropped: 1, total: 2 })).to.equal(false);
    call.emit('drain');
    expect(w.resumed).to.equal(1);
  });

  it('never lets concurrent Subscribes past --max-watches while their watches are prepared', async () => {
    const { open, send, factory, service } = setup({ deferred: true });
    const calls = Array.from({ length: 20 }, () => open());
    for (const c of calls) send(c, { subscribe: NOTIF });
    expect(service.registry.reserved).to.equal(2);
    await factory.resolveAll();
    expect(factory.opened).to.have.length(2);
    const refused = calls.filter((c) => code(c) === 'RESOURCE_EXHAUSTED');
    expect(refused).to.have.length(18);
    expect(refused[0].status!.details).to.match(/already serves 2 watches, its limit \(--max-watches\)/);
  });

  it('refuses a permission Subscribe without timeout_decision before taking a slot', () => {
    const { open, send, service } = setup();
    const call = open();
    send(call, { subscribe: { ...PERM, timeout_decision: 'DECISION_UNSPECIFIED' } });
    expect(code(call)).to.equal('INVALID_ARGUMENT');
    expect(call.status!.details).to.equal('Subscribe.timeout_decision is required for permission classes: DECISION_ALLOW (fail open) or DECISION_DENY (fail closed)');
    expect(service.registry.reserved).to.equal(0);
  });

  describe('filters, rules and counters on the open stream', () => {
    const DENY_KEYS = { decision: 'DECISION_DENY' as const, report: true, match: { paths: ['*.key'] } };

    it('swaps include, exclude and rules with ReplaceRules and answers with a MarkResult', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: { ...PERM, rules: [{ decision: 'DECISION_ALLOW' }] } });
      await settled();
      const w = factory.opened[0];
      expect(w.options.selection!.rules.map((r) => r.decision)).to.deep.equal(['allow']);
      send(call, { replace_rules: { request_id: 11, include: [{ paths: ['/srv/**'] }], exclude: [{ comms: ['updatedb'] }], rules: [DENY_KEYS] } });
      await settled();
      expect(call.messages('mark_result')).to.deep.equal([{ request_id: '11', code: grpc.status.OK, message: '', errno: '' }]);
      expect(w.selections).to.have.length(1);
      expect(w.selections[0].include[0].paths).to.deep.equal(['/srv/**']);
      expect(w.selections[0].exclude[0].comms).to.deep.equal(['updatedb']);
      expect(w.selections[0].rules).to.deep.equal([{ match: { paths: ['*.key'], exes: [], comms: [], uids: [], gids: [], events: 0 }, decision: 'deny', report: true, cache: false, errno: 0 }]);
    });

    it('answers a refused ReplaceRules with a failed MarkResult naming the field, keeps the stream and the old rules', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: PERM });
      await settled();
      const w = factory.opened[0];
      send(call, { replace_rules: { request_id: 1, rules: [DENY_KEYS, { decision: 'DECISION_DENY', cache: true }] } });
      send(call, { replace_rules: { request_id: 2, include: [{ paths: ['etc/passwd'] }] } });
      w.selectionError = new ApiError(grpc.status.FAILED_PRECONDITION, 'the watch refused it');
      send(call, { replace_rules: { request_id: 3, rules: [DENY_KEYS] } });
      await settled();
      const results = call.messages('mark_result');
      expect(results.map((r) => [r.request_id, grpc.status[r.code as number]])).to.deep.equal([
        ['1', 'INVALID_ARGUMENT'],
        ['2', 'INVALID_ARGUMENT'],
        ['3', 'FAILED_PRECONDITION'],
      ]);
      expect(results[0].message).to.equal('ReplaceRules.rules[1].cache applies to DECISION_ALLOW only: the kernel allows what it ignores');
      expect(results[1].message).to.match(/^ReplaceRules\.include\[0\]\.paths\[0\]: "etc\/passwd" has a "\/" but is not absolute/);
      expect(results[2].message).to.equal('the watch refused it');
      expect(w.selections).to.have.length(0);
      expect(call.status).to.equal(undefined);
      expect(w.isClosed).to.equal(false);
    });

    it('refuses rules in ReplaceRules on a notification watch, and takes its filters', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: { ...NOTIF, process_details: 'PROCESS_DETAILS_PID' } });
      await settled();
      send(call, { replace_rules: { request_id: 1, rules: [DENY_KEYS] } });
      send(call, { replace_rules: { request_id: 2, exclude: [{ uids: [0], paths: ['*.log'] }] } });
      await settled();
      const results = call.messages('mark_result');
      expect(results[0].message).to.match(/^ReplaceRules\.rules: a GROUP_CLASS_NOTIF watch has no permission events to decide/);
      expect(results[1].code).to.equal(grpc.status.OK);
      expect(factory.opened[0].selections.map((sel) => [sel.exclude[0].uids, sel.exclude[0].paths])).to.deep.equal([[[0], ['*.log']]]);
    });

    it('tells the client why the watch could not take a glob', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: PERM });
      await settled();
      // What src/common/glob.ts throws: a FanotifydError with code EGLOB.
      factory.opened[0].selectionError = new FanotifydError('EGLOB', '"[" cannot be compiled');
      send(call, { replace_rules: { request_id: 9, include: [{ paths: ['['] }] } });
      await settled();
      expect(call.messages('mark_result')).to.deep.equal([{ request_id: '9', code: grpc.status.INVALID_ARGUMENT, message: '"[" cannot be compiled', errno: '' }]);
    });

    it('answers GetStats with the watch\'s counters, decisions grouped as the .proto says', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: PERM });
      await settled();
      const w = factory.opened[0];
      w.stats = {
        eventsRead: 100,
        eventsSent: 60,
        notificationsDropped: 4,
        kernelOverflows: 1,
        pending: 2,
        filtered: 20,
        coalesced: 9,
        droppedRateLimit: 7,
        decisions: { client: 5, timeout: 1, disconnect: 2, limit: 3, shutdown: 0, self: 4, filter: 6, rule: 8 },
      };
      send(call, { get_stats: { request_id: 42 } });
      await settled();
      expect(call.messages('stats')).to.deep.equal([
        {
          request_id: '42',
          read: 100,
          delivered: 60,
          dropped_client_queue: 4,
          kernel_overflows: 1,
          dropped_rate_limit: 7,
          filtered: 20,
          coalesced: 9,
          decided_by_rule: 8,
          decided_by_client: 5,
          decided_by_timeout: 6,
          decided_by_daemon: 10,
          pending: 2,
          verdicts_refused: 0,
          consumers: 0,
          reassigned: 0,
          gap_sequences: 0,
        },
      ]);
      expect(call.status).to.equal(undefined);
    });

    it('reads counters a watch does not keep yet as 0', async () => {
      const { open, send } = setup();
      const call = open();
      send(call, { subscribe: NOTIF });
      await settled();
      send(call, { get_stats: {} });
      await settled();
      expect(call.messages('stats')[0]).to.deep.include({ request_id: '0', filtered: 0, coalesced: 0, dropped_rate_limit: 0 });
    });

    it('answers mark requests, ReplaceRules and GetStats in the order they were sent', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: PERM });
      await settled();
      send(call, { add_mark: { request_id: 1, mark: { path: '/srv', events: ['EVENT_TYPE_OPEN_PERM'] } } });
      send(call, { get_stats: { request_id: 2 } });
      send(call, { replace_rules: { request_id: 3, rules: [DENY_KEYS] } });
      send(call, { get_stats: { request_id: 4 } });
      await settled();
      const answers = call.written.filter((m): m is WatchResponse => !Buffer.isBuffer(m) && !m.subscribed);
      expect(answers.map((m) => (m.mark_result ? `mark ${m.mark_result.request_id}` : `stats ${m.stats!.request_id}`))).to.deep.equal(['mark 1', 'stats 2', 'mark 3', 'stats 4']);
      expect(factory.opened[0].marks).to.have.length(1);
    });

    it('refuses ReplaceRules and GetStats before Subscribed, naming them', async () => {
      const { open, send } = setup({ deferred: true });
      const early = open();
      send(early, { get_stats: { request_id: 1 } });
      expect(code(early)).to.equal('FAILED_PRECONDITION');
      expect(early.status!.details).to.equal('get_stats sent before Subscribe; send Subscribe first');
      const waiting = open();
      send(waiting, { subscribe: PERM });
      send(waiting, { replace_rules: { request_id: 1 } });
      expect(code(waiting)).to.equal('FAILED_PRECONDITION');
      expect(waiting.status!.details).to.equal('replace_rules sent before Subscribed was received; wait for it');
    });

    it('gives the watch the delivery options of Subscribe', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: { ...NOTIF, process_details: 'PROCESS_DETAILS_BASIC', coalesce_ms: 100, max_events_per_second: 500, exclude: [{ comms: ['cron'] }] } });
      await settled();
      const o = factory.opened[0].options;
      expect([o.processDetails, o.coalesceMs, o.maxEventsPerSecond]).to.deep.equal(['basic', 100, 500]);
      expect(o.selection!.exclude[0].comms).to.deep.equal(['cron']);
      expect(call.status).to.equal(undefined);
    });

    it('sends a rate-limit overflow with its source', async () => {
      const { open, send, factory } = setup();
      const call = open();
      send(call, { subscribe: NOTIF });
      await settled();
      factory.opened[0].sink!.sendOverflow({ source: 'rate_limit', dropped: 30, total: 45, seq: 12 });
      expect(call.messages('overflow')).to.deep.equal([{ source: 'OVERFLOW_SOURCE_RATE_LIMIT', dropped: 30, total: 45, sequence: 12 }]);
    });

    it('audits rule decisions with the rule\'s index, and rule replacements', async () => {
      const { open, send, factory, service } = setup();
      const records: Array<[string, Record<string, unknown>]> = [];
      service.audit = { record: (kind, fields) => records.push([kind, fields]) };
      const call = open();
      send(call, { subscribe: { ...PERM, rules: [{ decision: 'DECISION_ALLOW' }, DENY_KEYS] } });
      await settled();
      const w = factory.opened[0];
      const ev = { mask: K.FAN_OPEN_PERM, pid: 9, fd: -1, deleted: false, isDir: false, process: unknownProcess(9), timeMs: 0, path: Buffer.from('/tmp/a.key') };
      w.options.onDecision!({ id: 5, ev, permission: true, needsVerdict: false, ruleDecision: { decision: 'deny', index: 1 } }, false, 'rule', 0.1);
      w.options.onDecision!({ id: 6, ev, permission: true, needsVerdict: false }, true, 'client', 0.2);
      send(call, { replace_rules: { request_id: 1, exclude: [{ paths: ['*.tmp'] }] } });
      await settled();
      const [opened] = records.filter(([k]) => k === 'watch_opened').map(([, f]) => f);
      expect(opened).to.deep.include({ include: 0, exclude: 0, rules: 2 });
      const decisions = records.filter(([k]) => k === 'decision').map(([, f]) => f);
      expect(decisions[0]).to.deep.include({ event: 5, decision: 'deny', decided_by: 'rule', rule: 1, path: '/tmp/a.key' });
      expect(decisions[1]).to.deep.include({ event: 6, decided_by: 'client' });
      expect(decisions[1]).to.not.have.property('rule');
      const replaced = records.filter(([k]) => k === 'rules_replaced').map(([, f]) => f);
      expect(replaced).to.have.length(1);
      expect(replaced[0]).to.deep.include({ watch: w.id, identity: 'local', include: 0, exclude: 1, rules: 0 });
    });
  });
});
