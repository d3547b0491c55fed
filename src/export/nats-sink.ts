// The NATS JetStream sink: each message is a JetStream publish with its
// msgId as Nats-Msg-Id, stored once the PubAck comes; a repeat inside the
// stream's duplicate window is acknowledged as a duplicate and not stored.
import { headers, nanos, type NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { OutMessage, Sink, Stored, StoredHeaders } from './sink';

const READ_BACK_IDLE_MS = 5_000;

export interface StreamSettings {
  name: string;
  /** Subjects of a stream created here: `<prefix>.>`. */
  subjects: string[];
  maxAgeMs: number;
  maxBytes: number;
  replicas: number;
  /** How long JetStream remembers a Nats-Msg-Id: longer than an exporter's restart, or a repeat after it is stored twice. */
  duplicateWindowMs: number;
}

/** The stream as it exists; created with `s` when it does not (an existing stream is used as it is). */
export async function ensureStream(nc: NatsConnection, s: StreamSettings): Promise<{ created: boolean; config: StreamConfig }> {
  const jsm = await jetstreamManager(nc);
  try {
    return { created: false, config: (await jsm.streams.info(s.name)).config };
  } catch (err) {
    if ((err as { name?: string }).name !== 'StreamNotFoundError' && !/stream not found/i.test((err as Error).message)) throw err;
  }
  const info = await jsm.streams.add({
    name: s.name,
    subjects: s.subjects,
    max_age: nanos(s.maxAgeMs),
    max_bytes: s.maxBytes,
    num_replicas: s.replicas,
    storage: StorageType.File,
    duplicate_window: nanos(s.duplicateWindowMs),
  });
  return { created: true, config: info.config };
}

export class NatsSink implements Sink {
  private readonly js: JetStreamClient;
  private jsm?: JetStreamManager;

  constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
    private readonly ackTimeoutMs: number,
  ) {
    this.js = jetstream(nc);
  }

  async publish(m: OutMessage): Promise<Stored> {
    const h = headers();
    for (const [k, v] of m.headers) h.set(k, v);
    // expect.streamName: a subject that some other stream also captures must not count as stored here.
    const ack = await this.js.publish(m.subject, m.payload, { msgID: m.msgId, headers: h, timeout: this.ackTimeoutMs, expect: { streamName: this.stream }, retries: 0 });
    return { duplicate: ack.duplicate, position: ack.seq };
  }

  async lastPosition(): Promise<number> {
    this.jsm ??= await jetstreamManager(this.nc);
    return (await this.jsm.streams.info(this.stream)).state.last_seq;
  }

  /**
   * An ephemeral consumer from position + 1 on `filter` (a subject such as
   * fanotify.host-1.>), headers only, read up to the count it had pending
   * when made: what arrives later is not this exporter's (it has not begun).
   */
  async *readBack(position: number, filter: string): AsyncIterable<StoredHeaders> {
    this.jsm ??= await jetstreamManager(this.nc);
    const info = await this.jsm.consumers.add(this.stream, {
      filter_subject: filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: position + 1,
      headers_only: true,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(60_000),
    });
    try {
      let left = info.num_pending;
      if (left === 0) return;
      const messages = await (await this.js.consumers.get(this.stream, info.name)).consume({ max_messages: Math.min(left, 10_000) });
      // Messages removed meanwhile (max_age, max_bytes, a purge) never come: a pause this long ends the read.
      let idle = setTimeout(() => void messages.stop(), READ_BACK_IDLE_MS);
      try {
        for await (const m of messages) {
          clearTimeout(idle);
          idle = setTimeout(() => void messages.stop(), READ_BACK_IDLE_MS);
          const h = new Map<string, string>();
          for (const [k, v] of m.headers ?? []) h.set(k, v[0]);
          yield h;
          if (--left === 0 || m.info.pending === 0) break;
        }
      } finally {
        clearTimeout(idle);
        await messages.close();
      }
    } finally {
      await this.jsm.consumers.delete(this.stream, info.name).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    // The connection is shared with the cursor store; whoever opened it closes it.
  }
}
