// The daemon's settings: flags over a config file over defaults, checked
// by one schema before anything is opened or bound. A problem stops
// start-up with one line naming the flag or the file's key (exit code 2).
//
// Each setting is declared once, in SETTINGS: its flag (also its key in the
// config file), its schema, its default and its help text. The flag parser,
// the config file's keys, --help and docs/operations.md's table come from it.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULTS } from './defaults';
import type { Level } from '../common/log';
import { FanotifydError } from '../common/errors';
import { readSettings, type Setting } from '../common/layered-settings';
import { shown } from '../common/schema-error';

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
  /** The largest Subscribe.linger_ms. */
  maxLingerMs: number;
  /** Bytes a named watch keeps for resuming streams. */
  resumeBufferBytes: number;
  /** Bytes every named watch keeps together (the shared budget, src/watch/journal-budget.ts). */
  resumeBufferTotalBytes: number;
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
  /** Where kept watches' definitions go; else $STATE_DIRECTORY. */
  stateDir?: string;
  /** The directory request paths are resolved beneath; unset: the default (src/host/host-root.ts). */
  hostRoot?: string;
  /** The container runtime's CRI socket (unix:///run/containerd/containerd.sock); unset: cgroup paths only. */
  criEndpoint?: string;
}

export class ConfigError extends FanotifydError {
  constructor(message: string) {
    super('ECONFIG', message);
  }
}

