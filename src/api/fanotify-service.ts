// gRPC handlers for fanotify.v1.Fanotify. A Watch stream owns one Watch
// (src/watch) for its life: Subscribe opens it, verdicts flow into it,
// batches flow out of it, and whatever ends the stream closes it, which
// answers every pending permission event.
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { KernelFeatures } from '../kernel/probe';
import type { EventPump } from '../kernel/pump';
import type { Logger } from '../common/log';
import { HandleResolver } from '../host/enrich';
import { checkPermissionTarget, chooseReportMode } from '../kernel/group';
import { Watch, type WatchEvent, type WatchSink, type WatchStats } from '../watch/watch';
import * as convert from './convert';
import { SyscallError } from '../kernel/ffi';
import { ApiError, toStatus } from './errors';
import { Authorizer, type PolicyRule } from './policy';
import { encodeEvent, eventBatch } from './wire';

export interface ServiceLimits extends convert.SubscribeLimits {
  queueCapacity: number;
  maxWatches: number;
  maxPendingPerWatch: number;
  maxWatchesPerIdentity: number;
  /** A Watch stream must send Subscribe this soon (the connection handshake time); unset: no limit. */
  handshakeTimeoutMs?: number;
  /** The server's largest message (--max-message-bytes); batches stay below it too. */
  maxMessageBytes?: number;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type WatchCall = grpc.ServerDuplexStream<any, any>;

function addStats(a: WatchStats | undefined, b: WatchStats): WatchStats {
  if (!a) return b;
  const out = { ...a, decisions: { ...a.decisions } };
  for (const k of Object.keys(b) as Array<keyof WatchStats>) {
    if (k === 'decisions') for (const d of Object.keys(b.decisions) as Array<keyof WatchStats['decisions']>) out.decisions[d] += b.decisions[d];
    else if (k !== 'pending' && k !== 'queued') (out[k] as number) += b[k] as number;
  }
  return out;
}

/**
 * Who the client is: on TLS, its certificate's subject CN and SAN entries
 * (a SPIFFE ID is a URI SAN); on the unix socket, "local" (the socket's
 * mode and group decide who can connect); on plain TCP, "insecure".
 */
export function clientIdentity(call: {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate };
  getConnectionInfo?: () => { remoteAddress?: string };
}): string {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  if (cert) {
    const names = [cert.subject?.CN ? `CN=${cert.subject.CN}` : '', ...(cert.subjectaltname ? cert.subjectaltname.split(', ') : [])].filter(Boolean);
    return names.join(',') || 'certificate without names';
  }
  // Only TCP connections have a remote address; a unix socket's peer has none.
  const remote = call.getConnectionInfo?.().remoteAddress;
  return remote ? 'insecure' : 'local';
}

/** Marks a request frame that did not decode; the handler answers INVALID_ARGUMENT. */
const UNDECODABLE = Symbol('undecodable');

/**
 * The service definition with request decoding that never throws: grpc-js
 * answers a frame its deserializer rejects with INTERNAL and no reason, but
 * a bad frame is the client's error, and the client should learn what it is.
 */
/**
 * Largest EventBatch message sent (but for a single event, at most a few
 * tens of KiB): a client with grpc's default 4 MiB receive limit must never
 * get a message it refuses, which would end its stream.
 */
export const MAX_BATCH_BYTES = 1024 * 1024;
/** A WatchResponse around a batch's events adds a tag and a length: at most 6 bytes. */
const BATCH_HEADER_BYTES = 6;

