// What a source hands the exporter: the watch's events and notices in
// sequence order, each with the bytes it came in, and the gaps the daemon
// reported. Sequences are uint64 on the wire, so bigint here: a daemon may
// start a watch's numbering anywhere below 2^64.

export interface EventItem {
  kind: 'event';
  sequence: bigint;
  /** The event's first type, lower case without EVENT_TYPE_ ("open"); the subject's last token. */
  type: string;
  /** The fanotify.v1.Event, exactly as the daemon encoded it. */
  bytes: Uint8Array;
}

export interface OverflowItem {
  kind: 'overflow';
  sequence: bigint;
  /** The fanotify.v1.Overflow, exactly as the daemon encoded it. */
  bytes: Uint8Array;
}

/** Sequences from..to (inclusive) the source will never deliver. */
export interface GapItem {
  kind: 'gap';
  from: bigint;
  to: bigint;
}

/**
 * The watch was opened anew (it had closed: linger ran out, or the daemon
 * restarted without handing its groups over): what the old one read after
 * sequence `from` - 1 is lost, how much is unknown, and numbering starts
 * over at 1. The exporter counts these as the watch's epoch, which goes
 * into every msgId after it, so a new event 5 is not taken for the old 5.
 */
export interface RestartItem {
  kind: 'restart';
  from: bigint;
}

export type ExportItem = EventItem | OverflowItem | GapItem | RestartItem;

/** The highest sequence an item accounts for: once it is stored, the cursor may move to it (0 after a restart). */
export function lastSequenceOf(item: ExportItem): bigint {
  if (item.kind === 'restart') return 0n;
  return item.kind === 'gap' ? item.to : item.sequence;
}
