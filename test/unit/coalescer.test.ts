// Coalescing on a clock and timers under the test's hand: repeats within a
// window leave as one with their count, at the window's end; the held map
// stays bounded.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { bareEvent } from '../../src/host/event';
import { Coalescer } from '../../src/watch/coalescer';
import type { WatchEvent, WatchStats } from '../../src/watch/types';
import { FakeClock, FakeTimers } from '../fixtures/fake-clock';

let nextId = 1;
function event(path: string | undefined, opts: { mask?: number; pid?: number } = {}): WatchEvent {
  const ev = bareEvent({ mask: opts.mask ?? K.FAN_MODIFY, pid: opts.pid ?? 7, fd: K.FAN_NOFD } as never, 0);
  if (path !== undefined) ev.path = Buffer.from(path);
  return { id: nextId++, ev, permission: false, needsVerdict: false };
}

function rig(windowMs = 100, maxHeld?: number) {
  const clock = new FakeClock(1000);
  const timers = new FakeTimers();
  const stats = { coalesced: 0 } as WatchStats;
  const out: { item: WatchEvent; at: number }[] = [];
  let afterTimer = 0;
  const c = new Coalescer({
    windowMs,
    clock,
    timers,
    stats,
    maxHeld,
    emit: (item, now) => out.push({ item, at: now }),
    afterTimer: () => afterTimer++,
    onError: (err) => {
      throw err;
    },
  });
  const add = (e: WatchEvent) => c.add(e, clock.now());
  return { clock, timers, stats, out, c, add, afterTimers: () => afterTimer };
}

describe('unit: coalescer', () => {
  it('sends repeats within the window on as one, with their count, when the window ends', () => {
    const r = rig(100);
    const first = event('/d/a');
    r.add(first);
    r.clock.advance(40);
    r.add(event('/d/a'));
    r.clock.advance(59);
    r.add(event('/d/a'));
    expect(r.out).to.have.length(0);
    expect(r.timers.delay).to.equal(100);
    r.clock.advance(1);
    r.timers.fire();
    expect(r.out.map((o) => o.item)).to.deep.equal([first]);
    expect(first.count).to.equal(3);
    expect(r.stats.coalesced).to.equal(2);
    expect(r.afterTimers()).to.equal(1);
    expect(r.c.size).to.equal(0);
  });

  it('keeps apart events that differ in bits, path or pid, and sends them in the order they were first read', () => {
    const r = rig(100);
    const a = event('/d/a');
    const b = event('/d/a', { mask: K.FAN_CLOSE_WRITE });
    const c = event('/d/b');
    const d = event('/d/a', { pid: 8 });
    for (const e of [a, b, c, d, event('/d/a'), event('/d/b')]) r.add(e);
    r.clock.advance(100);
    r.timers.fire();
    expect(r.out.map((o) => o.item)).to.deep.equal([a, b, c, d]);
    expect([a, b, c, d].map((e) => e.count ?? 1)).to.deep.equal([2, 1, 2, 1]);
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
    expect(r.out.map((o) => o.item)).to.deep.equal([a]);
    expect(a.count).to.equal(undefined);
    r.c.expire(r.clock.now() + 100);
    expect(r.out.map((o) => o.item)).to.deep.equal([a, b]);
  });

  it('sends an event with no path, or a rename with both names, on at once', () => {
    const r = rig(100);
    const noPath = event(undefined);
    r.add(noPath);
    const rename = event('/d/a', { mask: K.FAN_RENAME });
    rename.ev.oldEntry = { name: Buffer.from('a'), id: {} as never };
    rename.ev.newEntry = { name: Buffer.from('b'), id: {} as never };
    r.add(rename);
    expect(r.out.map((o) => o.item)).to.deep.equal([noPath, rename]);
    expect(r.c.size).to.equal(0);
  });

  it('holds a bounded number of keys, sending the oldest on early to make room', () => {
    const r = rig(1000, 3);
    const events = ['/a', '/b', '/c', '/d', '/e'].map((p) => event(p));
    for (const e of events) r.add(e);
    expect(r.c.size).to.equal(3);
    expect(r.out.map((o) => o.item)).to.deep.equal(events.slice(0, 2));
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