export function serviceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const [name, m] of Object.entries(def)) {
    out[name] = {
      ...m,
      // Event batches arrive already encoded (wire.ts).
      responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : m.responseSerialize(v)),
      requestDeserialize: (buf: Buffer) => {
        try {
          return m.requestDeserialize(buf);
        } catch (err) {
          return { [UNDECODABLE]: (err as Error).message };
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

function undecodable(req: any, type: string): ApiError | undefined {
  if (req && typeof req === 'object' && UNDECODABLE in req) {
    return new ApiError(grpc.status.INVALID_ARGUMENT, `the request is not a valid ${type}: ${req[UNDECODABLE]}`);
  }
  return undefined;
}

export class FanotifyService {
  private readonly watches = new Map<string, Watch>();
  private seq = 0;
  private shuttingDown = false;
  /** Statistics of closed watches, summed, so totals survive their watches. */
  private closedTotals?: WatchStats;
  /** Fed with each client verdict's latency (metrics). */
  onVerdictLatency?: (ms: number) => void;
  /** Streams waiting for 'drain' (one listener each, however many writes were refused). */
  private readonly draining = new WeakSet<WatchCall>();
  /** Where audit records go (--audit-file); none by default. */
  audit?: { record(kind: string, fields: Record<string, unknown>): void };

  /** The identity each open watch was opened by, for per-rule watch limits. */
  private readonly identities = new Map<string, string>();

  constructor(
    private readonly pump: EventPump,
    private readonly kernel: KernelFeatures,
    readonly limits: ServiceLimits,
    private readonly log: Logger,
    readonly version: string,
    readonly authorizer = new Authorizer(),
  ) {}

  /** Run an authorization check; a refusal is logged with who asked, then thrown. */
  private authorize(identity: string, peer: string, what: string, check: () => void): void {
    try {
      check();
    } catch (err) {
      const reason = (err as Error).message;
      this.log.warn('denied', { identity, peer, what, reason });
      this.audit?.record('denied', { identity, peer, what, reason });
      throw err;
    }
  }

  private watchesOfRule(rule: PolicyRule): number {
    let n = 0;
    for (const identity of this.identities.values()) if (this.authorizer.ruleFor(identity)?.rule === rule) n++;
    return n;
  }

  get activeWatches(): number {
    return this.watches.size;
  }

  /** Statistics of the open watches. */
  liveStats(): WatchStats[] {
    return [...this.watches.values()].map((w) => w.snapshot());
  }

  /** Statistics of every watch the daemon has served, open and closed. */
  totals(): WatchStats[] {
    return this.closedTotals ? [...this.liveStats(), this.closedTotals] : this.liveStats();
  }

  implementation(): grpc.UntypedServiceImplementation {
    return {
      Watch: (call: WatchCall) => this.watch(call),
      GetInfo: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        try {
          const bad = undecodable(call.request, 'fanotify.v1.GetInfoRequest');
          if (bad) throw bad;
          this.authorize(clientIdentity(call), call.getPeer(), 'GetInfo', () => this.authorizer.checkGetInfo(clientIdentity(call)));
          cb(null, this.info());
        } catch (err) {
          cb(toStatus(err));
        }
      },
    };
  }

  /** Answer every pending permission event with ALLOW and close every group. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const w of [...this.watches.values()]) w.close('shutdown');
  }

  private watch(call: WatchCall): void {
    const peer = call.getPeer();
    const identity = clientIdentity(call);
    let watch: Watch | undefined;
    let subscribing = false;
    let ended = false;
    // A stream that never subscribes holds a connection and nothing else: it gets the handshake time to do so.
    const limitMs = this.limits.handshakeTimeoutMs;
    const subscribeDeadline = limitMs
      ? setTimeout(() => {
          if (!watch && !subscribing) finish(new ApiError(grpc.status.DEADLINE_EXCEEDED, `no Subscribe within ${limitMs} ms of opening the stream; send Subscribe first`));
        }, limitMs)
      : undefined;
    const onClose = (closed: Watch) => {
      this.watches.delete(closed.id);
      this.identities.delete(closed.id);
      const stats = closed.snapshot();
      this.closedTotals = addStats(this.closedTotals, stats);
      this.log.info('watch closed', { watch: closed.id, identity, peer, stats });
      this.audit?.record('watch_closed', { watch: closed.id, identity, peer });
      // Closed by shutdown (not by the stream): end the stream too.
      if (this.shuttingDown) finish(new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down'));
    };

    const finish = (err?: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(subscribeDeadline);
      if (watch && !watch.isClosed) watch.close('disconnect');
      if (err !== undefined) {
        const status = toStatus(err);
        if (status.code === grpc.status.INTERNAL) this.log.error('watch failed', { peer, watch: watch?.id, error: err });
        call.emit('error', status);
      } else {
        call.end();
      }
    };

    const subscribe = async (msg: unknown) => {
      if (watch || subscribing) throw new ApiError(grpc.status.FAILED_PRECONDITION, 'Subscribe was already sent on this stream; open another stream for another watch');
      if (this.shuttingDown) throw new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down');
      const req = convert.parseSubscribe(msg, this.limits, this.kernel);
      if (this.watches.size >= this.limits.maxWatches) {
        throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `the daemon already serves ${this.watches.size} watches, its limit`);
      }
      const mine = [...this.identities.values()].filter((i) => i === identity).length;
      if (mine >= this.limits.maxWatchesPerIdentity) {
        throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `client "${identity}" already holds ${mine} watches, the limit per client (--max-watches-per-identity)`);
      }
      this.authorize(identity, peer, 'Subscribe', () =>
        this.authorizer.checkWatch(identity, req.group.groupClass, req.group.marks, (rule) => this.watchesOfRule(rule)),
      );
      if (req.group.groupClass !== 'notif') for (const m of req.group.marks) checkPermissionTarget(m.path);
      // Reserve the stream's watch before the first await, so a second
      // Subscribe arriving meanwhile is refused.
      subscribing = true;
      const resolver = chooseReportMode(req.group) === 'dfid_name' ? await HandleResolver.open(req.group.marks.map((m) => m.path)) : undefined;
      if (ended) {
        resolver?.close();
        return;
      }
      const id = `w${++this.seq}`;
      const features = {
        reportPidfd: this.kernel.initFlags.get(K.FAN_REPORT_PIDFD) === true && !req.skipPidVerification,
        evictable: this.kernel.markFlags.get(K.FAN_MARK_EVICTABLE) === true,
      };
      const opts = {
        verdictTimeoutMs: req.verdictTimeoutMs,
        timeoutDecision: req.timeoutDecision,
        maxBatchEvents: req.maxBatchEvents,
        queueCapacity: this.limits.queueCapacity,
        // grpc-js would end the stream on a message past its send limit.
        maxBatchBytes: Math.min(MAX_BATCH_BYTES, (this.limits.maxMessageBytes ?? Infinity) - BATCH_HEADER_BYTES),
        maxPending: this.limits.maxPendingPerWatch,
        onVerdictLatency: (ms: number) => this.onVerdictLatency?.(ms),
        onDecision: (item: WatchEvent, allowed: boolean, by: string) =>
          this.audit?.record('decision', {
            watch: id,
            identity,
            event: item.id,
            path: item.ev.path?.toString('utf8') ?? '',
            pid: item.ev.process.pid,
            exe: item.ev.process.exe,
            decision: allowed ? 'allow' : 'deny',
            decided_by: by,
            latency_ms: Date.now() - item.ev.timeMs,
          }),
        // The watch closed itself after an internal failure: end the stream with INTERNAL.
        onFailed: (err: Error) => finish(new ApiError(grpc.status.INTERNAL, `the watch failed and was closed: ${err.message}`)),
      };
      let w: Watch;
      try {
        w = new Watch(id, req.group, features, opts, this.pump, this.log, resolver, onClose);
      } catch (err) {
        resolver?.close();
        throw err;
      }
      watch = w;
      this.watches.set(id, w);
      this.identities.set(id, identity);
      this.log.info('watch opened', {
        watch: id,
        identity,
        peer,
        class: req.group.groupClass,
        marks: req.group.marks.map((m) => ({ path: m.path, scope: m.scope, mask: m.mask })),
        report_mode: w.reportMode,
      });
      this.audit?.record('watch_opened', {
        watch: id,
        identity,
        peer,
        class: req.group.groupClass,
        marks: req.group.marks.map((m) => ({ path: m.path, scope: m.scope, mask: m.mask })),
      });
      call.write({
        subscribed: {
          watch_id: id,
          init_flags: w.initFlags,
          init_flag_names: K.initFlagNames(w.initFlags),
          report_mode: convert.reportModeName(w.reportMode),
          verdict_timeout_ms: opts.verdictTimeoutMs,
          timeout_decision: convert.decisionName(opts.timeoutDecision),
          max_batch_events: opts.maxBatchEvents,
          queue_capacity: opts.queueCapacity,
        },
      });
      const sink: WatchSink = {
        encode: encodeEvent,
        sendEvents: (encoded) => this.write(call, w, eventBatch(encoded)),
        sendOverflow: (notice) => this.write(call, w, { overflow: convert.overflowToProto(notice) }),
      };
      w.attach(sink);
    };

    const requireWatch = (what: string): Watch => {
      if (watch) return watch;
      throw new ApiError(
        grpc.status.FAILED_PRECONDITION,
        subscribing ? `${what} sent before Subscribed was received; wait for it` : `${what} sent before Subscribe; send Subscribe first`,
      );
    };

    call.on('data', (req: any) => {
      if (ended) return;
      try {
        const bad = undecodable(req, 'fanotify.v1.WatchRequest');
        if (bad) throw bad;
        if (req?.subscribe) subscribe(req.subscribe).catch(finish);
        else if (req?.verdicts) {
          const w = requireWatch('verdicts');
          for (const v of convert.parseVerdicts(req.verdicts, w)) w.verdict(v.id, v.decision, v);
        } else if (req?.add_mark || req?.remove_mark || req?.flush_marks) {
          const w = requireWatch('mark requests');
          void this.markRequest(w, req, identity, peer).then((result) => {
            if (!ended && !w.isClosed) call.write({ mark_result: result });
          });
        } else {
          throw new ApiError(grpc.status.INVALID_ARGUMENT, 'WatchRequest has neither subscribe nor verdicts set');
        }
      } catch (err) {
        finish(err);
      }
    });
    call.on('end', () => finish());
    call.on('cancelled', () => finish());
    call.on('error', () => finish());
    call.on('close', () => finish());
  }

  /** Carry out one mark request; failures become the result, never the end of the stream. */
  private async markRequest(w: Watch, req: any, identity: string, peer: string): Promise<unknown> {
    const r = req.add_mark ?? req.remove_mark ?? req.flush_marks;
    const requestId = r?.request_id ?? '0';
    try {
      if (req.flush_marks) {
        w.flushMarks(convert.parseFlushScope(req.flush_marks));
      } else {
        const where = req.add_mark ? 'AddMark' : 'RemoveMark';
        const mark = convert.parseMark(r.mark, `${where}.mark`, w.groupClass, this.kernel);
        if (req.add_mark) this.authorize(identity, peer, 'AddMark', () => this.authorizer.checkWatch(identity, w.groupClass, [mark]));
        if (w.groupClass !== 'notif' && req.add_mark) checkPermissionTarget(mark.path);
        if (req.add_mark) await w.addMark(mark);
        else w.removeMark(mark);
      }
      return { request_id: requestId, code: grpc.status.OK, message: '', errno: '' };
    } catch (err) {
      const status = toStatus(err);
      return { request_id: requestId, code: status.code, message: status.details, errno: err instanceof SyscallError ? err.code : '' };
    }
  }

  private write(call: WatchCall, w: Watch, msg: unknown): boolean {
    if (call.cancelled || call.destroyed) return false;
    const ok = call.write(msg);
    if (!ok && !this.draining.has(call)) {
      this.draining.add(call);
      call.once('drain', () => {
        this.draining.delete(call);
        w.resume();
      });
    }
    return ok;
  }

  info() {
    const k = this.kernel;
    const classes: string[] = [];
    if (k.classes.notif) classes.push('GROUP_CLASS_NOTIF');
    if (k.classes.content) classes.push('GROUP_CLASS_CONTENT');
    if (k.classes.pre_content) classes.push('GROUP_CLASS_PRE_CONTENT');
    const scopes: string[] = [];
    if (k.scopes.inode) scopes.push('MARK_SCOPE_INODE');
    if (k.scopes.mount) scopes.push('MARK_SCOPE_MOUNT');
    if (k.scopes.filesystem) scopes.push('MARK_SCOPE_FILESYSTEM');
    if (k.scopes.mount_namespace) scopes.push('MARK_SCOPE_MOUNT_NAMESPACE');
    const events = convert.EVENT_TYPES.filter(([, bit]) => bit === K.FAN_Q_OVERFLOW || k.events.get(bit)).map(([n]) => n);
    const initFlags = K.INIT_FLAG_NAMES.filter(([bit]) => k.initFlags.get(bit)).map(([, n]) => n);
    const l = this.limits;
    return {
      kernel_release: k.release,
      daemon_version: this.version,
      group_classes: classes,
      event_types: events,
      mark_scopes: scopes,
      init_flags: initFlags,
      kernel_limits: {
        max_queued_events: k.limits.maxQueuedEvents,
        max_user_groups: k.limits.maxUserGroups,
        max_user_marks: k.limits.maxUserMarks,
      },
      limits: {
        default_verdict_timeout_ms: l.defaultVerdictTimeoutMs,
        max_verdict_timeout_ms: l.maxVerdictTimeoutMs,
        default_max_batch_events: l.defaultMaxBatchEvents,
        max_batch_events: l.maxBatchEvents,
        queue_capacity: l.queueCapacity,
        max_watches: l.maxWatches,
        max_marks_per_watch: l.maxMarksPerWatch,
        max_pending_per_watch: l.maxPendingPerWatch,
        max_watches_per_identity: l.maxWatchesPerIdentity,
      },
      active_watches: this.watches.size,
    };
  }
}
