#!/usr/bin/env node
// fanotifyd: the daemon's entry point. Checks every setting and what it
// names, probes the kernel, builds the server, binds its listeners, and on
// SIGINT/SIGTERM answers every pending permission event with ALLOW, closes
// every group and the audit trail, and exits 0.
//
// Exit codes: 0 stopped by a signal; 1 failed while starting (no fanotify,
// an address in use) or running (a fatal error); 2 bad configuration, told
// in one plain line before anything was bound or created.
//
// Everything the process will ever execute is loaded before the first
// watch exists: once a permission mark is in place, a lazy module load on
// the main thread could wait in open() for an answer only the main thread
// can give.
process.env.UV_THREADPOOL_SIZE ??= '8';

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { probeKernel, type KernelFeatures } from '../kernel/probe';
import { EventPump } from '../kernel/pump';
import { FanotifyService, serviceDefinition } from '../api/service';
import { kernelWatchFactory } from '../api/kernel-watch-factory';
import { Authorizer } from '../api/policy';
import { parsePolicy, PolicyError } from '../api/policy-file';
import { fanotifyService } from '../api/proto';
import { addHealth, addReflection } from '../api/reflection';
import { ConfigError, parseConfig, USAGE, type Config } from './config';
import { setUpHostRoot, type HostRoot } from '../host/host-root';
import { useContainerDirectory } from '../host/attribution';
import { CriDirectory } from '../host/cri';
import { bindAll, type Listeners } from './listeners';
import type { AuditTrail } from './audit';
import { prepare, type Prepared } from './preflight';
import { createLogger, type Logger } from '../common/log';
import { createMetrics, serveMetrics, type Metrics } from './metrics';
import { resumeBudget } from './resume-budget';
import { FdStore } from './fd-store';
import { supervisionFromEnv, type Supervision } from './supervision';

