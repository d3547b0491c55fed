// The exporter's cursor in a JetStream key-value bucket per node (one key
// per exported watch): kept by the same cluster that keeps the events, so
// a sidecar needs no volume and a replacement host resumes where the old
// one stopped.
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import type { Cursor, CursorStore } from './sink';

/** KV bucket names allow [A-Za-z0-9_-]; keys also '.', '/' and '='. */
export function cursorBucketName(node: string): string {
  return `fanotify-cursor-${node.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export class NatsCursorStore implements CursorStore {
  private constructor(
    private readonly kv: KV,
    private readonly key: string,
  ) {}

  static async open(nc: NatsConnection, bucket: string, watch: string, replicas: number): Promise<NatsCursorStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1, replicas });
    return new NatsCursorStore(kv, watch.replace(/[^A-Za-z0-9_=/.-]/g, '_'));
  }

  async load(): Promise<Cursor | undefined> {
    const entry = await this.kv.get(this.key);
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return undefined;
    const doc = entry.json<{ sequence: string; boot_id: string; epoch?: number; position?: number }>();
    return { sequence: BigInt(doc.sequence), bootId: doc.boot_id, epoch: doc.epoch ?? 0, position: doc.position };
  }

  async save(c: Cursor): Promise<void> {
    await this.kv.put(this.key, JSON.stringify({ sequence: c.sequence.toString(), boot_id: c.bootId, epoch: c.epoch, position: c.position, time: new Date().toISOString() }));
  }
}
