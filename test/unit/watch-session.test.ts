// The Watch stream's state machine, with a fake call and a fake watch
// factory: no root, no kernel, no FFI. Each test plays one interleaving of
// requests, preparations, cancels and shutdown, and checks the stream's
// status, the watch (opened or not, closed how) and the registry's slots.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import { Authorizer } from '../../src/api/policy';
import { FanotifyService, type ServiceLimits } from '../../src/api/service';
import type { WatchCall } from '../../src/api/watch-session';
import type { WatchRequest } from '../../src/api/gen/fanotify/v1/WatchRequest';
import { FakeCall, FakeFactory, fakeKernel, settled, silentLog } from '../fixtures/fake-watches';
import { watchRequest } from '../fixtures/messages';

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
    for (const kind of ['subscribe', 'verdicts', 'add_mark', 'remove_mark', 'flush_marks']) expect(call.status!.details).to.include(kind);
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
});
