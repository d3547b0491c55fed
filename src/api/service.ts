// gRPC handlers for fanotify.v1.Fanotify. Watch gives each stream a
// WatchSession (watch-session.ts); GetInfo answers from the probe and the
// limits. shutdown() ends every stream, answering pending permission events
// with ALLOW.
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { KernelFeatures } from '../kernel/probe';
import type { Logger } from '../common/log';
import type { WatchStats } from '../watch/types';
import * as convert from './convert';
import { toStatus } from './errors';
import type { GetInfoRequest__Output } from './gen/fanotify/v1/GetInfoRequest';
import type { GetInfoResponse } from './gen/fanotify/v1/GetInfoResponse';
import type { GroupClass__Output } from './gen/fanotify/v1/GroupClass';
import type { MarkScope__Output } from './gen/fanotify/v1/MarkScope';
import { clientIdentity, identityFields } from './identity';
import { Authorizer } from './policy';
import { WatchRegistry } from './registry';
import { isUndecodable, undecodableError, type Incoming } from './service-definition';
import type { WatchFactory } from './watch-factory';
import type { AuditSink, ServiceLimits } from './watch-options';
import { WatchSession, type SessionContext, type WatchCall } from './watch-session';
export { serviceDefinition } from './service-definition';
export type { ServiceLimits } from './watch-options';

type GetInfoCall = grpc.ServerUnaryCall<Incoming<GetInfoRequest__Output>, GetInfoResponse>;

export class FanotifyService {
  readonly registry: WatchRegistry;
  private readonly sessions = new Set<WatchSession>();
  private readonly context: SessionContext;
  /** Fed with each client verdict's latency (metrics). */
  onVerdictLatency?: (ms: number) => void;
  /** Where audit records go (--audit-file); none by default. */
  audit?: AuditSink;
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
    this.context = {
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

  /** Refuse new watches, then end every stream: pending permission events are answered ALLOW. */
  shutdown(): void {
    this.registry.shutdown();
    for (const s of [...this.sessions]) s.shutdown();
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
      },
      active_watches: this.registry.activeWatches,
      host_root: this.hostRoot.path,
      host_root_note: this.hostRoot.note,
    };
  }
}
