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
} as const;

export interface RecordContext {
  prefix: string;
  /** Already a valid subject token (see subjectToken). */
  node: string;
  watch: string;
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

function payload(ctx: RecordContext, kind: ExportItem['kind'], bytes: Uint8Array): Uint8Array {
  if (ctx.format === 'protobuf') return bytes;
  return Buffer.from(`${JSON.stringify(ctx.toJson!(TYPE_NAME[kind], bytes))}\n`);
}

export function toMessage(ctx: RecordContext, item: ExportItem): OutMessage {
  const base = `${ctx.prefix}.${ctx.node}`;
  if (item.kind === 'gap') {
    const range = `${item.from}-${item.to}`;
    return {
      subject: `${base}.gap`,
      msgId: `${ctx.node}/${ctx.watch}/gap/${range}`,
      headers: [
        [HEADER.node, ctx.node],
        [HEADER.watch, ctx.watch],
        [HEADER.sequence, range],
        [HEADER.bootId, ctx.bootId],
        [HEADER.record, 'gap'],
      ],
      payload: payload(ctx, 'gap', encodeGap(item.from, item.to)),
    };
  }
  const seq = item.sequence.toString();
  return {
    subject: `${base}.${item.kind === 'event' ? item.type : 'overflow'}`,
    msgId: `${ctx.node}/${ctx.watch}/${seq}`,
    headers: [
      [HEADER.node, ctx.node],
      [HEADER.watch, ctx.watch],
      [HEADER.sequence, seq],
      [HEADER.bootId, ctx.bootId],
      [HEADER.record, item.kind],
    ],
    payload: payload(ctx, item.kind, item.bytes),
  };
}
