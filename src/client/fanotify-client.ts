// A typed client for one fanotifyd target: one channel, shared by its
// calls (GetInfo, health, every Watch), which grpc-js reconnects with its
// own backoff. Built from the API's service definition, with each
// response kept with its bytes beside the decoded message.
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { Attach } from '../api/gen/fanotify/v1/Attach';
import type { GetInfoRequest } from '../api/gen/fanotify/v1/GetInfoRequest';
import type { GetInfoResponse__Output } from '../api/gen/fanotify/v1/GetInfoResponse';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { WatchRequest } from '../api/gen/fanotify/v1/WatchRequest';
import type { WatchResponse__Output } from '../api/gen/fanotify/v1/WatchResponse';
import { fanotifyClientConstructor } from '../api/proto';
import { transportFor, type TlsOptions } from './credentials';
import { ResumableWatch, type ResumableHandlers, type ResumeOptions } from './resumable-watch';
import { WatchStream, type Received, type WatchHandlers, type WatchOpening } from './watch-stream';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface ConnectOptions {
  /** TLS for TCP targets; unix sockets are always plaintext. */
  tls?: TlsOptions;
  /** Extra grpc-js channel options (they win over the defaults here). */
  channelOptions?: grpc.ChannelOptions;
}

export interface CallOptions {
  /** Milliseconds the call may take. */
  timeoutMs?: number;
  /** Wait for the channel to connect (with grpc-js's backoff) instead of failing UNAVAILABLE at once. */
  waitForReady?: boolean;
}

interface RawFanotifyClient extends grpc.Client {
  GetInfo(req: GetInfoRequest, options: grpc.CallOptions, cb: grpc.requestCallback<Received<GetInfoResponse__Output>>): grpc.ClientUnaryCall;
  Watch(options: grpc.CallOptions): grpc.ClientDuplexStream<WatchRequest, Received<WatchResponse__Output>>;
}

interface HealthClient extends grpc.Client {
  check(req: { service: string }, options: grpc.CallOptions, cb: grpc.requestCallback<{ status: ServingStatus }>): grpc.ClientUnaryCall;
}

/**
 * grpc-js's default reconnect backoff grows to 120 s; a watch that lost its
 * daemon is back within 10 s of the daemon's return.
 */
const MAX_RECONNECT_BACKOFF_MS = 10_000;
const DEFAULT_UNARY_TIMEOUT_MS = 10_000;

function keepingBytes(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(def).map(([name, method]) => [name, { ...method, responseDeserialize: (bytes: Buffer) => ({ message: method.responseDeserialize(bytes), bytes }) }]),
  );
}

let ctor: grpc.ServiceClientConstructor | undefined;
function rawConstructor(): grpc.ServiceClientConstructor {
  ctor ??= grpc.makeGenericClientConstructor(keepingBytes(fanotifyClientConstructor().service), 'Fanotify');
  return ctor;
}

function callOptions(o: CallOptions, defaultTimeoutMs?: number): grpc.CallOptions {
  const ms = o.timeoutMs ?? defaultTimeoutMs;
  return { ...(ms !== undefined ? { deadline: Date.now() + ms } : {}), ...(o.waitForReady ? { waitForReady: true } : {}) };
}

export class FanotifyClient {
  private readonly raw: RawFanotifyClient;
  private health?: HealthClient;

  /** `target`: unix:/path/to.sock or HOST:PORT. Throws ClientConfigError for TLS files that cannot be used. */
  constructor(
    readonly target: string,
    options: ConnectOptions = {},
  ) {
    const transport = transportFor(target, options.tls);
    const channelOptions = { 'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS, ...transport.options, ...options.channelOptions };
    const Ctor = rawConstructor();
    this.raw = new Ctor(target, transport.credentials, channelOptions) as unknown as RawFanotifyClient;
  }

  /** What the daemon's kernel supports and its limits. Rejects with the call's grpc.ServiceError. */
  getInfo(options: CallOptions = {}): Promise<Received<GetInfoResponse__Output>> {
    return new Promise((resolve, reject) =>
      this.raw.GetInfo({}, callOptions(options, DEFAULT_UNARY_TIMEOUT_MS), (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }

  /** grpc.health.v1 Check of the Fanotify service, on this client's channel. */
  checkHealth(options: CallOptions = {}): Promise<ServingStatus> {
    if (!this.health) {
      const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
      this.health = new Health(this.target, grpc.credentials.createInsecure(), { channelOverride: this.raw.getChannel() }) as unknown as HealthClient;
    }
    const health = this.health;
    return new Promise((resolve, reject) =>
      health.check({ service: 'fanotify.v1.Fanotify' }, callOptions(options, DEFAULT_UNARY_TIMEOUT_MS), (err, res) => (err ? reject(err) : resolve(res!.status))),
    );
  }

  /** Open a Watch stream and send `subscribe` on it. No deadline unless options.timeoutMs. */
  watch(subscribe: Subscribe, handlers: WatchHandlers, options: CallOptions = {}): WatchStream {
    return this.open(subscribe, handlers, options);
  }

  /** Join a named watch (Attach) instead of opening one. */
  attach(attach: Attach, handlers: WatchHandlers, options: CallOptions = {}): WatchStream {
    return this.open({ attach }, handlers, options);
  }

  /**
   * A watch that outlives its streams: named (subscribe.name) with a
   * linger, re-attached after a lost stream, resuming after the last
   * sequence seen (resumable-watch.ts).
   */
  resumableWatch(subscribe: Subscribe, handlers: ResumableHandlers, options: ResumeOptions = {}): ResumableWatch {
    return new ResumableWatch((opening, h, waitForReady) => this.open(opening, h, { waitForReady }), subscribe, handlers, options);
  }

  private open(opening: WatchOpening, handlers: WatchHandlers, options: CallOptions): WatchStream {
    return new WatchStream(this.raw.Watch(callOptions(options)), opening, handlers);
  }

  /** Close the channel; calls still open on it are cancelled. */
  close(): void {
    this.raw.close();
  }
}
