// Command-line flags -> validated configuration. Fails fast naming the flag.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULTS } from './defaults';
import type { Level } from '../common/log';
import { FanotifydError } from '../common/errors';

export interface Config {
  listen: string[];
  logLevel: Level;
  defaultVerdictTimeoutMs: number;
  maxVerdictTimeoutMs: number;
  defaultMaxBatchEvents: number;
  maxBatchEvents: number;
  queueCapacity: number;
  maxWatches: number;
  maxMarksPerWatch: number;
  maxMessageBytes: number;
  maxPendingPerWatch: number;
  maxWatchesPerIdentity: number;
  /** PEM files for TLS with required client certificates on TCP listeners. */
  tls?: { cert: string; key: string; clientCa: string };
  /** Plain TCP on loopback, knowingly. */
  insecure: boolean;
  /** Authorization policy file (JSON); none: every client may do everything. */
  policy?: string;
  /** Group that owns the unix sockets (mode 0660). */
  socketGroup?: string;
  /** Connections that hold no stream this long are closed (GOAWAY). */
  idleTimeoutMs: number;
  /** Connections that have not sent the HTTP/2 preface this long after connecting are closed. */
  handshakeTimeoutMs: number;
  /** Open connections per listener; past it a new one is closed at once. */
  maxConnections: number;
  /** Loopback HOST:PORT for Prometheus /metrics; off when unset. */
  metrics?: string;
  /** Append-only JSON-lines audit trail; off when unset. */
  auditFile?: string;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export class ConfigError extends FanotifydError {
  constructor(message: string) {
    super('ECONFIG', message);
  }
}

export const USAGE = `Usage: fanotifyd [options]

Serves the Linux fanotify API over gRPC (service fanotify.v1.Fanotify).

Options:
  --listen ADDR                 unix:/path or HOST:PORT; repeatable
                                (default ${DEFAULTS.listen[0]}). TCP needs TLS, or
                                --insecure on loopback.
  --tls-cert FILE, --tls-key FILE, --tls-client-ca FILE
                                TLS on TCP listeners; client certificates signed by the CA
                                are required, and a client is named by its certificate
  --insecure                    allow plain TCP on loopback (logs a warning)
  --policy FILE                 authorization rules (JSON; docs/security.md); re-read on SIGHUP.
                                Without it every client that can connect may do everything
  --socket-group GROUP          group owning the unix sockets (mode 0660)
  --metrics HOST:PORT           serve Prometheus metrics at /metrics (loopback only; off by default)
  --audit-file FILE             append a JSON line per watch opened/closed and per permission
                                decision (off by default)
  --idle-timeout-ms N           close connections that hold no stream this long (default ${DEFAULTS.idleTimeoutMs})
  --handshake-timeout-ms N      close connections that have not finished TLS or sent the HTTP/2
                                preface this long after connecting, or not closed their side this
                                long after the daemon closed the connection (default ${DEFAULTS.handshakeTimeoutMs})
  --max-connections N           open connections per listener; more are closed at once (default ${DEFAULTS.maxConnections})
  --log-level LEVEL             debug, info, warn or error (default ${DEFAULTS.logLevel})
  --verdict-timeout-ms N        default verdict timeout (default ${DEFAULTS.defaultVerdictTimeoutMs})
  --max-verdict-timeout-ms N    largest timeout a client may ask for (default ${DEFAULTS.maxVerdictTimeoutMs})
  --batch-events N              default events per batch (default ${DEFAULTS.defaultMaxBatchEvents})
  --max-batch-events N          largest batch a client may ask for (default ${DEFAULTS.maxBatchEvents})
  --queue-capacity N            notifications held per watch for a slow client (default ${DEFAULTS.queueCapacity})
  --max-watches N               concurrent watches (default ${DEFAULTS.maxWatches})
  --max-watches-per-identity N  concurrent watches of one client identity (default ${DEFAULTS.maxWatchesPerIdentity})
  --max-marks-per-watch N       marks in one Subscribe (default ${DEFAULTS.maxMarksPerWatch})
  --max-message-bytes N         largest gRPC message either way (default ${DEFAULTS.maxMessageBytes})
  --max-pending-per-watch N     permission events awaiting a verdict per watch; past it
                                they get the timeout decision at once (default ${DEFAULTS.maxPendingPerWatch})
  --config FILE                 settings from a JSON file: {"flag-name": value, ...};
                                flags given here override it
  -h, --help                    this text
  --version                     print the version
`;

const INT_FLAGS = {
  'verdict-timeout-ms': 'defaultVerdictTimeoutMs',
  'max-verdict-timeout-ms': 'maxVerdictTimeoutMs',
  'batch-events': 'defaultMaxBatchEvents',
  'max-batch-events': 'maxBatchEvents',
  'queue-capacity': 'queueCapacity',
  'max-watches': 'maxWatches',
  'max-marks-per-watch': 'maxMarksPerWatch',
  'max-message-bytes': 'maxMessageBytes',
  'max-pending-per-watch': 'maxPendingPerWatch',
  'idle-timeout-ms': 'idleTimeoutMs',
  'handshake-timeout-ms': 'handshakeTimeoutMs',
  'max-connections': 'maxConnections',
  'max-watches-per-identity': 'maxWatchesPerIdentity',
} as const;

const OPTIONS = {
  listen: { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  insecure: { type: 'boolean' },
  policy: { type: 'string' },
  'socket-group': { type: 'string' },
  metrics: { type: 'string' },
  'audit-file': { type: 'string' },
  ...Object.fromEntries(Object.keys(INT_FLAGS).map((k) => [k, { type: 'string' as const }])),
} as const satisfies Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

type RawValues = Record<string, string | string[] | boolean | undefined>;

/**
 * A config file: one JSON object whose keys are the flags' names without
 * the dashes (deploy/fanotifyd.json). Flags given on the command line win.
 */
export function readConfigFile(file: string): RawValues {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--config ${file}: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config ${file}: expected a JSON object of flag names and values`);
  const out: RawValues = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const opt = (OPTIONS as Record<string, { type: string; multiple?: boolean }>)[key];
    const where = `--config ${file}: "${key}"`;
    if (!opt) throw new ConfigError(`${where} is not a setting; the keys are the flags' names: ${Object.keys(OPTIONS).join(', ')}`);
    if (opt.multiple) {
      if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) throw new ConfigError(`${where} must be a list of strings`);
      out[key] = value as string[];
    } else if (opt.type === 'boolean') {
      if (typeof value !== 'boolean') throw new ConfigError(`${where} must be true or false`);
      out[key] = value;
    } else if (key in INT_FLAGS) {
      if (typeof value !== 'number' && typeof value !== 'string') throw new ConfigError(`${where} must be a number`);
      out[key] = String(value);
    } else {
      if (typeof value !== 'string') throw new ConfigError(`${where} must be a string`);
      out[key] = value;
    }
  }
  return out;
}

