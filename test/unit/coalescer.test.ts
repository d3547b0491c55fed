// Coalescing on a clock and timers under the test's hand: repeats within a
// window leave as one with their count, at the window's end; the held map
// stays bounded.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { bareEvent } from '../../src/host/event';
import { Coalescer } from '../../src/watch/coalescer';
import type { EncodedEvent, WatchEvent, WatchStats } from '../../src/watch/types';
import { FakeClock, FakeTimers } from '../fixtures/fake-clock';

let nextId = 1;
function event(path: string | undefined, opts: { mask?: number; pid?: number } = {}): WatchEvent {
  const ev = bareEvent({ mask: opts.mask ?? K.FAN_MODIFY, pid: opts.pid ?? 7, fd: K.FAN_NOFD } as never, 0);
  if (path !== undefined) ev.path = Buffer.from(path);
  return { id: nextId++, ev, permission: false, needsVerdict: false };
}

/** An encoder that, like the sink's, writes every event into the same buffer: valid until the next call. */
const scratch = Buffer.alloc(64);
function encode(it: WatchEvent): EncodedEvent {
  const n = scratch.write(JSON.stringify({ id: it.id, count: it.count ?? 1 }));
  return { bytes: scratch.subarray(0, n) };
}

function rig(windowMs = 100, maxHeld?: number) {
  const clock = new FakeClock(1000);
  const timers = new FakeTimers();
  const stats = { coalesced: 0 } as WatchStats;
  /** What left, decoded: [event id, count]. */
  const out: [number, number][] = [];
  let afterTimer = 0;
  const c = new Coalescer({
    windowMs,
    clock,
    timers,
    stats,
    maxHeld,
    encode,
    emit: (e) => {
      const { id, count } = JSON.parse(Buffer.from(e.bytes).toString());
      out.push([id, count]);
    },
    afterTimer: () => afterTimer++,
    onError: (err) => {
      throw err;
    },
  });
  const add = (e: WatchEvent) => c.add(e, clock.now());
  return { clock, timers, stats, out, c, add, afterTimers: () => afterTimer };
}

describe('unit: coalescer', () => {
  it('sends repeats within the window on as one, the last with the count of all, when the window ends', () => {
    const r = rig(100);
    r.add(event('/d/a'));
    r.clock.advance(40);
    r.add(event('/d/a'));
    r.clock.advance(59);
    const last = event('/d/a');
    r.add(last);
    expect(r.out).to.have.length(0);
    expect(r.timers.delay).to.equal(100);
    r.clock.advance(1);
    r.timers.fire();
    expect(r.out).to.deep.equal([[last.id, 3]]);
    expect(r.stats.coalesced).to.equal(2);
    expect(r.afterTimers()).to.equal(1);
    expect(r.c.size).to.equal(0);
  });

  it('sends an event nothing folded into as it was encoded when read', () => {
    const r = rig(100);
    const a = event('/d/a');
    r.add(a);
    // Another encoding overwrites the encoder's buffer meanwhile.
    r.add(event('/d/b'));
    r.clock.advance(100);
    r.timers.fire();
    expect(r.out[0]).to.deep.equal([a.id, 1]);
    expect(a.count).to.equal(undefined);
  });

  it('keeps apart events that differ in bits, path or pid, and sends them in the order their windows opened', () => {
    const r = rig(100);
    const a = event('/d/a');
    const b = event('/d/a', { mask: K.FAN_CLOSE_WRITE });
    const c = event('/d/b');
    const d = event('/d/a', { pid: 8 });
    const a2 = event('/d/a');
    const c2 = event('/d/b');
    for (const e of [a, b, c, d, a2, c2]) r.add(e);
    r.clock.advance(100);
    r.timers.fire();
    expect(r.out).to.deep.equal([
      [a2.id, 2],
      [b.id, 1],
      [c2.id, 2],
      [d.id, 1],
    ]);
    expect(r.stats.coalesced).to.equal(2);
  });

  it('starts a new window for a repeat read after the last one ended', () => {
    const r = rig(100);
    const a = event('/d/a');
    r.add(a);
    r.clock.advance(150);
    // The timer has not fired yet (a busy loop): the old one leaves first, then the new one is held.
    const b = event('/d/a');
    r.add(b);
    expect(r.out).to.deep.equal([[a.id, 1]]);
    r.c.expire(r.clock.now() + 100);
    expect(r.out).to.deep.equal([
      [a.id, 1],
      [b.id, 1],
    ]);
  });

  it('sends an event with no path, or a rename with both names, on at once', () => {
    const r = rig(100);
    const noPath = event(undefined);
    r.add(noPath);
    const rename = event('/d/a', { mask: K.FAN_RENAME });
    rename.ev.oldEntry = { name: Buffer.from('a'), id: {} as never };
    rename.ev.newEntry = { name: Buffer.from('b'), id: {} as never };
    r.add(rename);
    expect(r.out).to.deep.equal([
      [noPath.id, 1],
      [rename.id, 1],
    ]);
    expect(r.c.size).to.equal(0);
  });

  it('holds a bounded number of keys, sending the oldest on early to make room', () => {
    const r = rig(1000, 3);
    const events = ['/a', '/b', '/c', '/d', '/e'].map((p) => event(p));
    for (const e of events) r.add(e);
    expect(r.c.size).to.equal(3);
    expect(r.out).to.deep.equal(events.slice(0, 2).map((e) => [e.id, 1]));
  });

  it('re-arms its one timer for the next window, and forgets everything when closed', () => {
    const r = rig(100);
    r.add(event('/a'));
    r.clock.advance(30);
    r.add(event('/b'));
    r.clock.advance(70);
    r.timers.fire();
    expect(r.out).to.have.length(1);
    expect(r.timers.delay).to.equal(30);
    r.c.close();
    expect(r.timers.armed.size).to.equal(0);
    expect(r.c.size).to.equal(0);
  });
});