const VERSION: string = (JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** Open once start-up has checked the settings; the fatal path writes it out synchronously. */
let openAudit: AuditTrail | undefined;

/** One plain line for a bad setting or policy file; other errors are not the user's to fix. */
function configProblem(err: unknown): number {
  if (err instanceof ConfigError || err instanceof PolicyError) {
    process.stderr.write(`fanotifyd: ${err.message}\n`);
    return 2;
  }
  throw err;
}

async function main(argv: string[]): Promise<number> {
  let cfg: Config;
  try {
    const parsed = parseConfig(argv);
    if (parsed === 'help' || parsed === 'version') {
      process.stdout.write(parsed === 'help' ? USAGE : `fanotifyd ${VERSION}\n`);
      return 0;
    }
    cfg = parsed;
  } catch (err) {
    return configProblem(err);
  }
  const log = createLogger(cfg.logLevel, { service: 'fanotifyd' });
  let prepared: Prepared;
  let hostRoot: HostRoot;
  try {
    prepared = prepare(cfg, log);
    hostRoot = openHostRoot(cfg, log);
  } catch (err) {
    return configProblem(err);
  }
  openAudit = prepared.audit;
  try {
    return await serve(cfg, prepared, log, hostRoot);
  } finally {
    // Every way out after the file was opened: a stop (its shutdown
    // decisions are queued by now) or a failed start.
    await prepared.audit?.close();
  }
}

/**
 * The host root (--host-root or the default), opened before any mark; a
 * fallback is said in the log and in GetInfo.host_root_note.
 */
function openHostRoot(cfg: Config, log: Logger): HostRoot {
  let root: HostRoot;
  try {
    root = setUpHostRoot(cfg.hostRoot);
  } catch (err) {
    throw new ConfigError(`--host-root ${cfg.hostRoot}: cannot be opened as a directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (root.note) log.warn('host root', { host_root: root.path, note: root.note });
  else log.info('host root', { host_root: root.path });
  return root;
}

/** The gRPC server and what it serves, nothing bound yet. */
function build(cfg: Config, prepared: Prepared, kernel: KernelFeatures, log: Logger, sup: Supervision) {
  const authorizer = new Authorizer(prepared.policy);
  const pump = new EventPump();
  const limits = { ...cfg, resumeBudget: resumeBudget(cfg.resumeBufferTotalBytes, log) };
  const service = new FanotifyService(kernelWatchFactory(pump, kernel, log), kernel, limits, log, VERSION, authorizer);
  const fdStore = sup.sd && sup.store ? new FdStore({ sd: sup.sd, store: sup.store, log, restoreWatch: (w) => service.restore(w) }) : undefined;
  if (fdStore) service.registry.hooks = fdStore.hooks();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': cfg.maxMessageBytes,
    'grpc.max_send_message_length': cfg.maxMessageBytes,
    'grpc.max_connection_idle_ms': cfg.idleTimeoutMs,
  });
  server.addService(serviceDefinition(fanotifyService()), service.implementation());
  service.audit = prepared.audit;
  // Only with --metrics: prom-client's default collectors keep an
  // event-loop-delay timer; without metrics an idle daemon never wakes.
  const metrics = cfg.metrics ? createMetrics(() => service, prepared.audit) : undefined;
  if (metrics) service.onVerdictLatency = (ms) => metrics.verdictLatency.observe(ms / 1000);
  const health = addHealth(server);
  addReflection(server, ['fanotify.v1.Fanotify', 'grpc.health.v1.Health']);
  return { authorizer, pump, service, server, metrics, health, fdStore };
}

/** The server built, bound and run until a signal stops it; the exit code. */
async function serve(cfg: Config, prepared: Prepared, log: Logger, hostRoot: HostRoot): Promise<number> {
  const kernel = probeKernel();
  if (!kernel.fanotify) {
    log.error('this kernel has no usable fanotify (fanotify_init failed); is this root with CONFIG_FANOTIFY?', { kernel: kernel.release });
    return 1;
  }
  const sup = supervisionFromEnv(cfg, process.env, log);
  const { authorizer, pump, service, server, metrics, health, fdStore } = build(cfg, prepared, kernel, log, sup);
  service.hostRoot = hostRoot;
  // The runtime's metadata, asked in the background; events never wait for it.
  const cri = cfg.criEndpoint ? new CriDirectory(cfg.criEndpoint, log) : undefined;
  useContainerDirectory(cri);
  // Before any client can connect: the groups of the previous process are
  // answered and read again (their held opens waited in the kernel).
  if (fdStore) await restoreWatches(fdStore, sup, log);

  // Signal handlers go in before anything is announced: a supervisor may
  // send SIGTERM the moment it reads "serving".
  const running: Running = { listeners: undefined, metricsServer: undefined, stopping: false };
  const exited = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (running.stopping) return;
      running.stopping = true;
      log.info('shutting down', { signal, watches: service.activeWatches });
      sup.sd?.stopping();
      health.setStatus('', 'NOT_SERVING');
      // Watches kept in the store are left to the next process (or to
      // systemd closing the store); every other is answered now: no
      // process on the host may wait on a daemon that is going away.
      const handedOff = fdStore ? fdStore.handOff() : Promise.resolve(0);
      service.shutdown();
      closeListeners(running, server, () => {
        cri?.close();
        void Promise.all([pump.close(), handedOff]).then(([, kept]) => {
          if (kept) log.info('watches left in the fd store', { watches: kept });
          log.info('stopped');
          resolve(0);
        });
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  process.on('SIGHUP', () => void reloadPolicy(cfg, authorizer, log));

  if (!cfg.tls && cfg.listen.some((a) => !a.startsWith('unix:'))) {
    log.warn('plain TCP listener (--insecure): any local user can connect, see file accesses and deny opens');
  }
  if (!(await bind(server, cfg, prepared, metrics, running, log))) {
    running.stopping = true;
    closeListeners(running, server, () => undefined);
    await pump.close();
    return 1;
  }
  if (running.stopping) {
    // A signal came while binding: what was bound just now closes too.
    running.listeners?.close();
    running.metricsServer?.close();
    return exited;
  }
  log.info('serving', {
    listen: running.listeners!.addresses,
    metrics: running.metricsAddress,
    kernel: kernel.release,
    version: VERSION,
    classes: kernel.classes,
    kernel_limits: kernel.limits,
  });
  sup.sd?.ready(`serving on ${running.listeners!.addresses.join(' ')}`);
  const watchdogMs = sup.sd?.startWatchdog(process.env);
  if (watchdogMs) log.info('watchdog pings', { every_ms: watchdogMs });
  return exited;
}

async function restoreWatches(fdStore: FdStore, sup: Supervision, log: Logger): Promise<void> {
  try {
    await sup.store!.init();
    const restored = await fdStore.restore(sup.fds);
    if (sup.fds.length) log.info('fd store taken back', { fds: sup.fds.length, watches: restored });
  } catch (err) {
    log.error('taking back the fd store failed', { error: err });
  }
}

interface Running {
  listeners?: Listeners;
  metricsServer?: http.Server;
  metricsAddress?: string;
  stopping: boolean;
}

/**
 * Metrics first, then the gRPC listeners: an address in use fails the
 * start before any socket file exists. False (logged) if something could
 * not be bound; what was bound is in `running` for closeListeners.
 */
async function bind(server: grpc.Server, cfg: Config, prepared: Prepared, metrics: Metrics | undefined, running: Running, log: Logger): Promise<boolean> {
  try {
    if (cfg.metrics && metrics) {
      const m = await serveMetrics(cfg.metrics, metrics.registry);
      running.metricsServer = m.server;
      running.metricsAddress = m.address;
    }
    running.listeners = await bindAll(server, cfg.listen, {
      tls: prepared.tls,
      socketGid: prepared.socketGid,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
      maxConnections: cfg.maxConnections,
      log,
    });
    return true;
  } catch (err) {
    log.error('cannot listen', { error: err });
    return false;
  }
}

/**
 * Stop accepting; after the grace, cancel what is left and drop
 * connections whose peer never closes its side (tryShutdown waits for
 * them to close). done() once the gRPC server has shut down.
 */
function closeListeners(running: Running, server: grpc.Server, done: () => void): void {
  running.listeners?.close();
  running.metricsServer?.close();
  const timer = setTimeout(() => {
    server.forceShutdown();
    running.listeners?.destroyAll();
  }, 2_000);
  server.tryShutdown(() => {
    clearTimeout(timer);
    done();
  });
}

/**
 * SIGHUP re-reads the policy; open watches stay, and a broken file keeps
 * the old rules. The file is read on the thread pool: marks exist by now,
 * and the main thread must stay free to answer its own open.
 */
async function reloadPolicy(cfg: Config, authorizer: Authorizer, log: Logger): Promise<void> {
  if (!cfg.policy) return;
  try {
    authorizer.replace(parsePolicy(cfg.policy, await fsp.readFile(cfg.policy, 'utf8')));
    log.info('policy reloaded', { policy: cfg.policy });
  } catch (err) {
    log.error('policy reload failed; keeping the previous rules', { error: err });
  }
}

/** A crash: one line with the stack, the audit trail written out, exit 1. */
function fatal(err: unknown): never {
  process.stderr.write(`fanotifyd: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  try {
    openAudit?.closeSync();
  } catch {
    // Exiting with the first error, not this one.
  }
  process.exit(1);
}

process.on('uncaughtException', fatal);
main(process.argv.slice(2)).then((code) => process.exit(code), fatal);
