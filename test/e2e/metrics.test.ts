// /metrics scraped after a workload: the counts match what the workload did.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { runChild, WatchStream, withDaemon } from '../fixtures/harness';
import { scrape } from '../fixtures/metrics';
import { waitFor } from '../fixtures/wait';

describe('e2e: metrics', function () {
  this.timeout(60_000);
  it('counts decisions, responses, events and watches as the workload did', async () => {
    await withDaemon(['--metrics', '127.0.0.1:0'], async ({ daemon, client, dir }) => {
      const address = /"metrics":"([^"]+)"/.exec(daemon.logs.join('\n'))![1];
      for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(dir, `f${i}`), 'x');
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
      // f0-f4 allowed, f5-f7 denied.
      s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, Number(ev.path.slice(-1)) < 5 ? 'DECISION_ALLOW' : 'DECISION_DENY');
      await s.subscribed();
      for (let i = 0; i < 8; i++) await runChild('cat', [path.join(dir, `f${i}`)]).done;
      const m = await scrape(address);
      expect(m.get('fanotifyd_permission_decisions_total{decided_by="client"}')).to.equal(8);
      expect(m.get('fanotifyd_permission_decisions_total{decided_by="timeout"}')).to.equal(0);
      expect(m.get('fanotifyd_permission_responses_total{outcome="allow"}')).to.equal(5);
      expect(m.get('fanotifyd_permission_responses_total{outcome="deny"}')).to.equal(3);
      expect(m.get('fanotifyd_events_read_total')).to.equal(8);
      expect(m.get('fanotifyd_events_sent_total')).to.equal(8);
      expect(m.get('fanotifyd_active_watches')).to.equal(1);
      expect(m.get('fanotifyd_pending_permission_events')).to.equal(0);
      expect(m.get('fanotifyd_verdict_latency_seconds_count')).to.equal(8);
      expect(m.get('process_open_fds')).to.be.greaterThan(0);
      // Totals outlive their watch.
      s.cancel();
      const after = await waitFor(async () => {
        const m = await scrape(address);
        return m.get('fanotifyd_active_watches') === 0 && m;
      }, 5000, 'fanotifyd_active_watches 0');
      expect(after.get('fanotifyd_permission_decisions_total{decided_by="client"}')).to.equal(8);
    });
  });
});
