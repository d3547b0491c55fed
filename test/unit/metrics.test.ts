// /metrics summed from the watches' own counters, with a stand-in service:
// every label of who decided, and the counters of filters, coalescing and
// the rate limit (0 for a watch that keeps none).
import { expect } from 'chai';
import type { FanotifyService } from '../../src/api/service';
import { createMetrics } from '../../src/daemon/metrics';
import { Journal } from '../../src/watch/journal';
import { JournalBudget } from '../../src/watch/journal-budget';
import type { WatchStats } from '../../src/watch/types';
import { FakeWatch } from '../fixtures/fake-watches';

function stats(extra: Partial<WatchStats> & Record<string, unknown>): WatchStats {
  const w = new FakeWatch('w', { groupClass: 'content', marks: [] }, { verdictTimeoutMs: 1, timeoutDecision: 'allow', maxBatchEvents: 1, queueCapacity: 1 }, () => undefined);
  w.stats = extra;
  return w.snapshot();
}

async function scrape(totals: WatchStats[], resumeBudget?: JournalBudget): Promise<Map<string, number>> {
  const service = { totals: () => totals, liveStats: () => [], activeWatches: 0, limits: { resumeBudget } } as unknown as FanotifyService;
  const text = await createMetrics(() => service).registry.metrics();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return values;
}

describe('unit: metrics', () => {
  it('sums decisions by every cause, rule and filter included', async () => {
    const decisions = { client: 1, timeout: 2, disconnect: 3, shutdown: 4, self: 5, limit: 6, rule: 7, filter: 8 };
    const m = await scrape([stats({ decisions }), stats({ decisions })]);
    for (const [by, n] of Object.entries(decisions)) expect(m.get(`fanotifyd_permission_decisions_total{decided_by="${by}"}`), by).to.equal(2 * n);
  });

  it('counts filtered and coalesced events and rate-limit drops apart from client-queue drops', async () => {
    const m = await scrape([stats({ filtered: 20, coalesced: 5, droppedRateLimit: 3, notificationsDropped: 4 }), stats({ filtered: 1 }), stats({})]);
    expect(m.get('fanotifyd_events_filtered_total')).to.equal(21);
    expect(m.get('fanotifyd_events_coalesced_total')).to.equal(5);
    expect(m.get('fanotifyd_notifications_dropped_total{reason="rate_limit"}')).to.equal(3);
    expect(m.get('fanotifyd_notifications_dropped_total{reason="client_queue"}')).to.equal(4);
  });

  it('reports the resume buffers: the total, its limit, each watch\'s bytes, and the chunks the total took', async () => {
    const chunk = 64 * 1024 + 16 * 1024;
    const budget = new JournalBudget(3 * chunk);
    const busy = new Journal(1 << 30, 0, budget, { watch: 'w1', name: 'busy' });
    const quiet = new Journal(1 << 30, 0, budget, { watch: 'w2', name: 'quiet' });
    quiet.appendEvent(Buffer.alloc(1000), undefined, 1);
    for (let s = 1; s <= 5 * 65; s++) busy.appendEvent(Buffer.alloc(1000), undefined, s);
    const m = await scrape([], budget);
    expect(m.get('fanotifyd_resume_buffer_bytes')).to.equal(3 * chunk);
    expect(m.get('fanotifyd_resume_buffer_limit_bytes')).to.equal(3 * chunk);
    expect(m.get('fanotifyd_resume_buffer_watch_bytes{watch="w1",name="busy"}')).to.equal(2 * chunk);
    expect(m.get('fanotifyd_resume_buffer_watch_bytes{watch="w2",name="quiet"}')).to.equal(chunk);
    expect(m.get('fanotifyd_resume_buffer_forced_drops_total')).to.equal(3);
    expect(m.get('fanotifyd_resume_buffer_forced_drop_bytes_total')).to.equal(3 * chunk);
  });
});
