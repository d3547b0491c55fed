// gRPC handlers for fanotify.v1.Fanotify. Watch gives each stream a
// WatchSession (watch-session.ts); GetInfo answers from the probe and the
// limits. shutdown() ends every stream and closes every watch (lingering
// ones too), answering pending permission events with ALLOW.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { MarkSpec } from '../kernel/group';
import type { KernelFeatures } from '../kernel/probe';
import type { Logger } from '../common/log';
import type { WatchStats } from '../watch/types';
import * as convert from './convert';
import { toStatus } from './errors';
import type { GetInfoRequest__Output } from './gen/fanotify/v1/GetInfoRequest';
import type { GetInfoResponse } from './gen/fanotify/v1/GetInfoResponse';
import type { GroupClass__Output } from './gen/fanotify/v1/GroupClass';
import type { MarkScope__Output } from './gen/fanotify/v1/MarkScope';
import type { Subscribe__Output } from './gen/fanotify/v1/Subscribe';
import { clientIdentity, identityFields, type ClientIdentity } from './identity';
import { SELECTION_LIMITS } from './selection-request';
import { Authorizer } from './policy';
import { WatchRegistry, type NamedWatch, type WatchSlot } from './registry';
import { isUndecodable, undecodableError, type Incoming } from './service-definition';
import type { WatchFactory, WatchHandle } from './watch-factory';
import { watchOptions, type AuditSink, type ServiceLimits } from './watch-options';
import { WatchSession, type SessionContext, type WatchCall } from './watch-session';
export { serviceDefinition } from './service-definition';
export type { ServiceLimits } from './watch-options';

type GetInfoCall = grpc.ServerUnaryCall<Incoming<GetInfoRequest__Output>, GetInfoResponse>;

/** A named watch to open again without a stream (after a daemon restart): what NamedWatch said of it, and where it goes on. */
export interface StoredWatch {
  name: string;
  identity: ClientIdentity;
  subscribe: Subscribe__Output;
  /** The group fd the earlier process opened, taken over (its marks are in the kernel). */
  fd: number;
  /** The sequence its next event gets: one past the last the earlier process gave. */
  firstSequence: number;
  /** Marks added to it since its Subscribe (AddMark), as its definition recorded them; 'unknown' from a definition that did not record them. */
  addedMarks: MarkSpec[] | 'unknown';
}

/** The host's boot id; empty where the kernel has none. */
function readBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

export class FanotifyService {
  readonly registry: WatchRegistry;
  private readonly sessions = new Set<WatchSession>();
  private readonly context: SessionContext;
  private readonly factory: WatchFactory;
  /** Fed with each client verdict's latency (metrics). */
  onVerdictLatency?: (ms: number) => void;
  /** Where audit records go (--audit-file); none by default. */
  audit?: AuditSink;
  readonly bootId = readBootId();
  /** The host root request paths are resolved beneath, and why it is that one (GetInfo). */
  hostRoot: { path: string; note: string } = { path: '/', note: '' };

  constructor(
    factory: WatchFactory,
    private readonly kernel: KernelFeatures,
    readonly limits: ServiceLimits,
    private readonly log: Logger,
    readonly version: string,
    readonly authorizer = new Authorizer(),
  ) {
    this.registry = new WatchRegistry(limits, (identity) => authorizer.ruleFor(identity));
    this.factory = factory;
    this.context = {
      bootId: this.bootId,
      registry: this.registry,
      factory,
      authorizer,
      kernel,
      limits,
      log,
      audit: () => this.audit,
      onVerdictLatency: (ms) => this.onVerdictLatency?.(ms),
      ended: (session) => this.sessions.delete(session),
    };
  }

  get activeWatches(): number {
    return this.registry.activeWatches;
  }

  /** Statistics of the open watches. */
  liveStats(): WatchStats[] {
    return this.registry.liveStats();
  }

  /** Statistics of every watch the daemon has served, open and closed. */
  totals(): WatchStats[] {
    return this.registry.totals();
  }

