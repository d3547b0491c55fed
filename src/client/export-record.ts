// The record fanotify-export stores in JetStream, as its writer and its
// readers (fanctl watch --from, any consumer) name it: the headers each
// message carries, and the sequence range in Fanotify-Sequence.

export const EXPORT_HEADER = {
  node: 'Fanotify-Node',
  watch: 'Fanotify-Watch',
  /** "5" for one event or notice; "5-9" for a batch or a gap record; "5-0" for a gap with no end (the watch was opened anew). */
  sequence: 'Fanotify-Sequence',
  bootId: 'Fanotify-Boot-Id',
  /** event, batch, overflow or gap: what the payload is (fanotify.v1.Event, EventBatch, Overflow or Gap). */
  record: 'Fanotify-Record',
  /** How many times the watch was opened anew; absent while 0. */
  epoch: 'Fanotify-Epoch',
} as const;

export interface SequenceRange {
  from: bigint;
  to: bigint;
}

/** Fanotify-Sequence as a range; a gap with no end ("5-0") or anything else as undefined. */
export function parseSequenceRange(text: string | undefined): SequenceRange | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text ?? '');
  if (!m) return undefined;
  const from = BigInt(m[1]);
  const to = m[2] === undefined ? from : BigInt(m[2]);
  return to >= from ? { from, to } : undefined;
}
