// max_events_per_second on a clock under the test's hand: the limit per
// second, and the drops counted and told to the client as an Overflow in
// stream order.
import { expect } from 'chai';
import { Outbox } from '../../src/watch/outbox';
import { Sequence } from '../../src/watch/sequence';
import { RateLimit } from '../../src/watch/rate-limit';
import type { OverflowNotice, WatchEvent, WatchStats } from '../../src/watch/types';
import { FakeClock } from '../fixtures/fake-clock';
import { objectSink } from '../fixtures/harness';

describe('unit: rate limit', () => {
  it('lets the limit through in each second of the monotonic clock and no more', () => {
    const clock = new FakeClock(5000);
    const limit = new RateLimit(3);
    const admitted = () => [1, 2, 3, 4, 5].map(() => limit.admit(clock.now())).filter(Boolean).length;
    expect(admitted()).to.equal(3);
    clock.advance(999);
    expect(limit.admit(clock.now())).to.equal(false);
    clock.advance(1);
    expect(admitted()).to.equal(3);
    clock.advance(10_000);
    expect(admitted()).to.equal(3);
  });

  it('counts what it drops and tells the client where, one notice per run of drops', () => {
    const clock = new FakeClock(0);
    const stats = { droppedRateLimit: 0, eventsSent: 0 } as WatchStats;
    const outbox = new Outbox({ maxBatchEvents: 100, queueCapacity: 100, maxEventsPerSecond: 2 }, stats, new Sequence());
    const seen: (number | OverflowNotice)[] = [];
    outbox.attach(
      objectSink(
        (batch) => (seen.push(...batch.map((e) => e.id)), true),
        (n) => (seen.push({ ...n }), true),
      ),
    );
    let id = 1;
    const offer = () => {
      const item = { id: id++, ev: {} as never, permission: false, needsVerdict: false } as WatchEvent;
      if (outbox.withinRate(clock.now())) outbox.pushNotification(item);
    };
    for (let i = 0; i < 5; i++) offer();
    outbox.flush();
    clock.advance(1000);
    offer();
    offer();
    offer();
    outbox.flush();
    expect(seen).to.deep.equal([1, 2, { source: 'rate_limit', dropped: 3, total: 3, seq: 3 }, 6, 7, { source: 'rate_limit', dropped: 1, total: 4, seq: 6 }]);
    expect(stats.droppedRateLimit).to.equal(4);
  });
});
