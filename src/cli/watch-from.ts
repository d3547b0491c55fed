// fanctl watch --from nats://...: the fleet's events as fanotify-export
// stored them in JetStream, replayed and followed through an ephemeral
// ordered consumer, printed as a live watch prints them (each line tagged
// with its node; --json as {"target": node, "event": ...}), each watch's
// records (events, gap and overflow records) in its sequence order.
import * as fs from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, type JsMsg, type OrderedConsumerOptions } from '@nats-io/jetstream';
import { fromJson, toBinary } from '@bufbuild/protobuf';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import { fanotifyService } from '../api/proto';
import { CanonicalJson, EXPORT_HEADER, parseSequenceRange } from '../client';
import { EXIT_USAGE } from './command-line';
import { EventOutput } from './event-output';
import { formatOverflow } from './format';
import type { Io } from './io';
import { SequenceOrder } from './sequence-order';

/** How long, and for how many records, a record ahead of its watch's next sequence waits for the ones before it. */
const ORDER = { holdMs: 2_000, maxHeld: 10_000 };

interface FromInvocation {
  servers: string[];
  stream: string;
  prefix: string;
  nodes: string[];
  since?: { seq: number } | { time: string };
  json: boolean;
  creds?: string;
  tlsCa?: string;
}

/** `watch` with --from: the hook fanctl.ts calls before its own parser. */
export function isWatchFrom(argv: string[]): boolean {
  return argv[0] === 'watch' && argv.some((a) => a === '--from' || a.startsWith('--from='));
}

/** A stream sequence (digits), an RFC 3339 time, or a duration back from now (90s, 15m, 2h, 7d). */
function since(value: string): { seq: number } | { time: string } {
  if (/^\d+$/.test(value)) return { seq: Number(value) };
  const ago = /^(\d+)(s|m|h|d)$/.exec(value);
  if (ago) return { time: new Date(Date.now() - Number(ago[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[ago[2] as 's']).toISOString() };
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidArgumentError('give a stream sequence, an RFC 3339 time or a duration such as 15m');
  return { time: new Date(t).toISOString() };
}

function parse(argv: string[], io: Io): FromInvocation | number {
  let inv: FromInvocation | undefined;
  const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];
  const program = new Command('fanctl')
    .exitOverride()
    .configureOutput({ writeOut: (t) => process.stdout.write(t), writeErr: (t) => io.note(t.trimEnd().replace(/^error: /, '')) });
  program
    .command('watch')
    .description("print the fleet's events from the JetStream stream fanotify-export writes")
    .requiredOption('--from <url>', 'a NATS server (nats://HOST:PORT); repeatable', collect)
    .option('--stream <name>', 'the stream', 'FANOTIFY')
    .option('--prefix <token>', 'subject prefix the exporters use', 'fanotify')
    .option('--node <name>', 'only this node; repeatable', collect)
    .option('--since <when>', 'start at a stream sequence, an RFC 3339 time or a duration back (15m); default: the start of the stream', since)
    .option('--json', 'one line per event in protobuf JSON: {"target": node, "event": ...}')
    .option('--nats-creds <file>', 'NATS credentials file')
    .option('--nats-tls-ca <file>', "CA (PEM) of the NATS servers' certificates")
    .action((flags: { from: string[]; stream: string; prefix: string; node?: string[]; since?: FromInvocation['since']; json?: boolean; natsCreds?: string; natsTlsCa?: string }) => {
      inv = { servers: flags.from, stream: flags.stream, prefix: flags.prefix, nodes: flags.node ?? [], since: flags.since, json: Boolean(flags.json), creds: flags.natsCreds, tlsCa: flags.natsTlsCa };
    });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    throw err;
  }
  return inv ?? EXIT_USAGE;
}

function consumerOptions(inv: FromInvocation): Partial<OrderedConsumerOptions> {
  const o: Partial<OrderedConsumerOptions> = {};
  // One node: the server filters; several: nats-server 2.9 takes one filter subject, so fanctl filters.
  if (inv.nodes.length === 1) o.filter_subjects = `${inv.prefix}.${inv.nodes[0]}.>`;
  if (inv.since && 'seq' in inv.since) Object.assign(o, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: inv.since.seq });
  else if (inv.since) Object.assign(o, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: inv.since.time });
  return o;
}

/** Printing of one stored record, by its Fanotify-Record header. */
class RecordPrinter {
  private readonly watch = fanotifyService().Watch;
  private readonly canonical = CanonicalJson.load();

