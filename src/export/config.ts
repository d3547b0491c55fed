// fanotify-export's settings: flags over a --config file over defaults,
// one zod schema, checked before anything connects; a problem is one line
// naming the flag or the file's key (exit 2). The file's keys are the
// flags' names, as for the daemon (deploy/fanotify-export.json).
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { FanotifydError } from '../common/errors';
import type { Level } from '../common/log';
import { readSettings, type Setting } from '../common/layered-settings';
import { shown } from '../common/schema-error';
import type { PayloadFormat } from './records';

export class ExportConfigError extends FanotifydError {
  constructor(message: string) {
    super('ECONFIG', message);
  }
}

export interface ExportConfig {
  daemon: string;
  daemonTls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  subscribe: string;
  watch: string;
  lingerMs: number;
  node: string;
  nats: string[];
  natsCreds?: string;
  natsTls?: { caFile?: string; certFile?: string; keyFile?: string };
  stream: string;
  prefix: string;
  streamMaxAgeMs: number;
  streamMaxBytes: number;
  replicas: number;
  duplicateWindowMs: number;
  format: PayloadFormat;
  window: number;
  batch: number;
  ackTimeoutMs: number;
  cursorIntervalMs: number;
  cursorBucket?: string;
  metrics?: string;
  logLevel: Level;
}

const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
    z
      .number({ error: (iss) => `${shown(iss.input)} is not an integer` })
      .int({ error: (iss) => `${shown(iss.input)} is not an integer` })
      .min(min, { error: (iss) => `${shown(iss.input)} is below ${min}` })
      .max(max, { error: (iss) => `${shown(iss.input)} is above ${max}` }),
  );
const MAX_TIMER_MS = 2 ** 31 - 1;
const file = () => z.string().min(1);
/** A NATS subject token or stream name: no dots, wildcards or whitespace. */
const token = (what: string) => z.string().regex(/^[A-Za-z0-9_-]+$/, { error: (iss) => `${shown(iss.input)}: a ${what} may hold only letters, digits, _ and -` });
const natsUrl = z.string().regex(/^(nats|tls):\/\/[^\s/]+$/, { error: (iss) => `${shown(iss.input)}: expected nats://HOST:PORT or tls://HOST:PORT` });
const loopback = z.string().regex(/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/, { error: (iss) => `${shown(iss.input)}: give a loopback HOST:PORT (127.0.0.1:9465); metrics name this host's watch` });

