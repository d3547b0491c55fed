#!/usr/bin/env node
// fanotify-export: one named watch of the local fanotifyd, published to
// NATS JetStream exactly once (docs/operations.md, "Exporting to NATS").
import * as http from 'node:http';
import type { NatsConnection } from '@nats-io/nats-core';
import { CanonicalJson, ClientConfigError } from '../client';
import { createLogger, type Logger } from '../common/log';
import { ExportConfigError, parseExportConfig, usage, type ExportConfig } from './config';
import { DaemonSource } from './daemon-source';
import { Exporter } from './exporter';
import { ExporterCounters, exporterRegistry } from './exporter-metrics';
import { connectNats, NatsConfigError } from './nats-connection';
import { cursorBucketName, NatsCursorStore } from './nats-cursor-store';
import { ensureStream, NatsSink } from './nats-sink';
import { SubscribeFileError, watchRequests } from './watch-requests';

const EXIT_FAILED = 1;
const EXIT_CONFIG = 2;

/** EventType number -> subject token: EVENT_TYPE_CLOSE_WRITE -> close_write. */
function typeNames(json: CanonicalJson): Map<number, string> {
  const e = json.registry.getEnum('fanotify.v1.EventType');
  return new Map((e?.values ?? []).map((v) => [v.number, v.name.replace('EVENT_TYPE_', '').toLowerCase()]));
}

function serveMetrics(addr: string, counters: ExporterCounters, log: Logger): http.Server {
  const registry = exporterRegistry(counters);
  const i = addr.lastIndexOf(':');
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  });
  server.on('error', (err) => log.error('metrics not served', { address: addr, err: err.message }));
  server.listen(Number(addr.slice(i + 1)), addr.slice(0, i).replace(/^\[|\]$/g, ''), () => log.info('metrics', { address: addr }));
  return server;
}

async function run(cfg: ExportConfig, log: Logger): Promise<number> {
  const json = CanonicalJson.load();
  const requests = watchRequests(json, cfg.subscribe, cfg.watch, cfg.lingerMs);
  const nc: NatsConnection = await connectNats({ servers: cfg.nats, credsFile: cfg.natsCreds, tls: cfg.natsTls, name: `fanotify-export ${cfg.node}` });
  const stream = await ensureStream(nc, {
    name: cfg.stream,
    subjects: [`${cfg.prefix}.>`],
    maxAgeMs: cfg.streamMaxAgeMs,
    maxBytes: cfg.streamMaxBytes,
    replicas: cfg.replicas,
    duplicateWindowMs: cfg.duplicateWindowMs,
  });
  log.info(stream.created ? 'stream created' : 'stream exists; used as it is', { stream: cfg.stream, subjects: stream.config.subjects });
  const cursorStore = await NatsCursorStore.open(nc, cfg.cursorBucket ?? cursorBucketName(cfg.node), cfg.watch, cfg.replicas);
  const counters = new ExporterCounters();
  const metrics = cfg.metrics ? serveMetrics(cfg.metrics, counters, log) : undefined;
  const source = new DaemonSource({ target: cfg.daemon, tls: cfg.daemonTls, watch: cfg.watch, requests, typeNames: typeNames(json), log });
  const exporter = new Exporter({
    source,
    sink: new NatsSink(nc, cfg.stream, cfg.ackTimeoutMs),
    cursorStore,
    records: { prefix: cfg.prefix, node: cfg.node, watch: cfg.watch, format: cfg.format, toJson: (type, bytes) => json.message(type, bytes) },
    window: cfg.window,
    batch: cfg.batch,
    maxMessageBytes: nc.info?.max_payload,
    cursorIntervalMs: cfg.cursorIntervalMs,
    log,
    counters,
  });
  await exporter.start();
  log.info('exporting', { stream: cfg.stream, window: cfg.window, batch: cfg.batch });
  const stopped = new Promise<number>((resolve) => {
    const stop = () => resolve(0);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  const code = await Promise.race([stopped, source.failed.catch((err: Error) => (log.error('cannot export', { err: err.message }), EXIT_FAILED))]);
  await exporter.close();
  log.info('stopped', { cursor: exporter.cursor.toString(), published: counters.published, acknowledged: counters.acknowledged, duplicates: counters.duplicates, skipped: counters.skipped, retries: counters.retries, gaps: counters.gaps });
  metrics?.close();
  await nc.drain();
  return code;
}

export async function main(argv: string[]): Promise<number> {
  let cfg: ExportConfig | 'help';
  try {
    cfg = parseExportConfig(argv);
  } catch (err) {
    if (!(err instanceof ExportConfigError)) throw err;
    process.stderr.write(`fanotify-export: ${err.message}\n`);
    return EXIT_CONFIG;
  }
  if (cfg === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  const log = createLogger(cfg.logLevel, { node: cfg.node, watch: cfg.watch });
  try {
    return await run(cfg, log);
  } catch (err) {
    if (err instanceof SubscribeFileError || err instanceof ClientConfigError || err instanceof NatsConfigError) {
      log.error(err.message);
      return EXIT_CONFIG;
    }
    log.error('failed', { err: (err as Error).message });
    return EXIT_FAILED;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
