// Where exported records go. A sink stores one message durably and says so;
// the exporter decides what the message is, when to retry and when the
// cursor moves. The NATS JetStream sink is one module behind this; a Kafka
// one would be another (an idempotent producer keyed by msgId).

export interface OutMessage {
  /** <prefix>.<node>.<type>: NATS subject; a Kafka sink would map it to a topic and key. */
  subject: string;
  /** Unique per record, the same when the record is sent again after a restart: the broker drops repeats by it. */
  msgId: string;
  headers: ReadonlyArray<readonly [string, string]>;
  payload: Uint8Array;
}

export interface Stored {
  /** The broker already held a message with this msgId (a repeat after a restart or retry). */
  duplicate: boolean;
  /** Where the broker keeps it: the stream sequence (a Kafka offset). Increases in the order the broker stores. */
  position: number;
}

/** What a message already in the broker says about itself: its headers (see records.ts HEADER). */
export type StoredHeaders = ReadonlyMap<string, string>;

export interface Sink {
  /** Resolves once the broker has stored the message durably; rejects when it did not say so in time. */
  publish(message: OutMessage): Promise<Stored>;
  /** The position of the last message stored now (0 when none): anything published later is stored past it. */
  lastPosition(): Promise<number>;
  /** The headers of every message stored past `position` whose subject starts with `subjectPrefix`, in order. */
  readBack(position: number, subjectPrefix: string): AsyncIterable<StoredHeaders>;
  close(): Promise<void>;
}

/** Where the exporter keeps its cursor between runs: in the broker, so nothing on the host must survive. */
export interface Cursor {
  sequence: bigint;
  /** boot_id of the daemon's host when the cursor was written. */
  bootId: string;
  /** How many times the watch was opened anew under the exporter (RestartItem). */
  epoch: number;
  /**
   * A broker position below every message of this watch that covers a
   * sequence past `sequence` (undefined in a cursor written before it was
   * kept): a restarted exporter reads back from there what was stored
   * before the cursor caught up, and does not send it again.
   */
  position?: number;
}

export interface CursorStore {
  load(): Promise<Cursor | undefined>;
  save(cursor: Cursor): Promise<void>;
}
