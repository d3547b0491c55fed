// How an exported item becomes a message: subject, Nats-Msg-Id, headers and
// payload. The msgId is the item's place in the watch's sequence, so the
// same item sent again after a restart carries the same id and the broker
// drops it.
import type { ExportItem } from './items';
import type { OutMessage } from './sink';
import { encodeGap } from './wire-response';

export type PayloadFormat = 'protobuf' | 'json';

export const HEADER = {
  node: 'Fanotify-Node',
  watch: 'Fanotify-Watch',
  sequence: 'Fanotify-Sequence',
  bootId: 'Fanotify-Boot-Id',
  /** event, overflow or gap: what the payload is (fanotify.v1.Event, Overflow or Gap). */
  record: 'Fanotify-Record',
  /** How many times the watch was opened anew; absent while 0. */
  epoch: 'Fanotify-Epoch',
} as const;

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

const TYPE_NAME = { event: 'fanotify.v1.Event', overflow: 'fanotify.v1.Overflow', gap: 'fanotify.v1.Gap' } as const;

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

/** The message for `item`; a restart item is in the old epoch (ctx.epoch - 1 when the caller has moved on). */
export function toMessage(ctx: RecordContext, item: ExportItem): OutMessage {
  const id = `${ctx.node}/${ctx.epoch > 0 ? `${ctx.watch}@${ctx.epoch}` : ctx.watch}`;
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
