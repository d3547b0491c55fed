// How an exported item becomes a message: subject, Nats-Msg-Id, headers and
// payload. The msgId is the item's place in the watch's sequence, so the
// same item sent again after a restart carries the same id and the broker
// drops it.
import { EXPORT_HEADER } from '../client';
import type { EventItem, ExportItem } from './items';
import type { OutMessage } from './sink';
import { encodeGap } from './wire-response';

export type PayloadFormat = 'protobuf' | 'json';

export const HEADER = EXPORT_HEADER;

export interface RecordContext {
  prefix: string;
  /** Already a valid subject token (see subjectToken). */
  node: string;
  watch: string;
  /** The watch's epoch (RestartItem): in msgIds as WATCH@EPOCH once above 0. */
  epoch: number;
  bootId: string;
  format: PayloadFormat;
  /** With format json: the canonical JSON of a message of the given type, from its bytes. */
  toJson?: (typeName: string, bytes: Uint8Array) => unknown;
}

/** A subject token: no '.', '*', '>' or whitespace, which would split or widen it. */
export function subjectToken(name: string): string {
  return name.replace(/[.*>\s]/g, '_') || '_';
}

const TYPE_NAME = { event: 'fanotify.v1.Event', batch: 'fanotify.v1.EventBatch', overflow: 'fanotify.v1.Overflow', gap: 'fanotify.v1.Gap' } as const;

function payload(ctx: RecordContext, kind: keyof typeof TYPE_NAME, bytes: Uint8Array): Uint8Array {
  if (ctx.format === 'protobuf') return bytes;
  return Buffer.from(`${JSON.stringify(ctx.toJson!(TYPE_NAME[kind], bytes))}\n`);
}

function headers(ctx: RecordContext, sequence: string, record: string): Array<[string, string]> {
  const h: Array<[string, string]> = [
    [HEADER.node, ctx.node],
    [HEADER.watch, ctx.watch],
    [HEADER.sequence, sequence],
    [HEADER.bootId, ctx.bootId],
    [HEADER.record, record],
  ];
  if (ctx.epoch > 0) h.push([HEADER.epoch, String(ctx.epoch)]);
  return h;
}

/**
 * A gap record: Gap{from, to}. After a restart of the watch, Gap{from, 0}:
 * the old watch's events from `from` on are lost, how many is unknown.
 */
function gapMessage(ctx: RecordContext, from: bigint, to: bigint, id: string): OutMessage {
  const range = `${from}-${to}`;
  return { subject: `${ctx.prefix}.${ctx.node}.gap`, msgId: `${id}/gap/${range}`, headers: headers(ctx, range, 'gap'), payload: payload(ctx, 'gap', encodeGap(from, to)) };
}

function idOf(ctx: RecordContext): string {
  return `${ctx.node}/${ctx.epoch > 0 ? `${ctx.watch}@${ctx.epoch}` : ctx.watch}`;
}

/** A gap record for from..to (part of a gap item, see StoredRanges.missing). */
export function gapRecord(ctx: RecordContext, from: bigint, to: bigint): OutMessage {
  return gapMessage(ctx, from, to, idOf(ctx));
}

const BATCH_EVENTS_TAG = 0x0a; // EventBatch.events: field 1, length-delimited

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Bytes an event adds to an EventBatch: its tag, length and bytes. */
export function batchedSize(e: EventItem): number {
  return 1 + varintLength(e.bytes.length) + e.bytes.length;
}

/**
 * One message for events first..last, in order: an EventBatch built from
 * the events' own bytes (each is EventBatch.events, field 1), subject
 * <prefix>.<node>.batch, msgId and Fanotify-Sequence "first-last".
 */
export function batchMessage(ctx: RecordContext, events: readonly EventItem[], bytes: number): OutMessage {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const e of events) {
    out[at++] = BATCH_EVENTS_TAG;
    let n = e.bytes.length;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    out[at++] = n;
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  const range = `${events[0].sequence}-${events[events.length - 1].sequence}`;
  return { subject: `${ctx.prefix}.${ctx.node}.batch`, msgId: `${idOf(ctx)}/${range}`, headers: headers(ctx, range, 'batch'), payload: payload(ctx, 'batch', out.subarray(0, at)) };
}

/** The message for `item`; a restart item is in the old epoch (ctx.epoch - 1 when the caller has moved on). */
export function toMessage(ctx: RecordContext, item: ExportItem): OutMessage {
  const id = idOf(ctx);
  if (item.kind === 'gap') return gapMessage(ctx, item.from, item.to, id);
  if (item.kind === 'restart') return gapMessage(ctx, item.from, 0n, id);
  const seq = item.sequence.toString();
  return {
    subject: `${ctx.prefix}.${ctx.node}.${item.kind === 'event' ? item.type : 'overflow'}`,
    msgId: `${id}/${seq}`,
    headers: headers(ctx, seq, item.kind),
    payload: payload(ctx, item.kind, item.bytes),
  };
}
