// One Watch stream: a state machine from the stream's first request to its
// status. A stream is attached to at most one watch for its life: Subscribe
// opens it, or Attach joins a named one; verdicts and mark requests flow
// into it, batches flow out of it, and whatever ends the stream detaches
// it: an unnamed watch then closes, which answers every pending permission
// event; a named one hands this stream's events to its other streams, or
// lingers (watch.ts).
//
//   awaiting-subscribe --Subscribe--> subscribing --opened--> active
//          |           ------------------Attach------------->   |
//          |                              |                     |
//          +------------------------------+---------------------+--> closing --> closed
//
// What ends a stream: the client cancels, the daemon shuts down, the watch
// fails, or a request is refused. A client's half-close (the end of its
// requests) is none of these: the watch goes on, so a client can send its
// Subscribe, close its side, and read events until it cancels.
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import type { MarkSpec } from '../kernel/group';
import type { Logger } from '../common/log';
import type { Attachment, WatchSink } from '../watch/types';
import * as convert from './convert';
import { ApiError, errnoName, toStatus } from './errors';
import type { MarkResult } from './gen/fanotify/v1/MarkResult';
import type { Attach__Output } from './gen/fanotify/v1/Attach';
import type { Subscribe__Output } from './gen/fanotify/v1/Subscribe';
import type { WatchRequest__Output } from './gen/fanotify/v1/WatchRequest';
import type { WatchResponse } from './gen/fanotify/v1/WatchResponse';
import { clientIdentity, describeIdentity, identityFields, type ClientIdentity } from './identity';
import type { AttachGrant, Authorizer } from './policy';
import type { WatchRegistry, WatchSlot } from './registry';
import { isUndecodable, undecodableError, type Incoming, type Outgoing } from './service-definition';
import type { PreparedWatch, WatchFactory, WatchHandle } from './watch-factory';
import { watchOptions, type AuditSink, type ServiceLimits } from './watch-options';
import type { KernelFeatures } from '../kernel/probe';
import { parseSelection, type SelectionContext, type SelectionMessage } from './selection-request';
import { encodeEvent, eventBatch, withSequence } from './wire';

export type WatchCall = grpc.ServerDuplexStream<Incoming<WatchRequest__Output>, Outgoing<WatchResponse>>;

export type SessionState =
  | { readonly name: 'awaiting-subscribe'; readonly timer?: NodeJS.Timeout }
  | { readonly name: 'subscribing'; readonly slot: WatchSlot }
  /** Attached to a watch: its own (Subscribe), or a named one's (Attach; the slot is then the watch's). */
  | { readonly name: 'active'; readonly slot: WatchSlot; readonly watch: WatchHandle; readonly attachment: Attachment }
  /** Ended while its watch was being prepared: the slot is held until the preparation settles. */
  | { readonly name: 'closing'; readonly slot: WatchSlot }
  | { readonly name: 'closed' };

/** Why a session ended. */
export type SessionEnd =
  /** The client went away: there is nobody to tell. */
  | { readonly kind: 'cancelled' }
  /** The client's requests ended before any Subscribe: end with OK. */
  | { readonly kind: 'finished' }
  | { readonly kind: 'shutdown' }
  /** A refused request or a failed watch: the status says which. */
  | { readonly kind: 'error'; readonly error: unknown };

/** What every session of a service shares. */
export interface SessionContext {
  readonly registry: WatchRegistry;
  readonly factory: WatchFactory;
  readonly authorizer: Authorizer;
  readonly kernel: KernelFeatures;
  readonly limits: ServiceLimits;
  readonly log: Logger;
  /** /proc/sys/kernel/random/boot_id, read at start-up. */
  readonly bootId: string;
  audit(): AuditSink | undefined;
  onVerdictLatency(ms: number): void;
  /** The session has ended (the service stops tracking it). */
  ended(session: WatchSession): void;
}

const REQUEST_KINDS = 'subscribe, verdicts, add_mark, remove_mark, flush_marks, replace_rules, get_stats';