/** Node's timers take at most 2^31-1 ms (about 24.8 days); a larger delay fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A positive integer: a JSON number, or digits (from a flag, or quoted in the file). */
function positiveInt(max: number, above: string) {
  return z.preprocess(
    (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
    z
      .number({ error: (iss) => `${shown(iss.input)} is not a positive integer` })
      .int({ error: (iss) => `${shown(iss.input)} is not a positive integer` })
      .min(1, { error: (iss) => `${shown(iss.input)} is not a positive integer` })
      .max(max, { error: (iss) => `${shown(iss.input)} is above ${above}` }),
  );
}
const count = () => positiveInt(0xffff_ffff, '2^32-1');
const millis = () => positiveInt(MAX_TIMER_MS, `the largest timeout, ${MAX_TIMER_MS} ms`);
const bytesSize = () => positiveInt(2 ** 40, '2^40 (1 TiB)');
const file = () => z.string().min(1);

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** grpc-js address syntax: unix:/absolute/path, or HOST:PORT ([v6]:PORT). A string is what is wrong. */
function readAddress(addr: string): ListenAddress | string {
  if (addr.startsWith('unix:')) {
    const path = addr.slice('unix:'.length);
    if (!path.startsWith('/')) return `${addr}: a unix socket path must be absolute (unix:/run/x.sock)`;
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(addr);
  if (!m) return `${addr}: expected unix:/path or HOST:PORT`;
  const port = Number(m[3]);
  if (port > 65535) return `${addr}: port ${port} is out of range`;
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}

/** An address the schema accepted. */
export function parseAddress(addr: string): ListenAddress {
  const a = readAddress(addr);
  if (typeof a === 'string') throw new ConfigError(a);
  return a;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const listenAddress = z.string().superRefine((addr, ctx) => {
  const a = readAddress(addr);
  if (typeof a === 'string') ctx.addIssue({ code: 'custom', message: a });
});

const metricsAddress = z.string().superRefine((addr, ctx) => {
  const a = readAddress(addr);
  if (typeof a === 'string') ctx.addIssue({ code: 'custom', message: a });
  else if (a.kind !== 'tcp' || !isLoopback(a.host)) {
    ctx.addIssue({ code: 'custom', message: `${addr}: give a loopback HOST:PORT (127.0.0.1:9464); metrics name paths and processes of this host` });
  }
});

/** Every setting, by flag name (also its key in the config file), in --help's order. */
export const SETTINGS = {
  listen: { schema: z.array(listenAddress).min(1), arg: 'ADDR', multiple: true, default: DEFAULTS.listen, help: 'unix:/path or HOST:PORT; repeatable. TCP needs TLS, or --insecure on loopback' },
  'tls-cert': { schema: file(), arg: 'FILE', help: "the daemon's TLS certificate (PEM), for TCP listeners" },
  'tls-key': { schema: file(), arg: 'FILE', help: 'its private key (PEM)' },
  'tls-client-ca': { schema: file(), arg: 'FILE', help: 'CA (PEM) that client certificates must be signed by: they are required, and a client is named by its certificate' },
  insecure: { schema: z.boolean(), default: false, help: 'allow plain TCP on loopback (logs a warning)' },
  policy: { schema: file(), arg: 'FILE', help: 'authorization rules (JSON, docs/policy.schema.json); re-read on SIGHUP. Without it every client that can connect may do everything' },
  'socket-group': { schema: z.string().min(1), arg: 'GROUP', help: 'group (name or number) owning the unix sockets (mode 0660)' },
  metrics: { schema: metricsAddress, arg: 'HOST:PORT', help: 'serve Prometheus metrics at /metrics (loopback only; off by default)' },
  'audit-file': { schema: file(), arg: 'FILE', help: 'append a JSON line per watch opened/closed and per permission decision (off by default)' },
  'state-dir': { schema: file(), arg: 'DIR', help: "where the definitions of watches kept in systemd's fd store go (default: $STATE_DIRECTORY)" },
  'idle-timeout-ms': { schema: millis(), arg: 'N', default: DEFAULTS.idleTimeoutMs, help: 'close connections that hold no stream this long' },
  'handshake-timeout-ms': { schema: millis(), arg: 'N', default: DEFAULTS.handshakeTimeoutMs, help: 'close connections that have not finished TLS or sent the HTTP/2 preface this long after connecting, or not closed their side this long after the daemon closed the connection' },
  'max-connections': { schema: count(), arg: 'N', default: DEFAULTS.maxConnections, help: 'open connections per listener; more are closed at once' },
  'log-level': { schema: z.enum(['debug', 'info', 'warn', 'error']), arg: 'LEVEL', default: DEFAULTS.logLevel, help: 'debug, info, warn or error' },
  'verdict-timeout-ms': { schema: millis(), arg: 'N', default: DEFAULTS.defaultVerdictTimeoutMs, help: 'default verdict timeout of a permission watch' },
  'max-verdict-timeout-ms': { schema: millis(), arg: 'N', default: DEFAULTS.maxVerdictTimeoutMs, help: 'largest verdict timeout a client may ask for' },
  'batch-events': { schema: count(), arg: 'N', default: DEFAULTS.defaultMaxBatchEvents, help: 'default events per batch' },
  'max-batch-events': { schema: count(), arg: 'N', default: DEFAULTS.maxBatchEvents, help: 'largest batch a client may ask for' },
  'queue-capacity': { schema: count(), arg: 'N', default: DEFAULTS.queueCapacity, help: 'notifications held per watch for a slow client' },
  'max-watches': { schema: count(), arg: 'N', default: DEFAULTS.maxWatches, help: 'concurrent watches' },
  'max-watches-per-identity': { schema: count(), arg: 'N', default: DEFAULTS.maxWatchesPerIdentity, help: 'concurrent watches of one client identity' },
  'max-marks-per-watch': { schema: count(), arg: 'N', default: DEFAULTS.maxMarksPerWatch, help: 'marks in one Subscribe' },
  'max-message-bytes': { schema: count(), arg: 'N', default: DEFAULTS.maxMessageBytes, help: 'largest gRPC message either way' },
  'max-linger-ms': { schema: millis(), arg: 'N', default: DEFAULTS.maxLingerMs, help: 'longest a named watch may stay without a stream (Subscribe.linger_ms); a lingering watch counts against --max-watches' },
  'resume-buffer-bytes': { schema: bytesSize(), arg: 'N', default: DEFAULTS.resumeBufferBytes, help: 'encoded events and notices each named watch keeps for streams to resume from (the oldest go first)' },
  'resume-buffer-total-bytes': {
    schema: bytesSize(),
    arg: 'N',
    help: 'what every named watch keeps together, at least --resume-buffer-bytes; past it the watch holding the most loses its oldest events first (its streams get a Gap) (default: eight times --resume-buffer-bytes, 512 MiB with its default)',
  },
  'host-root': {
    schema: z.string().regex(/^\//, { error: 'give an absolute path (/proc/<a host pid>/root, or /)' }),
    arg: 'DIR',
    help: "resolve request paths beneath DIR, the host's root as the daemon sees it (default: /proc/1/root when the daemon's mount namespace is not PID 1's, else /)",
  },
  'cri-endpoint': {
    schema: z.string().regex(/^unix:\/\/\//, { error: 'give the runtime\'s socket as unix:///PATH (unix:///run/containerd/containerd.sock, unix:///var/run/crio/crio.sock)' }),
    arg: 'URL',
    help: "the container runtime's CRI socket, for pod and container names, image and labels in events (off: ids from cgroup paths only)",
  },
  'max-pending-per-watch': { schema: count(), arg: 'N', default: DEFAULTS.maxPendingPerWatch, help: 'permission events awaiting a verdict per watch; past it they get the timeout decision at once' },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;
/** The settings once validated: a setting without a default may be absent. */
type Settings = {
  [K in SettingName]: (typeof SETTINGS)[K] extends { default: unknown } ? z.output<(typeof SETTINGS)[K]['schema']> : z.output<(typeof SETTINGS)[K]['schema']> | undefined;
};

const TLS_FLAGS = ['tls-cert', 'tls-key', 'tls-client-ca'] as const;

/** Checks between settings: the issue goes on the flag to change. */
function crossCheck(s: Settings, ctx: z.RefinementCtx): void {
  const given = TLS_FLAGS.filter((f) => s[f] !== undefined);
  if (given.length > 0 && given.length < 3) {
    const missing = TLS_FLAGS.filter((f) => s[f] === undefined);
    ctx.addIssue({ code: 'custom', path: [missing[0]], message: `missing: TLS needs --tls-cert, --tls-key and --tls-client-ca together (client certificates are required)` });
  }
  if (s['verdict-timeout-ms'] > s['max-verdict-timeout-ms']) {
    ctx.addIssue({ code: 'custom', path: ['verdict-timeout-ms'], message: `${s['verdict-timeout-ms']} exceeds --max-verdict-timeout-ms (${s['max-verdict-timeout-ms']})` });
  }
  if (s['batch-events'] > s['max-batch-events']) {
    ctx.addIssue({ code: 'custom', path: ['batch-events'], message: `${s['batch-events']} exceeds --max-batch-events (${s['max-batch-events']})` });
  }
  if (s['resume-buffer-total-bytes'] !== undefined && s['resume-buffer-total-bytes'] < s['resume-buffer-bytes']) {
    // Refused rather than lowered: a watch could never hold what --resume-buffer-bytes promises, and the operator set one of the two on purpose.
    ctx.addIssue({
      code: 'custom',
      path: ['resume-buffer-total-bytes'],
      message: `${s['resume-buffer-total-bytes']} is below --resume-buffer-bytes (${s['resume-buffer-bytes']}): raise --resume-buffer-total-bytes or lower --resume-buffer-bytes`,
    });
  }
  if (given.length === 3) return;
  s.listen.forEach((addr, i) => {
    const a = readAddress(addr);
    if (typeof a === 'string' || a.kind !== 'tcp') return;
    if (!isLoopback(a.host)) {
      const message =
        `${addr}: plain TCP is allowed only on loopback (127.0.0.1, ::1, localhost); give --tls-cert, --tls-key and --tls-client-ca ` +
        'for other addresses: anyone who reaches this port could see every file access and deny opens on this host';
      ctx.addIssue({ code: 'custom', path: ['listen', i], message });
    } else if (!s.insecure) {
      ctx.addIssue({ code: 'custom', path: ['listen', i], message: `${addr}: plain TCP needs --insecure (any local user could connect), or TLS with --tls-cert, --tls-key and --tls-client-ca` });
    }
  });
}

function toConfig(s: Settings): Config {
  return {
    listen: s.listen,
    logLevel: s['log-level'],
    defaultVerdictTimeoutMs: s['verdict-timeout-ms'],
    maxVerdictTimeoutMs: s['max-verdict-timeout-ms'],
    defaultMaxBatchEvents: s['batch-events'],
    maxBatchEvents: s['max-batch-events'],
    queueCapacity: s['queue-capacity'],
    maxWatches: s['max-watches'],
    maxMarksPerWatch: s['max-marks-per-watch'],
    maxMessageBytes: s['max-message-bytes'],
    maxPendingPerWatch: s['max-pending-per-watch'],
    maxWatchesPerIdentity: s['max-watches-per-identity'],
    maxLingerMs: s['max-linger-ms'],
    resumeBufferBytes: s['resume-buffer-bytes'],
    resumeBufferTotalBytes: s['resume-buffer-total-bytes'] ?? DEFAULTS.resumeBuffersPerTotal * s['resume-buffer-bytes'],
    tls: s['tls-cert'] ? { cert: s['tls-cert'], key: s['tls-key']!, clientCa: s['tls-client-ca']! } : undefined,
    insecure: s.insecure,
    policy: s.policy,
    socketGroup: s['socket-group'],
    idleTimeoutMs: s['idle-timeout-ms'],
    handshakeTimeoutMs: s['handshake-timeout-ms'],
    maxConnections: s['max-connections'],
    metrics: s.metrics,
    auditFile: s['audit-file'],
    stateDir: s['state-dir'],
    hostRoot: s['host-root'],
    criEndpoint: s['cri-endpoint'],
  };
}

/** The schema of the merged settings (and of a config file, whose keys may all be left out). */
export const settingsSchema = z
  .strictObject(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, 'default' in s ? s.schema : s.schema.optional()])) as unknown as { [K in SettingName]: z.ZodType<Settings[K]> })
  .superRefine((s, ctx) => crossCheck(s, ctx))
  .transform(toConfig);

const COMMANDS = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

const OPTIONS = {
  ...(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, { type: 'arg' in s ? 'string' : 'boolean', multiple: 'multiple' in s }])) as Record<
    SettingName,
    { type: 'string' | 'boolean'; multiple: boolean }
  >),
  ...COMMANDS,
};

