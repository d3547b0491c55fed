// The NATS JetStream sink: each message is a JetStream publish with its
// msgId as Nats-Msg-Id, stored once the PubAck comes; a repeat inside the
// stream's duplicate window is acknowledged as a duplicate and not stored.
import { headers, nanos, type NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, StorageType, type JetStreamClient, type StreamConfig } from '@nats-io/jetstream';
import type { OutMessage, Sink, Stored } from './sink';

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

  constructor(
    nc: NatsConnection,
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
    return { duplicate: ack.duplicate };
  }

  async close(): Promise<void> {
    // The connection is shared with the cursor store; whoever opened it closes it.
  }
}