export function parseConfig(argv: string[]): Config | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { ...OPTIONS, config: { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${USAGE}`);
  }
  const flags = parsed.values as RawValues;
  const fromFile = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
  // Flags over file over defaults: a flag given replaces the file's value.
  const v: RawValues = { ...fromFile };
  for (const [k, value] of Object.entries(flags)) if (value !== undefined) v[k] = value;
  if (v.help) return 'help';
  if (v.version) return 'version';

  const cfg: Config = {
    listen: (v.listen as string[] | undefined) ?? [...DEFAULTS.listen],
    logLevel: DEFAULTS.logLevel,
    defaultVerdictTimeoutMs: DEFAULTS.defaultVerdictTimeoutMs,
    maxVerdictTimeoutMs: DEFAULTS.maxVerdictTimeoutMs,
    defaultMaxBatchEvents: DEFAULTS.defaultMaxBatchEvents,
    maxBatchEvents: DEFAULTS.maxBatchEvents,
    queueCapacity: DEFAULTS.queueCapacity,
    maxWatches: DEFAULTS.maxWatches,
    maxMarksPerWatch: DEFAULTS.maxMarksPerWatch,
    maxMessageBytes: DEFAULTS.maxMessageBytes,
    maxPendingPerWatch: DEFAULTS.maxPendingPerWatch,
    maxWatchesPerIdentity: DEFAULTS.maxWatchesPerIdentity,
    insecure: v.insecure === true,
    policy: v.policy as string | undefined,
    socketGroup: v['socket-group'] as string | undefined,
    idleTimeoutMs: DEFAULTS.idleTimeoutMs,
    handshakeTimeoutMs: DEFAULTS.handshakeTimeoutMs,
    maxConnections: DEFAULTS.maxConnections,
    metrics: v.metrics as string | undefined,
    auditFile: v['audit-file'] as string | undefined,
  };
  const tlsFlags = ['tls-cert', 'tls-key', 'tls-client-ca'].filter((f) => v[f] !== undefined);
  if (tlsFlags.length > 0) {
    if (tlsFlags.length < 3) {
      const missing = ['tls-cert', 'tls-key', 'tls-client-ca'].filter((f) => v[f] === undefined).map((f) => `--${f}`);
      throw new ConfigError(`${missing.join(', ')}: TLS needs --tls-cert, --tls-key and --tls-client-ca together (client certificates are required)`);
    }
    cfg.tls = { cert: v['tls-cert'] as string, key: v['tls-key'] as string, clientCa: v['tls-client-ca'] as string };
  }
  const level = v['log-level'];
  if (level !== undefined) {
    if (!['debug', 'info', 'warn', 'error'].includes(level as string)) {
      throw new ConfigError(`--log-level: "${String(level)}" is not one of debug, info, warn, error`);
    }
    cfg.logLevel = level as Level;
  }
  for (const [flag, key] of Object.entries(INT_FLAGS)) {
    const raw = v[flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!/^\d+$/.test(String(raw)) || !Number.isSafeInteger(n) || n <= 0 || n > 0xffff_ffff) {
      throw new ConfigError(`--${flag}: "${String(raw)}" is not a positive integer below 2^32`);
    }
    // Node's timers take at most 2^31-1 ms (about 24.8 days); a larger delay would fire at once.
    if (flag.endsWith('-ms') && n > MAX_TIMER_MS) throw new ConfigError(`--${flag}: ${n} is above the largest timeout, ${MAX_TIMER_MS} ms`);
    cfg[key] = n;
  }
  if (cfg.defaultVerdictTimeoutMs > cfg.maxVerdictTimeoutMs) {
    throw new ConfigError(`--verdict-timeout-ms (${cfg.defaultVerdictTimeoutMs}) exceeds --max-verdict-timeout-ms (${cfg.maxVerdictTimeoutMs})`);
  }
  if (cfg.defaultMaxBatchEvents > cfg.maxBatchEvents) {
    throw new ConfigError(`--batch-events (${cfg.defaultMaxBatchEvents}) exceeds --max-batch-events (${cfg.maxBatchEvents})`);
  }
  for (const addr of cfg.listen) checkListenAddress(addr, cfg);
  return cfg;
}

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** grpc-js address syntax: unix:/absolute/path, or HOST:PORT ([v6]:PORT). */
export function parseAddress(addr: string): ListenAddress {
  if (addr.startsWith('unix:')) {
    const path = addr.slice('unix:'.length);
    if (!path.startsWith('/')) throw new ConfigError(`--listen ${addr}: a unix socket path must be absolute (unix:/run/x.sock)`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(addr);
  if (!m) throw new ConfigError(`--listen ${addr}: expected unix:/path or HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`--listen ${addr}: port ${port} is out of range`);
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function checkListenAddress(addr: string, cfg: Config): void {
  const a = parseAddress(addr);
  if (a.kind !== 'tcp' || cfg.tls) return;
  if (!isLoopback(a.host)) {
    throw new ConfigError(
      `--listen ${addr}: plain TCP is allowed only on loopback (127.0.0.1, ::1, localhost); ` +
        'give --tls-cert, --tls-key and --tls-client-ca for other addresses: anyone who reaches ' +
        'this port could see every file access and deny opens on this host',
    );
  }
  if (!cfg.insecure) {
    throw new ConfigError(`--listen ${addr}: plain TCP needs --insecure (any local user could connect), or TLS with --tls-cert, --tls-key and --tls-client-ca`);
  }
}