  /**
   * The handlers. grpc-js takes them untyped (addService's implementation
   * is keyed by method name); each is typed by the generated messages.
   */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      Watch: (call: WatchCall) => this.watch(call),
      GetInfo: (call: GetInfoCall, cb: grpc.sendUnaryData<GetInfoResponse>) => this.getInfo(call, cb),
    };
  }

  /** Refuse new watches, then end every stream and close every watch: pending permission events are answered ALLOW. */
  shutdown(): void {
    this.registry.shutdown();
    for (const s of [...this.sessions]) s.shutdown();
    this.registry.closeAll('shutdown');
  }

  /**
   * Open a named watch again, without a stream, from its stored definition
   * and the group fd an earlier process of the daemon opened: it starts
   * reading at once and lingers for its linger_ms until a stream attaches.
   * Its sequence goes on from `firstSequence`. Throws what a Subscribe
   * would be refused with (the limits and the name are taken as for one).
   */
  async restore(stored: StoredWatch): Promise<WatchHandle> {
    const req = convert.parseSubscribe(stored.subscribe, this.limits, this.kernel);
    if (req.name !== stored.name || req.lingerMs <= 0) throw new Error(`stored watch "${stored.name}" is not a named watch with a linger`);
    const slot = this.registry.reserve(stored.identity, this.authorizer.ruleFor(stored.identity), stored.name);
    try {
      const prepared = await this.factory.prepare(req);
      const who = { ...identityFields(stored.identity), peer: 'restored' };
      const options = watchOptions(slot.id, req, this.limits, {
        audit: this.audit,
        who,
        onVerdictLatency: (ms) => this.onVerdictLatency?.(ms),
        onFailed: () => undefined,
      });
      const watch = prepared.open(slot.id, { ...options, adoptFd: stored.fd, firstSequence: stored.firstSequence }, (w) => this.restoredClosed(slot, w));
      slot.activate(watch, stored.subscribe, req, req.lingerMs, stored.addedMarks);
      watch.start();
      this.log.info('watch restored', { watch: watch.id, name: stored.name, ...who, first_sequence: stored.firstSequence });
      return watch;
    } catch (err) {
      slot.release();
      throw err;
    }
  }

  private restoredClosed(slot: WatchSlot, w: WatchHandle): void {
    slot.release();
    this.log.info('watch closed', { watch: w.id, name: slot.name, stats: w.snapshot() });
  }

  /** Named watches open now (restart support persists them). */
  namedWatches(): NamedWatch[] {
    return this.registry.named();
  }

  private watch(call: WatchCall): void {
    if (this.registry.shuttingDown) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the daemon is shutting down' });
      return;
    }
    this.sessions.add(new WatchSession(call, this.context));
  }

  private getInfo(call: GetInfoCall, cb: grpc.sendUnaryData<GetInfoResponse>): void {
    const identity = clientIdentity(call);
    try {
      if (isUndecodable(call.request)) throw undecodableError(call.request, 'fanotify.v1.GetInfoRequest');
      try {
        this.authorizer.checkGetInfo(identity);
      } catch (err) {
        const fields = { ...identityFields(identity), peer: call.getPeer(), what: 'GetInfo', reason: (err as Error).message };
        this.log.warn('denied', fields);
        this.audit?.record('denied', fields);
        throw err;
      }
      cb(null, this.info());
    } catch (err) {
      cb(toStatus(err));
    }
  }

  info(): GetInfoResponse {
    const k = this.kernel;
    const classes: GroupClass__Output[] = [];
    if (k.classes.notif) classes.push('GROUP_CLASS_NOTIF');
    if (k.classes.content) classes.push('GROUP_CLASS_CONTENT');
    if (k.classes.pre_content) classes.push('GROUP_CLASS_PRE_CONTENT');
    const scopes: MarkScope__Output[] = [];
    if (k.scopes.inode) scopes.push('MARK_SCOPE_INODE');
    if (k.scopes.mount) scopes.push('MARK_SCOPE_MOUNT');
    if (k.scopes.filesystem) scopes.push('MARK_SCOPE_FILESYSTEM');
    if (k.scopes.mount_namespace) scopes.push('MARK_SCOPE_MOUNT_NAMESPACE');
    if (k.scopes.subtree) scopes.push('MARK_SCOPE_SUBTREE');
    const l = this.limits;
    return {
      kernel_release: k.release,
      daemon_version: this.version,
      group_classes: classes,
      event_types: convert.EVENT_TYPES.filter(([, bit]) => bit === K.FAN_Q_OVERFLOW || k.events.get(bit)).map(([n]) => n),
      mark_scopes: scopes,
      init_flags: K.INIT_FLAG_NAMES.filter(([bit]) => k.initFlags.get(bit)).map(([, n]) => n),
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
        max_linger_ms: l.maxLingerMs,
        resume_buffer_bytes: l.resumeBufferBytes,
        resume_buffer_total_bytes: l.resumeBufferTotalBytes ?? 0,
        // What parseSelection enforces, so a client can size its filters before a Subscribe is refused.
        max_matches: SELECTION_LIMITS.maxMatches,
        max_globs: SELECTION_LIMITS.maxGlobs,
        max_ids: SELECTION_LIMITS.maxIds,
        max_coalesce_ms: SELECTION_LIMITS.maxCoalesceMs,
        max_events_per_second: SELECTION_LIMITS.maxEventsPerSecond,
      },
      active_watches: this.registry.activeWatches,
      boot_id: this.bootId,
      named_watches: this.registry.namedWatches,
      resume_buffer_used_bytes: l.resumeBudget?.used ?? 0,
      host_root: this.hostRoot.path,
      host_root_note: this.hostRoot.note,
    };
  }
}
