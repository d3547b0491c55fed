// Prometheus metrics at /metrics (--metrics ADDR). Counters are summed from
// the watches' own statistics when scraped, so the event path does no extra
// work for them; only the verdict latency histogram is fed per verdict.
import * as http from 'node:http';
import * as client from 'prom-client';
import { collectedCounter, collectedGauge } from '../common/collected-metrics';
import type { FanotifyService } from '../api/service';
import type { JournalBudget } from '../watch/journal-budget';
import type { WatchStats } from '../watch/watch';
import type { AuditTrail } from './audit';
import { parseAddress } from './config';
import { ListenError } from './listeners';

export interface Metrics {
  registry: client.Registry;
  verdictLatency: client.Histogram;
}

/** A counter with one label, set from `values` (label value -> total) at each scrape. */
function labelledCounter(registry: client.Registry, name: string, help: string, label: string, values: () => Record<string, number>): void {
  new client.Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, n] of Object.entries(values())) this.inc({ [label]: value }, n);
    },
  });
}

/** The counters of filters, coalescing and the rate limit; a watch without them has none (0). */
const selectionCounters = (s: WatchStats) => s as WatchStats & Partial<Record<'filtered' | 'coalesced' | 'droppedRateLimit', number>>;

const DECIDED_BY = ['client', 'timeout', 'disconnect', 'shutdown', 'self', 'limit', 'rule', 'filter'] as const;

/** The watches' own counters, summed over open and closed watches at each scrape. */
function watchMetrics(registry: client.Registry, service: () => FanotifyService): void {
  const total = (pick: (s: WatchStats) => number) => service().totals().reduce((n, s) => n + pick(s), 0);
  const counter = (name: string, help: string, pick: (s: WatchStats) => number) => collectedCounter(registry, name, help, () => total(pick));
  counter('fanotifyd_events_read_total', 'Events read from the kernel.', (s) => s.eventsRead);
  counter('fanotifyd_events_sent_total', 'Events sent to clients.', (s) => s.eventsSent);
  counter('fanotifyd_kernel_overflows_total', 'FAN_Q_OVERFLOW events (the kernel queue was full).', (s) => s.kernelOverflows);
  counter('fanotifyd_malformed_records_total', 'Kernel records that did not decode cleanly.', (s) => s.malformedRecords + s.decodeErrors);
  counter('fanotifyd_ignored_verdicts_total', 'Verdicts for ids not pending on their watch.', (s) => s.unknownVerdicts);
  counter('fanotifyd_refused_verdicts_total', 'Verdicts refused: the stream that sent them was not sent the event (a shared permission watch).', (s) => s.verdictsRefused);
  counter('fanotifyd_reassigned_permission_events_total', 'Permission events moved to another stream of their watch when theirs ended.', (s) => s.reassigned);
  counter('fanotifyd_gap_sequences_total', 'Sequences streams were told they lost (Gap), summed over streams.', (s) => s.gapSequences);
  counter('fanotifyd_events_filtered_total', 'Events not delivered because of a watch\'s include or exclude, or outside its subtree.', (s) => selectionCounters(s).filtered ?? 0);
  counter('fanotifyd_events_coalesced_total', 'Notifications folded into an earlier one (Subscribe.coalesce_ms).', (s) => selectionCounters(s).coalesced ?? 0);
  labelledCounter(
    registry,
    'fanotifyd_notifications_dropped_total',
    'Notifications dropped, by reason (client_queue: the client did not read fast enough; rate_limit: past the watch\'s max_events_per_second).',
    'reason',
    () => ({
      client_queue: total((s) => s.notificationsDropped),
      rate_limit: total((s) => selectionCounters(s).droppedRateLimit ?? 0),
    }),
  );
  labelledCounter(registry, 'fanotifyd_permission_decisions_total', 'Permission events answered, by who decided.', 'decided_by', () =>
    Object.fromEntries(DECIDED_BY.map((by) => [by, total((s) => s.decisions[by])])),
  );
  labelledCounter(registry, 'fanotifyd_permission_responses_total', 'Permission responses written to the kernel, by outcome.', 'outcome', () => ({
    allow: total((s) => s.allowed),
    deny: total((s) => s.denied),
  }));
  collectedGauge(registry, 'fanotifyd_pending_permission_events', 'Permission events waiting for a verdict now.', () =>
    service().liveStats().reduce((n, s) => n + s.pending, 0),
  );
  collectedGauge(registry, 'fanotifyd_active_watches', 'Watches open now.', () => service().activeWatches);
  resumeBufferMetrics(registry, () => service().limits.resumeBudget);
}

/** The named watches' replay buffers: their total against --resume-buffer-total-bytes, each one's bytes, and what the total took. */
function resumeBufferMetrics(registry: client.Registry, budget: () => JournalBudget | undefined): void {
  collectedGauge(registry, 'fanotifyd_resume_buffer_bytes', 'Bytes the named watches\' replay buffers hold now, together.', () => budget()?.used ?? 0);
  collectedGauge(registry, 'fanotifyd_resume_buffer_limit_bytes', 'Bytes they may hold together (--resume-buffer-total-bytes).', () => budget()?.totalBytes ?? 0);
  new client.Gauge({
    name: 'fanotifyd_resume_buffer_watch_bytes',
    help: 'Bytes each named watch\'s replay buffer holds now (at most --max-watches series).',
    labelNames: ['watch', 'name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const j of budget()?.journals() ?? []) this.set({ watch: j.owner?.watch ?? '', name: j.owner?.name ?? '' }, j.charged);
    },
  });
  const counter = (name: string, help: string, value: (b: JournalBudget) => number) =>
    collectedCounter(registry, name, help, () => {
      const b = budget();
      return b && value(b);
    });
  counter('fanotifyd_resume_buffer_forced_drops_total', 'Replay-buffer chunks (about 170 events each) dropped because the total passed --resume-buffer-total-bytes.', (b) => b.forcedDrops);
  counter('fanotifyd_resume_buffer_forced_drop_bytes_total', 'Bytes of those chunks.', (b) => b.forcedDropBytes);
}

export function createMetrics(service: () => FanotifyService, audit?: AuditTrail): Metrics {
  const registry = new client.Registry();
  // The event-loop-delay monitor samples on a timer: once a second, not
  // prom-client's default 10 ms, so metrics cost an idle daemon 1 wake-up/s.
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  watchMetrics(registry, service);
  if (audit) {
    labelledCounter(registry, 'fanotifyd_audit_records_total', 'Audit records, by what became of them (dropped: the file was unwritable or too slow).', 'result', () => ({
      written: audit.written,
      dropped: audit.dropped,
    }));
  }
  const verdictLatency = new client.Histogram({
    name: 'fanotifyd_verdict_latency_seconds',
    help: 'Time from reading a permission event to the client verdict on it.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5],
    registers: [registry],
  });
  return { registry, verdictLatency };
}

/** Serve /metrics on the address --metrics gave (the config's schema allows only loopback); returns the bound "host:port". */
export function serveMetrics(addr: string, registry: client.Registry): Promise<{ server: http.Server; address: string }> {
  const a = parseAddress(addr);
  if (a.kind !== 'tcp') throw new ListenError(`--metrics ${addr}: not a HOST:PORT`);
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new ListenError(`--metrics ${addr}: ${err.message}`)));
    server.listen(a.port, a.host, () => {
      const port = (server.address() as { port: number }).port;
      resolve({ server, address: `${a.host.includes(':') ? `[${a.host}]` : a.host}:${port}` });
    });
  });
}
