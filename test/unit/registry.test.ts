// The registry's limits, without a kernel: a slot is taken synchronously
// and counts against every limit until it is released.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import type { ClientIdentity } from '../../src/api/identity';
import { Authorizer, type PolicyRule } from '../../src/api/policy';
import { WatchRegistry, type NamedWatch, type WatchSlot } from '../../src/api/registry';

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

const rule = (match: string, maxWatches: number): PolicyRule => ({ match, paths: ['/'], scopes: ['inode'], permission: false, maxWatches, getInfo: false, attach: [] });

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
  /** The grant check with no policy file: only a watch's creator may attach. */
  const noPolicy = (who: ClientIdentity) => (_s: unknown, d: NamedWatch) => {
    new Authorizer().checkAttach(who, { name: d.name, owner: d.identity, groupClass: 'notif', marks: [] });
  };

  it('keeps a name unique per client, finds it for its creator only, and forgets it when the watch closes', () => {
    const r = new WatchRegistry({ maxWatches: 10, maxWatchesPerIdentity: 10 });
    const opened: string[] = [];
    const closed: string[] = [];
    r.hooks = { opened: (w) => opened.push(w.name), closed: (w) => closed.push(w.name) };
    const slot = r.reserve(alice, undefined, 'collector');
    refused(() => r.findNamed(alice, 'collector', noPolicy(alice)), grpc.status.UNAVAILABLE, /still opening/);
    refused(() => r.reserve(alice, undefined, 'collector'), grpc.status.ALREADY_EXISTS, /already has a watch named "collector"; send Attach/);
    // Another client may use the same name for a watch of its own.
    const bobs = r.reserve(bob, undefined, 'collector');
    slot.activate(watchStub(), subscribe, request, 1000);
    expect(opened).to.deep.equal(['collector']);
    expect(r.findNamed(alice, 'collector', noPolicy(alice))).to.equal(slot);
    expect(r.namedWatches).to.equal(2);
    bobs.release();
    refused(() => r.findNamed(bob, 'collector', noPolicy(bob)), grpc.status.PERMISSION_DENIED, /belongs to another client; only the client that created it may attach/);
    refused(() => r.findNamed(alice, 'other', noPolicy(alice)), grpc.status.NOT_FOUND, /no watch named "other"/);
    expect(r.named().map((w) => [w.name, w.lingerMs])).to.deep.equal([['collector', 1000]]);
    slot.release();
    expect(closed).to.deep.equal(['collector']);
    refused(() => r.findNamed(alice, 'collector', noPolicy(alice)), grpc.status.NOT_FOUND, /no watch named/);
    r.reserve(alice, undefined, 'collector');
  });

  it('counts a mark added to a named watch at once and has it recorded before it resolves; a failed record refuses it', async () => {
    const r = new WatchRegistry({ maxWatches: 10, maxWatchesPerIdentity: 10 });
    const recorded: number[] = [];
    let fail = false;
    r.hooks = {
      marksAdded: async (w) => {
        if (fail) throw new Error('disk full');
        recorded.push(w.addedMarks.length);
      },
    };
    const slot = r.reserve(alice, undefined, 'collector');
    slot.activate(watchStub(), subscribe, request, 1000, [{ path: '/restored', scope: 'inode', mask: 0x20, flags: 0 }]);
    await slot.addMark({ path: '/added', scope: 'inode', mask: 0x20, flags: 0 });
    expect(recorded).to.deep.equal([2]);
    fail = true;
    let refusedWith: unknown;
    await slot.addMark({ path: '/another', scope: 'inode', mask: 0x20, flags: 0 }).catch((err: unknown) => (refusedWith = err));
    expect((refusedWith as Error).message).to.equal('disk full');
    // Counted all the same: a grant check can only be stricter for it.
    expect(slot.definition!.addedMarks.map((m) => m.path)).to.deep.equal(['/restored', '/added', '/another']);
  });

  it('keeps a watch restored without a list of its added marks as one whose marks are not known', () => {
    const r = new WatchRegistry({ maxWatches: 10, maxWatchesPerIdentity: 10 });
    const known = r.reserve(alice, undefined, 'a');
    known.activate(watchStub(), subscribe, request, 1000, []);
    const unknown = r.reserve(alice, undefined, 'b');
    unknown.activate(watchStub(), subscribe, request, 1000, 'unknown');
    expect([known.definition!.marksKnown, unknown.definition!.marksKnown, unknown.definition!.addedMarks]).to.deep.equal([true, false, []]);
  });

  it('finds another client\'s watch for a client the grant lets join it, and only that one', () => {
    const carol: ClientIdentity = { kind: 'certificate', names: ['CN=carol'] };
    const r = new WatchRegistry({ maxWatches: 10, maxWatchesPerIdentity: 10 });
    const open = (who: ClientIdentity, name: string) => {
      const slot = r.reserve(who, undefined, name);
      slot.activate(watchStub(), subscribe, request, 1000);
      return slot;
    };
    const alices = open(alice, 'export');
    // The grant sees the watch's definition; here it lets bob join alice's watches only.
    const seen: string[] = [];
    const alicesOnly = (s: WatchSlot, d: NamedWatch) => {
      seen.push(d.identity.names[0]);
      if (d.identity !== alice) throw new ApiError(grpc.status.PERMISSION_DENIED, `not ${d.identity.names[0]}'s`);
      expect(s.definition).to.equal(d);
    };
    expect(r.findNamed(bob, 'export', alicesOnly)).to.equal(alices);
    // Attaching takes no slot: nothing new counts against any limit.
    expect(r.reserved).to.equal(1);
    const carols = open(carol, 'export');
    expect(r.findNamed(bob, 'export', alicesOnly)).to.equal(alices);
    expect(seen).to.deep.equal(['CN=alice', 'CN=alice', 'CN=carol']);
    // Granted both: which one is meant cannot be told.
    refused(() => r.findNamed(bob, 'export', () => undefined), grpc.status.FAILED_PRECONDITION, /2 other clients have a watch named "export" that client .*CN=bob.* may attach to/);
    // Granted neither: the grant's own refusal is what the client is told.
    refused(() => r.findNamed(bob, 'export', (_s, d) => { throw new ApiError(grpc.status.PERMISSION_DENIED, `not ${d.identity.names[0]}'s`); }), grpc.status.PERMISSION_DENIED, /^not CN=alice's$/);
    // A client's own watch of the name comes first, without asking the grant.
    const bobs = open(bob, 'export');
    expect(r.findNamed(bob, 'export', () => expect.fail('asked the grant for an own watch'))).to.equal(bobs);
    bobs.release();
    // A watch still opening is not offered; one that closed is not found.
    carols.release();
    alices.release();
    const opening = r.reserve(carol, undefined, 'export');
    refused(() => r.findNamed(bob, 'export', () => undefined), grpc.status.UNAVAILABLE, /still opening/);
    opening.release();
    const closing = open(carol, 'export');
    (closing.watch as { isClosed: boolean }).isClosed = true;
    refused(() => r.findNamed(bob, 'export', () => undefined), grpc.status.NOT_FOUND, /it closed/);
  });
});