export const SETTINGS = {
  daemon: { schema: z.string().min(1), arg: 'TARGET', default: 'unix:/run/fanotifyd/fanotifyd.sock', help: 'the local fanotifyd: unix:/path or HOST:PORT' },
  'daemon-tls-ca': { schema: file(), arg: 'FILE', help: "CA (PEM) of the daemon's certificate, for a TCP target" },
  'daemon-tls-cert': { schema: file(), arg: 'FILE', help: 'client certificate (PEM) presented to the daemon' },
  'daemon-tls-key': { schema: file(), arg: 'FILE', help: 'its private key (PEM)' },
  subscribe: { schema: file(), arg: 'FILE', help: 'the watch to export: a fanotify.v1.Subscribe in protobuf JSON (marks, filters, rules); required' },
  watch: { schema: z.string().min(1).max(128), arg: 'NAME', default: 'export', help: "the watch's name on the daemon, in every Nats-Msg-Id" },
  'linger-ms': { schema: int(1, MAX_TIMER_MS), arg: 'N', default: 300_000, help: 'how long the daemon keeps the watch (and buffers its events) while the exporter is away' },
  node: { schema: token('node name'), arg: 'NAME', default: os.hostname().split('.')[0].replace(/[^A-Za-z0-9_-]/g, '_'), help: "this host's name in subjects, headers and ids; the short host name by default" },
  nats: { schema: z.array(natsUrl).min(1), arg: 'URL', multiple: true, default: ['nats://127.0.0.1:4222'], help: 'a NATS server; repeatable (a cluster)' },
  'nats-creds': { schema: file(), arg: 'FILE', help: 'NATS credentials file (JWT and NKey seed)' },
  'nats-tls-ca': { schema: file(), arg: 'FILE', help: "CA (PEM) of the NATS servers' certificates" },
  'nats-tls-cert': { schema: file(), arg: 'FILE', help: 'client certificate (PEM) for NATS' },
  'nats-tls-key': { schema: file(), arg: 'FILE', help: 'its private key (PEM)' },
  stream: { schema: token('stream name'), arg: 'NAME', default: 'FANOTIFY', help: 'JetStream stream; created when missing, used as it is when it exists' },
  prefix: { schema: token('subject prefix'), arg: 'TOKEN', default: 'fanotify', help: 'subjects are PREFIX.NODE.TYPE' },
  'stream-max-age-ms': { schema: int(1, Number.MAX_SAFE_INTEGER), arg: 'N', default: 7 * 24 * 3600 * 1000, help: 'a created stream keeps messages this long' },
  'stream-max-bytes': { schema: int(1, Number.MAX_SAFE_INTEGER), arg: 'N', default: 1024 ** 3, help: 'a created stream keeps at most this many bytes (oldest dropped)' },
  replicas: { schema: int(1, 5), arg: 'N', default: 1, help: 'replicas of a created stream and of the cursor bucket (3 in a three-node cluster)' },
  'duplicate-window-ms': { schema: int(100, Number.MAX_SAFE_INTEGER), arg: 'N', default: 600_000, help: 'a created stream drops a repeated Nats-Msg-Id within this time: longer than an exporter restart takes' },
  format: { schema: z.enum(['protobuf', 'json']), arg: 'FORMAT', default: 'protobuf', help: 'payload: protobuf (fanotify.v1.Event bytes) or json (one line of protobuf JSON)' },
  window: { schema: int(1, 65_536), arg: 'N', default: 256, help: 'publishes in flight at most' },
  batch: {
    schema: int(1, 4096),
    arg: 'N',
    default: 1,
    help: 'events per message at most: 1 publishes each fanotify.v1.Event alone on PREFIX.NODE.TYPE; more publishes what waits for the window as one fanotify.v1.EventBatch on PREFIX.NODE.batch (for a broker slower than the daemon)',
  },
  'ack-timeout-ms': { schema: int(1, MAX_TIMER_MS), arg: 'N', default: 5_000, help: 'a publish not acknowledged this long is sent again' },
  'cursor-interval-ms': { schema: int(10, MAX_TIMER_MS), arg: 'N', default: 1_000, help: 'how often the acknowledged cursor is written to the KV bucket' },
  'cursor-bucket': { schema: z.string().regex(/^[A-Za-z0-9_-]+$/), arg: 'NAME', help: 'KV bucket of the cursor (default fanotify-cursor-NODE)' },
  metrics: { schema: loopback, arg: 'HOST:PORT', help: 'serve Prometheus metrics at /metrics (loopback only; off by default)' },
  'log-level': { schema: z.enum(['debug', 'info', 'warn', 'error']), arg: 'LEVEL', default: 'info', help: 'debug, info, warn or error' },
} as const satisfies Record<string, Setting>;

type Name = keyof typeof SETTINGS;
type Settings = { [K in Name]: (typeof SETTINGS)[K] extends { default: unknown } ? z.output<(typeof SETTINGS)[K]['schema']> : z.output<(typeof SETTINGS)[K]['schema']> | undefined };