export class WatchSession {
  private current: SessionState;
  /** The one cancellation signal: aborted, with the SessionEnd, when the stream ends for any reason. */
  private readonly controller = new AbortController();
  readonly identity: ClientIdentity;
  readonly peer: string;
  private waitingForDrain = false;
  /** The stream request answered last (orderedRequest). */
  private requestQueue: Promise<void> = Promise.resolve();
  /** What ReplaceRules is checked against: the watch's class, from its Subscribe. */
  private selectionContext: SelectionContext = { groupClass: 'notif' };
  /**
   * Attached to another client's watch under this policy grant: the stream
   * reads and answers, but the marks and rules stay its creator's to change.
   */
  private grant?: AttachGrant;

  constructor(
    private readonly call: WatchCall,
    private readonly ctx: SessionContext,
  ) {
    this.identity = clientIdentity(call);
    this.peer = call.getPeer();
    // A stream that never subscribes holds a connection and nothing else: it gets the handshake time to do so.
    const limitMs = ctx.limits.handshakeTimeoutMs;
    const timer = limitMs
      ? setTimeout(() => {
          if (this.current.name === 'awaiting-subscribe') {
            this.end({ kind: 'error', error: new ApiError(grpc.status.DEADLINE_EXCEEDED, `no Subscribe within ${limitMs} ms of opening the stream; send Subscribe first`) });
          }
        }, limitMs)
      : undefined;
    this.current = { name: 'awaiting-subscribe', timer };
    call.on('data', (req: Incoming<WatchRequest__Output>) => this.receive(req));
    call.on('end', () => this.requestsEnded());
    call.on('cancelled', () => this.end({ kind: 'cancelled' }));
    call.on('error', () => this.end({ kind: 'cancelled' }));
    call.on('close', () => this.end({ kind: 'cancelled' }));
  }

