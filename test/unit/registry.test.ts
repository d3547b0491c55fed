// The registry's limits, without a kernel: a slot is taken synchronously
// and counts against every limit until it is released.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import type { ClientIdentity } from '../../src/api/identity';
import { Authorizer, type PolicyRule } from '../../src/api/policy';
import { WatchRegistry } from '../../src/api/registry';

const local: ClientIdentity = { kind: 'local', names: ['local'] };
const alice: ClientIdentity = { kind: 'certificate', names: ['CN=alice'] };
const bob: ClientIdentity = { kind: 'certificate', names: ['CN=bob'] };

function refused(fn: () => unknown, status: grpc.status, msg: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a refusal').to.be.instanceOf(ApiError);
  expect(grpc.status[(err as ApiError).status]).to.equal(grpc.status[status]);
  expect((err as Error).message).to.match(msg);
}

const rule = (match: string, maxWatches: number): PolicyRule => ({ match, paths: ['/'], scopes: ['inode'], permission: false, maxWatches, getInfo: false });

describe('unit: watch registry (limits)', () => {
  it('holds at most --max-watches slots, reserved or open, and frees one on release', () => {
    const r = new WatchRegistry({ maxWatches: 2, maxWatchesPerIdentity: 10 });
    const a = r.reserve(local);
    r.reserve(bob);
    refused(() => r.reserve(alice), grpc.status.RESOURCE_EXHAUSTED, /already serves 2 watches, its limit \(--max-watches\)/);
    a.release();
    a.release(); // idempotent: frees one place, not two
    r.reserve(alice);
    refused(() => r.reserve(alice), grpc.status.RESOURCE_EXHAUSTED, /--max-watches/);
    expect(r.reserved).to.equal(2);
  });

  it('limits each identity, and tells identities apart by all their names', () => {
    const r = new WatchRegistry({ maxWatches: 100, maxWatchesPerIdentity: 2 });
    r.reserve(alice);
    r.reserve(alice);
    refused(() => r.reserve(alice), grpc.status.RESOURCE_EXHAUSTED, /client certificate \["CN=alice"\] already holds 2 watches/);
    refused(() => r.reserve({ kind: 'certificate', names: ['CN=alice'] }), grpc.status.RESOURCE_EXHAUSTED, /per client/);
    r.reserve(bob);
    // Same names joined differently are different clients.
    r.reserve({ kind: 'certificate', names: ['CN=alice', 'DNS:x'] });
    r.reserve({ kind: 'certificate', names: ['CN=alice,DNS:x'] });
    r.reserve(local);
    r.reserve(local);
    refused(() => r.reserve(local), grpc.status.RESOURCE_EXHAUSTED, /client "local" already holds 2 watches/);
  });

  it('limits the watches of all clients a policy rule matches, together', () => {
    const authorizer = new Authorizer([rule('CN=*', 2), rule('local', 5)]);
    const r = new WatchRegistry({ maxWatches: 100, maxWatchesPerIdentity: 100 }, (id) => authorizer.ruleFor(id));
    const certRule = authorizer.ruleFor(alice)!;
    r.reserve(alice, certRule);
    const second = r.reserve(bob, certRule);
    refused(() => r.reserve(alice, certRule), grpc.status.RESOURCE_EXHAUSTED, /policy rule #0 \("CN=\*"\) allows at most 2 concurrent watches/);
    r.reserve(local, authorizer.ruleFor(local));
    second.release();
    r.reserve(alice, certRule);
  });

  it('refuses every reservation once shutdown began', () => {
    const r = new WatchRegistry({ maxWatches: 100, maxWatchesPerIdentity: 100 });
    r.shutdown();
    refused(() => r.reserve(local), grpc.status.UNAVAILABLE, /shutting down/);
  });

  it('counts only opened slots as active watches, and keeps the statistics of closed ones', () => {
    const r = new WatchRegistry({ maxWatches: 100, maxWatchesPerIdentity: 100 });
    const slot = r.reserve(local);
    expect(r.activeWatches).to.equal(0);
    const stats = { eventsRead: 3 } as unknown as ReturnType<NonNullable<typeof slot.watch>['snapshot']>;
    const snapshot = () => ({ ...stats, decisions: { client: 1, timeout: 0, disconnect: 0, shutdown: 0, self: 0, limit: 0 } });
    slot.activate({ snapshot } as unknown as NonNullable<typeof slot.watch>);
    expect(r.activeWatches).to.equal(1);
    slot.release();
    expect(r.activeWatches).to.equal(0);
    expect(r.totals()).to.have.length(1);
    expect(r.totals()[0].eventsRead).to.equal(3);
    expect(() => slot.activate({} as NonNullable<typeof slot.watch>)).to.throw(/released/);
  });
});

describe('unit: watch registry (named watches)', () => {
  /** A stand-in for an open watch: the registry looks at nothing but isClosed and close. */
  const watchStub = () => ({ isClosed: false, close() {}, snapshot: () => ({}) }) as never;
  const subscribe = {} as never;
  const request = {} as never;

  it('keeps a name unique per client, finds it for its creator only, and forgets it when the watch closes', () => {
    const r = new WatchRegistry({ maxWatches: 10, maxWatchesPerIdentity: 10 });
    const opened: string[] = [];
    const closed: string[] = [];
    r.hooks = { opened: (w) => opened.push(w.name), closed: (w) => closed.push(w.name) };
    const slot = r.reserve(alice, undefined, 'collector');
    refused(() => r.findNamed(alice, 'collector'), grpc.status.UNAVAILABLE, /still opening/);
    refused(() => r.reserve(alice, undefined, 'collector'), grpc.status.ALREADY_EXISTS, /already has a watch named "collector"; send Attach/);
    // Another client may use the same name for a watch of its own.
    const bobs = r.reserve(bob, undefined, 'collector');
    slot.activate(watchStub(), subscribe, request, 1000);
    expect(opened).to.deep.equal(['collector']);
    expect(r.findNamed(alice, 'collector')).to.equal(slot);
    expect(r.namedWatches).to.equal(2);
    bobs.release();
    refused(() => r.findNamed(bob, 'collector'), grpc.status.PERMISSION_DENIED, /belongs to another client; only the client that created it may attach/);
    refused(() => r.findNamed(alice, 'other'), grpc.status.NOT_FOUND, /no watch named "other"/);
    expect(r.named().map((w) => [w.name, w.lingerMs])).to.deep.equal([['collector', 1000]]);
    slot.release();
    expect(closed).to.deep.equal(['collector']);
    refused(() => r.findNamed(alice, 'collector'), grpc.status.NOT_FOUND, /no watch named/);
    r.reserve(alice, undefined, 'collector');
  });
});