/** Words joined into lines of at most width columns; a word may hold spaces that never break. */
function wrap(words: string[], indent: number, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

function usage(): string {
  const row = (left: string, help: string, def?: string) => `  ${left.padEnd(30)} ${wrap([...help.split(' '), ...(def ? [def] : [])], 33)}\n`;
  let out = 'Usage: fanotifyd [options]\n\nServes the Linux fanotify API over gRPC (service fanotify.v1.Fanotify).\n\nOptions:\n';
  for (const [name, s] of Object.entries(SETTINGS) as Array<[SettingName, Setting]>) {
    const def = s.default === undefined || s.default === false ? undefined : `(default ${Array.isArray(s.default) ? s.default.join(', ') : String(s.default)})`;
    out += row(`--${name}${s.arg ? ` ${s.arg}` : ''}`, s.help, def);
  }
  out += row('--config FILE', 'settings from a JSON file: {"flag-name": value, ...} (deploy/fanotifyd.json); flags given here override it');
  out += row('-h, --help', 'this text');
  out += row('--version', 'print the version');
  out += '\nA switch such as --insecure is turned off again with --no-insecure.\n';
  out += 'Exit status: 0 stopped by SIGTERM or SIGINT; 1 failed while starting or running; 2 bad configuration.\n';
  return out;
}

export const USAGE = usage();

type Raw = Record<string, unknown>;

/** parseArgs's errors, as one line naming the flag. */
function parseFlags(argv: string[]): Raw {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, allowNegative: true, options: OPTIONS }).values;
  } catch (err) {
    const e = err as Error & { code?: string };
    const flag = /'(-[^' ]+)/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new ConfigError(`${flag ?? e.message}: unknown option; fanotifyd --help lists them`);
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError(`${e.message.split('. ')[0]}: every setting is a --flag`);
    if (/argument missing/.test(e.message)) throw new ConfigError(`${flag}: needs a value`);
    if (/does not take an argument/.test(e.message)) throw new ConfigError(`${flag}: is a switch and takes no value (--no-${flag?.slice(2)} turns it off)`);
    throw new ConfigError(e.message.split('. ')[0]);
  }
}

/**
 * Flags (argv) over the --config file over the defaults, validated.
 * Throws ConfigError with one line naming the flag or the file's key.
 */
export function parseConfig(argv: string[]): Config | 'help' | 'version' {
  const flags = parseFlags(argv);
  if (flags.help) return 'help';
  if (flags.version) return 'version';
  return readSettings({ settings: SETTINGS, flags, commands: COMMANDS, schema: settingsSchema, fail: (m) => new ConfigError(m) });
}