  get state(): SessionState['name'] {
    return this.current.name;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The watch, while active. */
  get watch(): WatchHandle | undefined {
    return this.current.name === 'active' ? this.current.watch : undefined;
  }

  /** Handle one request; a refused one ends the stream with its status. */
  receive(req: Incoming<WatchRequest__Output>): void {
    if (this.current.name === 'closing' || this.current.name === 'closed') return;
    try {
      if (isUndecodable(req)) throw undecodableError(req, 'fanotify.v1.WatchRequest');
      switch (req.request) {
        case 'subscribe':
          return this.subscribe(req.subscribe);
        case 'attach':
          return this.attachTo(req.attach);
        case 'verdicts':
          return this.verdicts(req);
        case 'add_mark':
        case 'remove_mark':
        case 'flush_marks':
        case 'replace_rules':
        case 'get_stats':
          return this.orderedRequest(req);
        default:
          throw new ApiError(grpc.status.INVALID_ARGUMENT, `WatchRequest has none of ${REQUEST_KINDS} set (nor attach); send subscribe or attach first`);
      }
    } catch (err) {
      this.end({ kind: 'error', error: err });
    }
  }

  /** The daemon is shutting down: refuse or close, and tell the client UNAVAILABLE. */
  shutdown(): void {
    this.end({ kind: 'shutdown' });
  }

  /**
   * The client sent its last request. Before Subscribe, none will come, so
   * the stream ends with OK; after, the watch goes on until the client
   * cancels (grpcurl closes its side after sending -d and then reads).
   */
  private requestsEnded(): void {
    if (this.current.name === 'awaiting-subscribe') this.end({ kind: 'finished' });
  }

  private subscribe(msg: Subscribe__Output | null | undefined): void {
    if (this.current.name !== 'awaiting-subscribe') {
      throw new ApiError(grpc.status.FAILED_PRECONDITION, 'Subscribe was already sent on this stream; open another stream for another watch');
    }
    if (this.ctx.registry.shuttingDown) throw new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down');
    const req = convert.parseSubscribe(msg ?? emptySubscribe(), this.ctx.limits, this.ctx.kernel);
    const rule = this.authorize('Subscribe', () => this.ctx.authorizer.checkWatch(this.identity, req.group.groupClass, req.group.marks));
    this.ctx.factory.check(req.group);
    // Every limit, and the name, is taken here, before the first await.
    const slot = this.ctx.registry.reserve(this.identity, rule, req.name || undefined);
    clearTimeout(this.current.timer);
    this.current = { name: 'subscribing', slot };
    const asked = msg ?? emptySubscribe();
    this.ctx.factory.prepare(req).then(
      (prepared) => this.prepared(slot, req, prepared, asked),
      (err: unknown) => this.preparationFailed(slot, err),
    );
  }

  private prepared(slot: WatchSlot, req: convert.SubscribeRequest, prepared: PreparedWatch, asked: Subscribe__Output): void {
    if (this.current.name === 'subscribing' && this.ctx.registry.shuttingDown) this.end({ kind: 'shutdown' });
    // The stream ended, or the daemon began shutting down, while this was awaited: open nothing.
    if (this.current.name !== 'subscribing') {
      prepared.release();
      slot.release();
      this.current = { name: 'closed' };
      return;
    }
    const who = { ...identityFields(this.identity), peer: this.peer };
    let watch: WatchHandle;
    try {
      const options = watchOptions(slot.id, req, this.ctx.limits, {
        audit: this.ctx.audit(),
        who,
        onVerdictLatency: (ms) => this.ctx.onVerdictLatency(ms),
        onFailed: (err) => this.end({ kind: 'error', error: new ApiError(grpc.status.INTERNAL, `the watch failed and was closed: ${err.message}`) }),
      });
      watch = prepared.open(slot.id, options, (w) => this.watchClosed(slot, w, who));
    } catch (err) {
      slot.release();
      this.end({ kind: 'error', error: err });
      this.current = { name: 'closed' };
      return;
    }
    slot.activate(watch, asked, req, req.lingerMs);
    this.selectionContext = { groupClass: req.group.groupClass };
    this.announce(watch, req, who);
    this.current = { name: 'active', slot, watch, attachment: watch.attach(this.sink()) };
  }

  /** Where the watch delivers to this stream. */
  private sink(): WatchSink {
    return {
      encode: encodeEvent,
      withSequence,
      sendEvents: (encoded) => this.send(eventBatch(encoded)),
      sendOverflow: (notice) => this.send({ overflow: convert.overflowToProto(notice) }),
      sendGap: (gap) => this.send({ gap: { from_sequence: gap.from, to_sequence: gap.to } }),
      closed: (err) => this.watchEnded(err),
    };
  }

  /** The watch closed under this stream (not by the stream's own end). */
  private watchEnded(err?: Error): void {
    if (this.current.name !== 'active') return;
    if (this.ctx.registry.shuttingDown) return this.end({ kind: 'shutdown' });
    this.end({ kind: 'error', error: new ApiError(grpc.status.INTERNAL, err ? `the watch failed and was closed: ${err.message}` : 'the watch closed') });
  }

  /**
   * Attach: join a named watch of this client, open or lingering, or one of
   * another client's that the policy lets it join (Authorizer.checkAttach).
   * Nothing is awaited: the Subscribed, the cursor's place and the replay
   * all happen before any new event can be read.
   */
  private attachTo(msg: Attach__Output | null | undefined): void {
    if (this.current.name !== 'awaiting-subscribe') {
      throw new ApiError(grpc.status.FAILED_PRECONDITION, 'Attach must be the first request of a stream; open another stream to attach');
    }
    if (this.ctx.registry.shuttingDown) throw new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down');
    const name = typeof msg?.name === 'string' ? msg.name : '';
    if (name === '') throw new ApiError(grpc.status.INVALID_ARGUMENT, 'Attach: name is empty; give the name the watch was subscribed with');
    convert.checkWatchName(name, 'Attach');
    const grants = new Map<WatchSlot, AttachGrant>();
    const slot = this.authorize('Attach', () =>
      this.ctx.registry.findNamed(this.identity, name, (s, d) => {
        if (!d.marksKnown) {
          throw new ApiError(
            grpc.status.PERMISSION_DENIED,
            `the watch named "${name}" belongs to another client and was restored from a definition that does not list the marks added to it since its Subscribe; only its creator may attach to it until it is opened anew`,
          );
        }
        const marks = [...d.request.group.marks, ...d.addedMarks];
        grants.set(s, this.ctx.authorizer.checkAttach(this.identity, { name, owner: d.identity, groupClass: d.watch.groupClass, marks }));
      }),
    );
    const def = slot.definition!;
    const watch = def.watch;
    const grant = grants.get(slot);
    // The policy may have changed since the watch was opened; a grant was checked against all its marks just now.
    if (!grant) this.authorize('Attach', () => this.ctx.authorizer.checkWatch(this.identity, watch.groupClass, [...def.request.group.marks, ...def.addedMarks]));
    this.grant = grant;
    if (grant) def.grantees.set(this, this.identity);
    clearTimeout(this.current.timer);
    const who = { ...identityFields(this.identity), peer: this.peer };
    // Attached under a grant: whose watch, and which rule and glob let this client join it.
    const foreign = grant ? { owner: identityFields(def.identity), grant: grant.name, glob: grant.glob } : {};
    const after = Number(msg?.after_sequence ?? 0);
    this.ctx.log.info('watch attached', { watch: watch.id, name, ...who, ...foreign, after_sequence: after, live_only: msg?.live_only === true });
    this.ctx.audit()?.record('watch_attached', { watch: watch.id, name, ...who, ...foreign });
    this.selectionContext = { groupClass: watch.groupClass };
    this.sendSubscribed(watch, def.request, true);
    const attachment = watch.attach(this.sink(), { afterSequence: after, liveOnly: msg?.live_only === true });
    this.current = { name: 'active', slot, watch, attachment };
  }

  private preparationFailed(slot: WatchSlot, err: unknown): void {
    slot.release();
    if (this.current.name === 'subscribing') this.end({ kind: 'error', error: err });
    this.current = { name: 'closed' };
  }

  /** Log, audit and tell the client the watch is open. */
  private announce(watch: WatchHandle, req: convert.SubscribeRequest, who: Record<string, unknown>): void {
    const marks = req.group.marks.map((m) => ({ path: m.path, scope: m.scope, mask: m.mask }));
    this.ctx.log.info('watch opened', { watch: watch.id, ...who, class: req.group.groupClass, marks, report_mode: watch.reportMode });
    const sel = req.selection;
    const selection = sel ? { include: sel.include.length, exclude: sel.exclude.length, rules: sel.rules.length } : {};
    this.ctx.audit()?.record('watch_opened', { watch: watch.id, ...who, class: req.group.groupClass, marks, ...selection, ...(req.name ? { name: req.name } : {}) });
    this.sendSubscribed(watch, req, false);
  }

  private sendSubscribed(watch: WatchHandle, req: convert.SubscribeRequest, attached: boolean): void {
    this.send({
      subscribed: {
        watch_id: watch.id,
        init_flags: watch.initFlags,
        init_flag_names: K.initFlagNames(watch.initFlags),
        report_mode: convert.reportModeName(watch.reportMode),
        verdict_timeout_ms: req.verdictTimeoutMs,
        timeout_decision: convert.decisionName(req.timeoutDecision),
        max_batch_events: req.maxBatchEvents,
        queue_capacity: this.ctx.limits.queueCapacity,
        first_sequence: watch.firstSequence,
        last_sequence: watch.lastSequence,
        name: req.name,
        attached,
        boot_id: this.ctx.bootId,
        linger_ms: req.lingerMs,
      },
    });
  }

  private watchClosed(slot: WatchSlot, w: WatchHandle, who: Record<string, unknown>): void {
    slot.release();
    this.ctx.log.info('watch closed', { watch: w.id, ...who, stats: w.snapshot() });
    this.ctx.audit()?.record('watch_closed', { watch: w.id, ...who });
    // Closed from below without onFailed (which follows at once when there is one): end the stream too.
    if (this.current.name === 'active') {
      queueMicrotask(() => {
        if (this.current.name === 'active') this.end({ kind: 'error', error: new ApiError(grpc.status.INTERNAL, 'the watch closed') });
      });
    }
  }

  private activeWatch(what: string): WatchHandle {
    return this.active(what).watch;
  }

  private active(what: string): Extract<SessionState, { name: 'active' }> {
    if (this.current.name === 'active') return this.current;
    throw new ApiError(
      grpc.status.FAILED_PRECONDITION,
      this.current.name === 'subscribing' ? `${what} sent before Subscribed was received; wait for it` : `${what} sent before Subscribe; send Subscribe first`,
    );
  }

  private verdicts(req: WatchRequest__Output): void {
    const { watch, attachment } = this.active('verdicts');
    // Under a grant a verdict answers the event only: `cache` would add an ignore mark to the creator's group.
    for (const v of convert.parseVerdicts(req.verdicts, watch)) attachment.verdict(v.id, v.decision, this.grant ? { ...v, cache: false } : v);
  }

  /**
   * Mark requests, ReplaceRules and GetStats are carried out one after
   * another and answered in the order sent: an AddMark may await (dfid_name
   * mode opens the path's mount first), and a request sent after it must
   * not overtake it (a GetStats after a ReplaceRules counts under the new rules).
   */
  private orderedRequest(req: WatchRequest__Output): void {
    const w = this.activeWatch(req.request === 'get_stats' || req.request === 'replace_rules' ? req.request : 'mark requests');
    this.requestQueue = this.requestQueue
      .then(async (): Promise<Outgoing<WatchResponse>> => {
        if (req.request === 'get_stats') return { stats: convert.statsToProto(w.snapshot(), req.get_stats?.request_id ?? '0') };
        return { mark_result: await this.carryOutMark(w, req) };
      })
      .then((answer) => {
        if (!this.signal.aborted && !w.isClosed) this.send(answer);
      });
  }

  /** Carry out one mark request or ReplaceRules; a failure becomes the result, never the end of the stream. */
  private async carryOutMark(w: WatchHandle, req: WatchRequest__Output): Promise<MarkResult> {
    const requestId = (req.add_mark ?? req.remove_mark ?? req.flush_marks ?? req.replace_rules)?.request_id ?? '0';
    try {
      if (this.grant) {
        throw new ApiError(
          grpc.status.PERMISSION_DENIED,
          `this stream joined another client's watch under ${this.grant.name} (attach ${JSON.stringify(this.grant.glob)}), which lets it read and answer events; only the client that created the watch may change its marks or rules`,
        );
      }
      if (req.request === 'replace_rules') {
        this.replaceRules(w, req.replace_rules ?? {});
      } else if (req.request === 'flush_marks') {
        w.flushMarks(convert.parseFlushScope(req.flush_marks));
      } else if (req.request === 'add_mark') {
        const mark = convert.parseMark(req.add_mark?.mark, 'AddMark.mark', w.groupClass, this.ctx.kernel);
        this.authorize('AddMark', () => this.ctx.authorizer.checkWatch(this.identity, w.groupClass, [mark]));
        this.ctx.factory.checkMark(w.groupClass, mark);
        // A stream gone while this waited its turn: its mark would be placed unrecorded.
        if (this.current.name !== 'active') throw new ApiError(grpc.status.CANCELLED, 'the stream ended before the mark was added');
        this.checkGrantees(this.current.slot, w, mark);
        // Counted and recorded before the kernel has it: an Attach under a grant, now or after a restart, is checked against it too.
        await this.current.slot.addMark(mark);
        await w.addMark(mark);
      } else {
        w.removeMark(convert.parseMark(req.remove_mark?.mark, 'RemoveMark.mark', w.groupClass, this.ctx.kernel));
      }
      return { request_id: requestId, code: grpc.status.OK, message: '', errno: '' };
    } catch (err) {
      const status = toStatus(err);
      return { request_id: requestId, code: status.code, message: status.details, errno: errnoName(err) };
    }
  }

  /**
   * A mark the creator adds must be one every stream attached under a
   * grant may see, or the grant would widen after the fact: refused while
   * such a stream is attached, naming it.
   */
  private checkGrantees(slot: WatchSlot, w: WatchHandle, mark: MarkSpec): void {
    const def = slot.definition;
    if (!def) return;
    for (const identity of def.grantees.values()) {
      try {
        this.ctx.authorizer.checkAttach(identity, { name: def.name, owner: def.identity, groupClass: w.groupClass, marks: [mark] });
      } catch (err) {
        throw new ApiError(
          grpc.status.PERMISSION_DENIED,
          `client ${describeIdentity(identity)} is attached to this watch under a policy grant that does not cover this mark (${(err as Error).message}); add it once that stream has ended`,
        );
      }
    }
  }

  /** ReplaceRules: validated as Subscribe's fields are, then swapped in the watch at once. */
  private replaceRules(w: WatchHandle, msg: SelectionMessage): void {
    const spec = parseSelection(msg, 'ReplaceRules', this.selectionContext);
    w.replaceSelection(spec);
    const fields = { watch: w.id, ...identityFields(this.identity), peer: this.peer, include: spec.include.length, exclude: spec.exclude.length, rules: spec.rules.length };
    this.ctx.log.info('rules replaced', fields);
    this.ctx.audit()?.record('rules_replaced', fields);
  }

  /** Run an authorization check; a refusal is logged and audited with who asked, then thrown. */
  private authorize<T>(what: string, check: () => T): T {
    try {
      return check();
    } catch (err) {
      // Only a refusal is a denial (not NOT_FOUND, say, from the lookup around it).
      if (!(err instanceof ApiError) || err.status !== grpc.status.PERMISSION_DENIED) throw err;
      const fields = { ...identityFields(this.identity), peer: this.peer, what, reason: (err as Error).message };
      this.ctx.log.warn('denied', fields);
      this.ctx.audit()?.record('denied', fields);
      throw err;
    }
  }

  /** Write one response; false: wait for 'drain' (the watch is resumed then). */
  private send(msg: Outgoing<WatchResponse>): boolean {
    if (this.call.cancelled || this.call.destroyed) return false;
    const ok = this.call.write(msg);
    if (!ok && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.call.once('drain', () => {
        this.waitingForDrain = false;
        if (this.current.name === 'active') this.current.attachment.resume();
      });
    }
    return ok;
  }

  /**
   * End the session, once: abort the signal, leave the state the end finds
   * it in, and send the status. Later calls do nothing.
   */
  private end(why: SessionEnd): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(why);
    const s = this.current;
    switch (s.name) {
      case 'awaiting-subscribe':
        clearTimeout(s.timer);
        this.current = { name: 'closed' };
        break;
      case 'subscribing':
        this.current = { name: 'closing', slot: s.slot };
        break;
      case 'active':
        s.slot.definition?.grantees.delete(this);
        this.current = { name: 'closing', slot: s.slot };
        if (why.kind === 'shutdown') s.watch.close('shutdown');
        else s.attachment.detach();
        this.current = { name: 'closed' };
        break;
      case 'closing':
      case 'closed':
        break;
    }
    this.finish(why);
  }

