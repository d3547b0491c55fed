// The pending ledger's deadlines on a clock moved by hand: a wall-clock
// step (Date.now jumping an hour either way) neither times out an event
// early nor holds it past its timeout.
import { expect } from 'chai';
import { PendingLedger } from '../../src/watch/pending';
import { FakeClock, FakeTimers, withWallClockStep } from '../fixtures/fake-clock';

const HOUR = 3600_000;

function ledger(timeoutMs = 1000) {
  const clock = new FakeClock(5000);
  const timers = new FakeTimers();
  const expired: string[] = [];
  const l = new PendingLedger<string>(timeoutMs, (_id, item) => expired.push(item), clock, timers);
  return { l, clock, timers, expired };
}

describe('unit: pending ledger', () => {
  it('arms one timer at the oldest deadline and answers events in deadline order', () => {
    const { l, clock, timers, expired } = ledger();
    l.add(1, 'a', clock.now());
    expect(timers.delay).to.equal(1000);
    clock.advance(400);
    l.add(2, 'b', clock.now());
    expect(timers.armed.size).to.equal(1);
    clock.advance(600);
    timers.fire();
    expect(expired).to.deep.equal(['a']);
    // Re-armed for b's deadline, 400 ms on.
    expect(timers.delay).to.equal(400);
    clock.advance(400);
    timers.fire();
    expect(expired).to.deep.equal(['a', 'b']);
    expect([l.size, timers.armed.size]).to.deep.equal([0, 0]);
  });

  it('measures the deadline from when the event was read, not from when it was added', () => {
    const { l, clock, timers } = ledger();
    const readAt = clock.now();
    clock.advance(300);
    l.add(1, 'a', readAt);
    expect(timers.delay).to.equal(700);
  });

  it('does not time out an event early when the wall clock steps forward', () => {
    const { l, clock, timers, expired } = ledger();
    withWallClockStep(0, () => l.add(1, 'a', clock.now()));
    clock.advance(999);
    withWallClockStep(HOUR, () => {
      // A wake at any moment (the timer, or another event's) finds it in time.
      l.expire();
      timers.fire();
    });
    expect(expired).to.deep.equal([]);
    expect(l.size).to.equal(1);
    clock.advance(1);
    timers.fire();
    expect(expired).to.deep.equal(['a']);
  });

  it('does not hold an event past its timeout when the wall clock steps back', () => {
    const { l, clock, timers, expired } = ledger();
    l.add(1, 'a', clock.now());
    clock.advance(1000);
    withWallClockStep(-HOUR, () => timers.fire());
    expect(expired).to.deep.equal(['a']);
    expect(timers.armed.size).to.equal(0);
  });

  it('gives a verdict-taken event no timeout, and takeAll empties the ledger and stops the timer', () => {
    const { l, clock, timers, expired } = ledger();
    l.add(1, 'a', clock.now());
    l.add(2, 'b', clock.now());
    l.add(3, 'c', clock.now());
    expect(l.take(2)).to.equal('b');
    expect(l.take(2)).to.equal(undefined);
    expect(l.takeAll()).to.deep.equal([
      [1, 'a'],
      [3, 'c'],
    ]);
    expect([l.size, timers.armed.size]).to.deep.equal([0, 0]);
    clock.advance(5000);
    l.expire();
    expect(expired).to.deep.equal([]);
  });

  it('keeps one timer, at the right deadline, when an expiry adds an event', () => {
    const clock = new FakeClock();
    const timers = new FakeTimers();
    const l: PendingLedger<string> = new PendingLedger<string>(
      1000,
      (id, item) => {
        if (item === 'a') l.add(9, 'late', clock.now());
      },
      clock,
      timers,
    );
    l.add(1, 'a', 0);
    clock.advance(500);
    l.add(2, 'b', clock.now());
    clock.advance(500);
    timers.fire();
    // b (deadline 1500) is next, not the event added during the expiry (2000).
    expect(timers.delay).to.equal(500);
  });
});
