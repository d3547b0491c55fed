#!/usr/bin/env node
// fanotifyd: the daemon's entry point. Probes the kernel, builds the server,
// binds its listeners, and on SIGINT/SIGTERM answers every pending
// permission event with ALLOW, closes every group, and exits 0.
//
// Everything the process will ever execute is loaded before the first
// watch exists: once a permission mark is in place, a lazy module load on
// the main thread could wait in open() for an answer only the main thread
// can give.
process.env.UV_THREADPOOL_SIZE ??= '8';

import * as grpc from '@grpc/grpc-js';
import { probeKernel } from '../kernel/probe';
import { EventPump } from '../kernel/pump';
import { FanotifyService, serviceDefinition } from '../api/service';
import { kernelWatchFactory } from '../api/kernel-watch-factory';
import { Authorizer, loadPolicy } from '../api/policy';
import { fanotifyService } from '../api/proto';
import { addHealth, addReflection } from '../api/reflection';
import { ConfigError, parseConfig, USAGE, type Config } from './config';
import { bindAll, readTls, type Listeners } from './listeners';
import { AuditTrail } from './audit';
import { createLogger } from '../common/log';
import { createMetrics, serveMetrics } from './metrics';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = require('../../../package.json').version;

async function main(argv: string[]): Promise<number> {
  let cfg: Config;
  try {
    const parsed = parseConfig(argv);
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (parsed === 'version') {
      process.stdout.write(`fanotifyd ${VERSION}\n`);
      return 0;
    }
    cfg = parsed;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fanotifyd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(cfg.logLevel, { service: 'fanotifyd' });
  let authorizer: Authorizer;
  try {
    authorizer = new Authorizer(cfg.policy ? loadPolicy(cfg.policy) : undefined);
  } catch (err) {
    process.stderr.write(`fanotifyd: --policy: ${(err as Error).message}\n`);
    return 2;
  }
  const kernel = probeKernel();
  if (!kernel.fanotify) {
    log.error('this kernel has no usable fanotify (fanotify_init failed); is this root with CONFIG_FANOTIFY?', { kernel: kernel.release });
    return 1;
  }
  const pump = new EventPump();
  const service = new FanotifyService(kernelWatchFactory(pump, kernel, log), kernel, cfg, log, VERSION, authorizer);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': cfg.maxMessageBytes,
    'grpc.max_send_message_length': cfg.maxMessageBytes,
    'grpc.max_connection_idle_ms': cfg.idleTimeoutMs,
  });
  server.addService(serviceDefinition(fanotifyService()), service.implementation());
  const audit = cfg.auditFile ? new AuditTrail(cfg.auditFile, log) : undefined;
  service.audit = audit;
  // Only with --metrics: prom-client's default collectors keep an
  // event-loop-delay timer; without metrics an idle daemon never wakes.
  const metrics = cfg.metrics ? createMetrics(() => service, audit) : undefined;
  if (metrics) service.onVerdictLatency = (ms) => metrics.verdictLatency.observe(ms / 1000);
  let metricsServer: { server: import('node:http').Server; address: string } | undefined;
  const health = addHealth(server);
  addReflection(server, ['fanotify.v1.Fanotify', 'grpc.health.v1.Health']);

  // Signal handlers go in before anything is announced: a supervisor may
  // send SIGTERM the moment it reads "serving".
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  let stopping = false;
  let listeners: Listeners | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal, watches: service.activeWatches });
    health.setStatus('', 'NOT_SERVING');
    // Answer the kernel first: no process on the host may wait on a
    // daemon that is going away.
    service.shutdown();
    listeners?.close();
    // After the grace, cancel what is left, and drop connections whose
    // peer never closes its side (tryShutdown waits for them to close).
    const timer = setTimeout(() => {
      server.forceShutdown();
      listeners?.destroyAll();
    }, 2_000);
    metricsServer?.server.close();
    server.tryShutdown(() => {
      clearTimeout(timer);
      void pump.close().then(() => {
        log.info('stopped');
        resolveExit(0);
      });
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP re-reads the policy; open watches stay. A broken file keeps the old rules.
  process.on('SIGHUP', () => {
    if (!cfg.policy) return;
    try {
      authorizer.replace(loadPolicy(cfg.policy));
      log.info('policy reloaded', { policy: cfg.policy });
    } catch (err) {
      log.error('policy reload failed; keeping the previous rules', { error: err });
    }
  });

  if (!cfg.tls && cfg.listen.some((a) => !a.startsWith('unix:'))) {
    log.warn('plain TCP listener (--insecure): any local user can connect, see file accesses and deny opens');
  }
  try {
    listeners = await bindAll(server, cfg.listen, {
      tls: cfg.tls ? readTls(cfg.tls) : undefined,
      socketGroup: cfg.socketGroup,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
      maxConnections: cfg.maxConnections,
      log,
    });
    if (cfg.metrics && metrics) metricsServer = await serveMetrics(cfg.metrics, metrics.registry);
  } catch (err) {
    log.error('cannot listen', { error: err });
    return 1;
  }
  if (stopping) {
    listeners.close();
    return exited;
  }
  log.info('serving', {
    listen: listeners.addresses,
    metrics: metricsServer?.address,
    kernel: kernel.release,
    version: VERSION,
    classes: kernel.classes,
    kernel_limits: kernel.limits,
  });
  return exited;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`fanotifyd: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