function crossCheck(s: Settings, ctx: z.RefinementCtx): void {
  if (s.subscribe === undefined) ctx.addIssue({ code: 'custom', path: ['subscribe'], message: 'missing: give the watch to export as a Subscribe JSON file' });
  if (Boolean(s['nats-tls-cert']) !== Boolean(s['nats-tls-key'])) ctx.addIssue({ code: 'custom', path: ['nats-tls-cert'], message: 'give --nats-tls-cert and --nats-tls-key together' });
  if (Boolean(s['daemon-tls-cert']) !== Boolean(s['daemon-tls-key'])) ctx.addIssue({ code: 'custom', path: ['daemon-tls-cert'], message: 'give --daemon-tls-cert and --daemon-tls-key together' });
  if (s['duplicate-window-ms'] > s['stream-max-age-ms']) {
    ctx.addIssue({ code: 'custom', path: ['duplicate-window-ms'], message: `${s['duplicate-window-ms']} exceeds --stream-max-age-ms (JetStream refuses such a stream)` });
  }
}

function toConfig(s: Settings): ExportConfig {
  const tls = (ca?: string, cert?: string, key?: string) => (ca || cert ? { caFile: ca, certFile: cert, keyFile: key } : undefined);
  return {
    daemon: s.daemon,
    daemonTls: tls(s['daemon-tls-ca'], s['daemon-tls-cert'], s['daemon-tls-key']),
    subscribe: s.subscribe!,
    watch: s.watch,
    lingerMs: s['linger-ms'],
    node: s.node,
    nats: s.nats,
    natsCreds: s['nats-creds'],
    natsTls: tls(s['nats-tls-ca'], s['nats-tls-cert'], s['nats-tls-key']),
    stream: s.stream,
    prefix: s.prefix,
    streamMaxAgeMs: s['stream-max-age-ms'],
    streamMaxBytes: s['stream-max-bytes'],
    replicas: s.replicas,
    duplicateWindowMs: s['duplicate-window-ms'],
    format: s.format,
    window: s.window,
    batch: s.batch,
    ackTimeoutMs: s['ack-timeout-ms'],
    cursorIntervalMs: s['cursor-interval-ms'],
    cursorBucket: s['cursor-bucket'],
    metrics: s.metrics,
    logLevel: s['log-level'],
  };
}

const schema = z
  .strictObject(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, 'default' in s ? s.schema : s.schema.optional()])) as unknown as { [K in Name]: z.ZodType<Settings[K]> })
  .superRefine((s, ctx) => crossCheck(s, ctx))
  .transform(toConfig);

const OPTIONS = {
  ...(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, { type: 'string', multiple: 'multiple' in s }])) as Record<Name, { type: 'string'; multiple: boolean }>),
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function usage(): string {
  let out = 'Usage: fanotify-export --subscribe FILE [options]\n\nExports a named watch of the local fanotifyd to NATS JetStream, exactly once.\n\nOptions:\n';
  for (const [name, s] of Object.entries(SETTINGS) as Array<[Name, Setting]>) {
    const def = s.default === undefined ? '' : ` (default ${Array.isArray(s.default) ? s.default.join(', ') : String(s.default)})`;
    out += `  --${name} ${s.arg ?? ''}\n      ${s.help}${def}\n`;
  }
  out += '  --config FILE\n      settings from a JSON file: {"flag-name": value, ...}; flags given here override it\n';
  out += '\nExit status: 0 stopped by SIGTERM or SIGINT; 1 failed; 2 bad configuration.\n';
  return out;
}

function parseFlags(argv: string[]): Record<string, unknown> {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options: OPTIONS }).values;
  } catch (err) {
    const flag = /'(-[^' ]+)/.exec((err as Error).message)?.[1];
    throw new ExportConfigError(`${flag ?? (err as Error).message.split('. ')[0]}: ${/unknown/i.test((err as Error).message) ? 'unknown option; fanotify-export --help lists them' : 'needs a value'}`);
  }
}

/** Flags over the --config file over defaults, validated. Throws ExportConfigError naming the flag or key. */
export function parseExportConfig(argv: string[]): ExportConfig | 'help' {
  const flags = parseFlags(argv);
  if (flags.help) return 'help';
  return readSettings({ settings: SETTINGS, flags, commands: { config: true, help: true }, schema, fail: (m) => new ExportConfigError(m) });
}