  /** Tell the service, and the client when it is still there. */
  private finish(why: SessionEnd): void {
    this.ctx.ended(this);
    if (why.kind === 'cancelled') return;
    if (why.kind === 'finished') {
      this.call.end();
      return;
    }
    const status = toStatus(why.kind === 'shutdown' ? new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down') : why.error);
    if (status.code === grpc.status.INTERNAL) this.ctx.log.error('watch failed', { peer: this.peer, watch: this.watchId(), error: why.kind === 'error' ? why.error : undefined });
    this.call.emit('error', status);
  }

  private watchId(): string | undefined {
    const s = this.current;
    return s.name === 'subscribing' || s.name === 'active' || s.name === 'closing' ? s.slot.id : undefined;
  }
}

/** A Subscribe with every field at its default: what an empty `subscribe` decodes to. */
function emptySubscribe(): Subscribe__Output {
  return {
    group_class: 'GROUP_CLASS_UNSPECIFIED',
    marks: [],
    verdict_timeout_ms: 0,
    timeout_decision: 'DECISION_UNSPECIFIED',
    max_batch_events: 0,
    enable_audit: false,
    report_tid: false,
    report_target_fid: false,
    report_fd_error: false,
    report_mode: 'REPORT_MODE_UNSPECIFIED',
    skip_pid_verification: false,
    include: [],
    exclude: [],
    process_details: 'PROCESS_DETAILS_UNSPECIFIED',
    coalesce_ms: 0,
    max_events_per_second: 0,
    rules: [],
    name: '',
    linger_ms: 0,
  };
}
