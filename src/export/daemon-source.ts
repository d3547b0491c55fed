// The exporter's source: a named, lingering watch of the local daemon.
// Each session first attaches to the watch after the last sequence
// delivered (the daemon replays the rest, or says Gap); only when the
// daemon has no such watch (first start, or linger expired) does it
// subscribe anew. A session that ends is retried with backoff, forever:
// the watch lingers on the daemon meanwhile.
import * as grpc from '@grpc/grpc-js';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import { fanotifyClientConstructor } from '../api/proto';
import { transportFor, type TlsOptions } from '../client';
import type { Logger } from '../common/log';
import type { ExportItem } from './items';
import type { Source, SourceHandlers } from './source';
import type { WatchRequests } from './watch-requests';
import { wireEvents, wireField } from './wire-response';

const RESPONSE_OVERFLOW = 3;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export interface DaemonSourceOptions {
  target: string;
  tls?: TlsOptions;
  watch: string;
  requests: WatchRequests;
  /** EventType number -> subject token ("open"). */
  typeNames: ReadonlyMap<number, string>;
  log: Logger;
}

/** A daemon that gives out no sequences cannot be resumed from: its events would all share one Nats-Msg-Id. */
export class UnnumberedEventsError extends Error {}

type RawCall = grpc.ClientDuplexStream<Buffer, Buffer>;
interface RawClient extends grpc.Client {
  Watch(metadata: grpc.Metadata): RawCall;
}

/** Requests pre-encoded, responses as bytes: events are read on the wire (wire-response.ts), the rest decoded here. */
function rawClient(target: string, tls: TlsOptions | undefined): { client: RawClient; decode: (b: Buffer) => WatchResponse__Output } {
  const watch = fanotifyClientConstructor().service.Watch;
  const def: grpc.ServiceDefinition = {
    Watch: { ...watch, requestSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  };
  const Ctor = grpc.makeGenericClientConstructor(def, 'Fanotify');
  const t = transportFor(target, tls);
  const client = new Ctor(target, t.credentials, { 'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS, ...t.options }) as unknown as RawClient;
  return { client, decode: (b) => watch.responseDeserialize(b) as WatchResponse__Output };
}

export class DaemonSource implements Source {
  private readonly client: RawClient;
  private readonly decode: (b: Buffer) => WatchResponse__Output;
  private call?: RawCall;
  private handlers?: SourceHandlers;
  private delivered = 0n;
  private paused = false;
  private closed = false;
  private backoffMs = RECONNECT_MIN_MS;
  private retryTimer?: NodeJS.Timeout;
  /** Set by start(); a fatal error (UnnumberedEventsError) rejects it. */
  private fail: (err: Error) => void = () => undefined;
  readonly failed: Promise<never>;

  constructor(private readonly o: DaemonSourceOptions) {
    ({ client: this.client, decode: this.decode } = rawClient(o.target, o.tls));
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
  }

  start(afterSequence: bigint, handlers: SourceHandlers): void {
    this.delivered = afterSequence;
    this.handlers = handlers;
    this.open('attach');
  }

  pause(): void {
    this.paused = true;
    this.call?.pause();
  }

  resume(): void {
    this.paused = false;
    this.call?.resume();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.call?.cancel();
    this.client.close();
  }

  private open(mode: 'attach' | 'subscribe'): void {
    // waitForReady: a daemon that is restarting is waited for, not an error per attempt.
    const call = this.client.Watch(new grpc.Metadata({ waitForReady: true }));
    this.call = call;
    if (this.paused) call.pause();
    call.on('data', (b: Buffer) => this.onResponse(b, mode));
    call.on('error', () => undefined);
    call.once('status', (s: grpc.StatusObject) => this.onEnd(call, mode, s));
    call.write(mode === 'attach' ? this.o.requests.attach(this.delivered) : this.o.requests.subscribe);
  }

  private onEnd(call: RawCall, mode: 'attach' | 'subscribe', s: grpc.StatusObject): void {
    if (this.closed || call !== this.call) return;
    this.call = undefined;
    if (mode === 'attach' && s.code === grpc.status.NOT_FOUND) {
      this.o.log.info('no such watch on the daemon; subscribing', { detail: s.details });
      this.open('subscribe');
      return;
    }
    const reason = `${grpc.status[s.code] ?? s.code}: ${s.details}`;
    this.handlers!.lost(reason);
    this.retryTimer = setTimeout(() => this.open('attach'), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
  }

  private onResponse(b: Buffer, mode: 'attach' | 'subscribe'): void {
    try {
      const events = wireEvents(b);
      if (events) this.onEvents(events);
      else this.onNotice(b, mode);
    } catch (err) {
      if (err instanceof UnnumberedEventsError) {
        this.closed = true;
        this.call?.cancel();
        this.fail(err);
        return;
      }
      this.o.log.error('undecodable response from the daemon; reconnecting', { err: (err as Error).message });
      this.call?.cancel();
    }
  }

  private onEvents(events: ReturnType<typeof wireEvents> & object): void {
    const items: ExportItem[] = [];
    for (const e of events) {
      if (e.sequence === 0n) throw new UnnumberedEventsError('the daemon sent an event without a sequence: it needs named watches (Event.sequence) to be exported');
      // A replay that overlaps what was delivered (a daemon counting from its own cursor) is dropped here, not published twice.
      if (e.sequence <= this.delivered) continue;
      this.delivered = e.sequence;
      items.push({ kind: 'event', sequence: e.sequence, type: this.o.typeNames.get(e.firstType) ?? 'unspecified', bytes: e.bytes });
    }
    if (items.length > 0) this.handlers!.items(items);
  }

  private onNotice(b: Buffer, mode: 'attach' | 'subscribe'): void {
    const m = this.decode(b);
    if (m.response === 'subscribed') {
      const s = m.subscribed!;
      this.backoffMs = RECONNECT_MIN_MS;
      const last = BigInt(s.last_sequence);
      this.o.log.info(mode === 'attach' ? 'attached' : 'subscribed', { watch_id: s.watch_id, first_sequence: s.first_sequence, last_sequence: s.last_sequence, after: this.delivered.toString() });
      this.handlers!.session({ bootId: s.boot_id, lastSequence: last });
      // A new watch where the exporter had a place in an old one: what the old one read after it is gone, and numbering starts over.
      if (mode === 'subscribe' && this.delivered > 0n) {
        this.handlers!.items([{ kind: 'restart', from: this.delivered + 1n }]);
        this.delivered = 0n;
      }
    } else if (m.response === 'gap') {
      const from = BigInt(m.gap!.from_sequence);
      const to = BigInt(m.gap!.to_sequence);
      if (to <= this.delivered) return;
      this.delivered = to;
      this.handlers!.items([{ kind: 'gap', from, to }]);
    } else if (m.response === 'overflow') {
      const sequence = BigInt(m.overflow!.sequence);
      if (sequence !== 0n && sequence <= this.delivered) return;
      if (sequence !== 0n) this.delivered = sequence;
      this.handlers!.items([{ kind: 'overflow', sequence, bytes: wireField(b, RESPONSE_OVERFLOW)! }]);
    }
  }
}