  constructor(private readonly output: EventOutput) {}

  print(m: JsMsg): void {
    const node = m.headers?.get(EXPORT_HEADER.node) ?? m.subject.split('.')[1];
    const record = m.headers?.get(EXPORT_HEADER.record) ?? 'event';
    const bytes = this.binary(record, m.data);
    if (record === 'gap') {
      const g = this.canonical.message('fanotify.v1.Gap', bytes) as { fromSequence?: string; toSequence?: string };
      const watch = m.headers?.get(EXPORT_HEADER.watch);
      const lost = g.toSequence ? `sequences ${g.fromSequence}..${g.toSequence}` : `everything from sequence ${g.fromSequence} on (the watch closed and was opened anew)`;
      this.output.notice(node, `GAP: ${lost} of watch ${watch} lost before export`);
      return;
    }
    // Wrapped as the WatchResponse a live watch receives, so the live watch's printer takes it as it is
    // (a batch record is already the EventBatch a live watch gets).
    const field = record === 'overflow' ? 0x1a : 0x12;
    const inner = record === 'overflow' || record === 'batch' ? bytes : Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
    const response = Buffer.concat([Buffer.from([field]), varint(inner.length), inner]);
    const decoded = this.watch.responseDeserialize(response) as WatchResponse__Output;
    if (record === 'overflow') this.output.notice(node, formatOverflow(decoded.overflow!));
    else this.output.events(node, decoded.events!.events, response);
  }

  /** The record's protobuf bytes: as stored, or from the JSON line an exporter with --format json wrote. */
  private binary(record: string, data: Uint8Array): Buffer {
    if (data[0] !== 0x7b) return Buffer.from(data); // '{' never starts these messages' protobuf encoding (field 15, wire type 3)
    const type = { gap: 'fanotify.v1.Gap', overflow: 'fanotify.v1.Overflow', batch: 'fanotify.v1.EventBatch' }[record] ?? 'fanotify.v1.Event';
    const schema = this.canonical.schema(type);
    return Buffer.from(toBinary(schema, fromJson(schema, JSON.parse(Buffer.from(data).toString('utf8')))));
  }
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

async function follow(nc: NatsConnection, inv: FromInvocation, io: Io): Promise<number> {
  const printer = new RecordPrinter(new EventOutput(io, inv.json ? CanonicalJson.load() : undefined, true));
  const consumer = await jetstream(nc).consumers.get(inv.stream, consumerOptions(inv));
  const messages = await consumer.consume();
  const stop = () => void messages.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const wanted = new Set(inv.nodes.map((n) => `${inv.prefix}.${n}.`));
  // In each watch's sequence order: the stream is in publish order, which a retried publish breaks.
  const order = new SequenceOrder<JsMsg>((m) => {
    // Also called from the order's timer: a record that cannot be printed is named and skipped, the rest go on.
    try {
      printer.print(m);
    } catch (err) {
      io.note(`record ${m.seq} of stream ${inv.stream} not printed: ${(err as Error).message}`);
    }
  }, ORDER);
  try {
    for await (const m of messages) {
      if (wanted.size > 1 && ![...wanted].some((p) => m.subject.startsWith(p))) continue;
      const h = m.headers;
      const key = `${h?.get(EXPORT_HEADER.node)}/${h?.get(EXPORT_HEADER.watch)}@${h?.get(EXPORT_HEADER.epoch) || 0}`;
      order.push(key, parseSequenceRange(h?.get(EXPORT_HEADER.sequence)), m);
    }
  } finally {
    order.close();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}

/** fanctl watch --from ...; resolves to the exit status. */
export async function runWatchFrom(argv: string[], io: Io): Promise<number> {
  const inv = parse(argv, io);
  if (typeof inv === 'number') return inv;
  let nc: NatsConnection;
  try {
    const authenticator = inv.creds ? credsAuthenticator(fs.readFileSync(inv.creds)) : undefined;
    nc = await connect({ servers: inv.servers.map((s) => s.replace(/^nats:\/\//, '')), authenticator, tls: inv.tlsCa ? { caFile: inv.tlsCa } : undefined });
  } catch (err) {
    io.note(`cannot connect to ${inv.servers.join(', ')}: ${(err as Error).message}`);
    return 1;
  }
  try {
    return await follow(nc, inv, io);
  } catch (err) {
    io.note(`cannot read stream ${inv.stream}: ${(err as Error).message}`);
    return 1;
  } finally {
    await nc.close();
  }
}
