// What an operator watches on an exporter: how much went out and came
// back acknowledged, how much is in the air, how often JetStream did not
// answer in time, the gaps the daemon reported, and how far the
// acknowledged cursor is behind the daemon's last sequence. Counters are
// plain numbers on the event path; prom-client reads them at each scrape.
import * as client from 'prom-client';
import { collectedCounter, collectedGauge } from '../common/collected-metrics';

export class ExporterCounters {
  published = 0;
  acknowledged = 0;
  duplicates = 0;
  /** Items found already stored when the exporter started (read back), not sent again. */
  skipped = 0;
  /** Events sent by sendBatch (with --batch above 1), in messages of one or more. */
  batched = 0;
  retries = 0;
  gaps = 0;
  /** Sequences covered by gap records. */
  gapSequences = 0n;
  inFlight = 0;
  /** Items received from the daemon, not yet published. */
  queued = 0;
  cursor = 0n;
  /** The highest sequence the daemon is known to have given out. */
  daemonSequence = 0n;
  sessions = 0;
  cursorSaves = 0;
  /** Publish-to-ack latency in seconds, observed per acknowledged message when a histogram is attached. */
  latency?: client.Histogram;
}

export function exporterRegistry(c: ExporterCounters): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string, value: () => number | bigint) => collectedCounter(registry, name, help, value);
  const gauge = (name: string, help: string, value: () => number | bigint) => collectedGauge(registry, name, help, value);
  counter('fanotify_export_published_total', 'Messages sent to the broker (first attempts).', () => c.published);
  counter('fanotify_export_acknowledged_total', 'Messages the broker acknowledged as stored (duplicates included).', () => c.acknowledged);
  counter('fanotify_export_duplicates_total', 'Acknowledgments that said the message was already stored (repeats after a restart).', () => c.duplicates);
  counter('fanotify_export_skipped_total', 'Items found already stored past the cursor when the exporter started, and not sent again.', () => c.skipped);
  counter('fanotify_export_batched_events_total', 'Events sent in EventBatch messages (--batch above 1); divided by published, the events per message.', () => c.batched);
  counter('fanotify_export_retries_total', 'Publishes sent again because no acknowledgment came in time.', () => c.retries);
  counter('fanotify_export_gaps_total', 'Gap records published: ranges of sequences the daemon no longer held.', () => c.gaps);
  counter('fanotify_export_gap_sequences_total', 'Sequences covered by gap records.', () => c.gapSequences);
  counter('fanotify_export_sessions_total', 'Watch sessions begun with the daemon (attach or subscribe).', () => c.sessions);
  counter('fanotify_export_cursor_saves_total', 'Cursor writes to the key-value bucket.', () => c.cursorSaves);
  gauge('fanotify_export_in_flight', 'Messages sent and not yet acknowledged.', () => c.inFlight);
  gauge('fanotify_export_queued', 'Items received from the daemon and not yet sent.', () => c.queued);
  gauge('fanotify_export_cursor_sequence', 'Sequence up to which everything is acknowledged.', () => c.cursor);
  gauge('fanotify_export_lag_sequences', "Sequences between the daemon's last known one and the acknowledged cursor.", () =>
    c.daemonSequence > c.cursor ? c.daemonSequence - c.cursor : 0n,
  );
  c.latency = new client.Histogram({
    name: 'fanotify_export_ack_latency_seconds',
    help: 'Time from a publish to its acknowledgment.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [registry],
  });
  return registry;
}
