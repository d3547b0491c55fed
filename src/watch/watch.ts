// A watch: one fanotify group and its life. The parts each have a file:
// reader.ts (read, decode, describe, queue), pending.ts (verdicts awaited
// and their deadlines), responder.ts (the one answer per event), outbox.ts
// (the bounded queue and the sink). A stream attaches to a watch; the
// watch does not know about gRPC.
//
// Every permission event read from the kernel is answered exactly once:
// by verdict(), by its deadline (timeoutDecision), by close() (the
// timeoutDecision on disconnect, ALLOW on shutdown), at once with ALLOW
// when the daemon's own process caused it, it lies outside the watch's
// subtree marks (subtree.ts) or the watch's filters leave it out, or at
// once by the first of the watch's rules that matches it.
import { monotonicClock, type Clock } from '../common/clock';
import { FanotifydError } from '../common/errors';
import type { Logger } from '../common/log';
import { RateLimitedLog } from '../common/rate-limited-log';
import * as K from '../kernel/constants';
import * as ffi from '../kernel/ffi';
import { addIgnoreForFd, checkSubtreeMark, flushMarks, GroupSpecError, initFlags, openGroup, type GroupClass, type GroupFeatures, type GroupSpec, type MarkScope, type MarkSpec, type ReportMode } from '../kernel/group';
import type { EventPump, PumpClient } from '../kernel/pump';
import { responseWord } from '../kernel/response';
import type { HandleResolver } from '../host/handle-resolver';
import { ProcessCache } from '../host/process-cache';
import { Coalescer } from './coalescer';
import { Fanout, type Consumer } from './fanout';
import { Outbox, type EventOutput } from './outbox';
import { nodeTimers, PendingLedger } from './pending';
import { EventReader } from './reader';
import { ReleasedFds } from './released-fds';
import { Responder } from './responder';
import { Sequence } from './sequence';
import { SubtreeScope } from './subtree';
import { PlacedMarks } from './placed-marks';
import { filteredOutTypes, Selection } from './selection';
import type { AttachFrom, Attachment, Decision, EncodedEvent, SelectionSpec, VerdictOptions, WatchEvent, WatchOptions, WatchSink, WatchStats } from './types';
import { emptyStats } from './types';
export { emptyStats };
export type { AttachFrom, Attachment, Decision, DecidedBy, EncodedEvent, OverflowNotice, VerdictOptions, WatchEvent, WatchOptions, WatchSink, WatchStats } from './types';

/** The watch closed while a mark request was in flight. */
export class WatchClosedError extends FanotifydError {
  constructor() {
    super('ECLOSED', 'the watch closed');
  }
}

export class Watch implements PumpClient {
  readonly fd: number;
  readonly initFlags: number;
  readonly reportMode: ReportMode;
  readonly groupClass: GroupClass;
  readonly audit: boolean;
  readonly stats: WatchStats = emptyStats();
  private readonly clock: Clock;
  /** Failures that can repeat per event: one line per cause per second. */
  private readonly eventLog: RateLimitedLog;
  private readonly pending: PendingLedger<WatchEvent>;
  /** The one stream's queue (unnamed), or the journal every stream reads (named: shared). */
  private readonly outbox: EventOutput;
  private readonly fanout?: Fanout;
  private readonly seq: Sequence;
  private started = false;
  private attachedOnce = false;
  /** Armed while a named watch has no stream: it closes when this fires. */
  private lingerTimer?: NodeJS.Timeout;
  /** What made the watch close itself (onError), told to its streams. */
  private failure?: Error;
  private readonly responder: Responder;
  private readonly fds = new ReleasedFds();
  private readonly reader: EventReader;
  /** With MARK_SCOPE_SUBTREE marks (then the watch holds no others). */
  private readonly subtree?: SubtreeScope;
  private readonly coalescer?: Coalescer;
  /** The marks as asked and as the kernel holds them, less the types the filters leave out. */
  private readonly marks: PlacedMarks;
  private closed = false;

  constructor(
    readonly id: string,
    spec: GroupSpec,
    private readonly features: GroupFeatures,
    readonly options: WatchOptions,
    private readonly pump: EventPump,
    private readonly log: Logger,
    /** Needed in the dfid_name report mode; the watch owns and closes it. */
    private readonly resolver?: HandleResolver,
    private readonly onClose?: (w: Watch) => void,
  ) {
    // Compiled before the group is opened: a bad glob throws with nothing to undo.
    const selection = new Selection(options.selection);
    // A subtree's marks stay as asked: its mounts and ignore marks follow them (subtree.ts).
    this.marks = new PlacedMarks(this.isSubtree(spec) ? 0 : options.selection ? filteredOutTypes(options.selection) : 0);
    const group = this.openMarked(spec, features, options.adoptFd);
    this.groupClass = spec.groupClass;
    this.audit = spec.audit === true;
    this.fd = group.fd;
    this.initFlags = group.flags;
    this.reportMode = group.reportMode;
    this.clock = options.clock ?? monotonicClock;
    this.eventLog = new RateLimitedLog(log.child({ watch: id }), this.clock);
    this.responder = new Responder(this.fd, this.stats, this.eventLog, this.clock, options.onDecision);
    const timeoutResponse = this.timeoutResponse();
    this.pending = new PendingLedger(
      options.verdictTimeoutMs,
      (_id, item) => {
        this.fanout?.answered(item);
        this.responder.answer(item, timeoutResponse, 'timeout');
      },
      this.clock,
    );
    this.seq = new Sequence(options.firstSequence);
    this.fanout = this.makeFanout(options);
    this.outbox = this.fanout ?? new Outbox(options, this.stats, this.seq);
    try {
      this.subtree = this.openSubtree(spec, pump, resolver);
    } catch (err) {
      ffi.closeFd(this.fd);
      throw err;
    }
    if (options.coalesceMs) {
      this.coalescer = new Coalescer({
        windowMs: options.coalesceMs,
        clock: this.clock,
        timers: nodeTimers,
        stats: this.stats,
        encode: (item) => this.outbox.encode(item),
        emit: (encoded, now) => this.emitHeld(encoded, now),
        afterTimer: () => this.outbox.flush(),
        onError: (err) => this.onError(err),
      });
    }
    const details = options.processDetails ?? 'full';
    this.reader = new EventReader({
      groupFd: this.fd,
      notifyOnly: this.groupClass === 'notif',
      reportTid: spec.reportTid === true,
      maxPending: options.maxPending ?? Infinity,
      timeoutResponse,
      clock: this.clock,
      stats: this.stats,
      log: this.eventLog,
      // With the pid alone asked for, the cache serves only filters and rules, which need no command line.
      procs: new ProcessCache(this.clock, undefined, details === 'full' ? 'full' : 'basic'),
      resolver,
      pending: this.pending,
      outbox: this.outbox,
      responder: this.responder,
      fds: this.fds,
      details,
      selection,
      coalescer: this.coalescer,
      cacheVerdict: (item) => this.cacheVerdict(item),
      reportsDecisions: options.onDecision !== undefined,
      subtree: this.subtree,
    });
  }

  /** A named watch's output: its journal and streams. */
  private makeFanout(options: WatchOptions): Fanout | undefined {
    const shared = options.shared;
    if (!shared) return undefined;
    return new Fanout({ limits: options, stats: this.stats, seq: this.seq, codec: shared.codec, journalBytes: shared.journalBytes, budget: shared.budget, owner: shared.owner, orphan: (item) => this.orphan(item) });
  }

  /**
   * The group with the marks narrowed to the filters. An adopted group
   * holds its marks already, as the process before placed them (narrowed
   * or not, by its version): recorded as asked, then narrowed.
   */
  private openMarked(spec: GroupSpec, features: GroupFeatures, adoptFd?: number): { fd: number; flags: number; reportMode: ReportMode } {
    const group = adoptFd === undefined ? openGroup(spec, features, this.marks.initial(spec.marks)) : adoptGroup(adoptFd, spec, features, this.marks);
    this.marks.bind(group.fd);
    this.marks.settleInitial();
    return group;
  }

  private isSubtree(spec: GroupSpec): boolean {
    return spec.marks.some((m) => m.scope === 'subtree');
  }

  private openSubtree(spec: GroupSpec, pump: EventPump, resolver?: HandleResolver): SubtreeScope | undefined {
    if (!this.isSubtree(spec)) return undefined;
    return new SubtreeScope({
      groupFd: this.fd,
      groupClass: this.groupClass,
      marks: spec.marks,
      evictable: this.features.evictable,
      pump,
      resolver,
      responder: this.responder,
      stats: this.stats,
      log: this.eventLog,
    });
  }

  /**
   * New include, exclude and rules, for every event read from now on; an
   * event already read keeps its fate (a pending one still awaits its
   * verdict). Throws GlobError, and changes nothing, for a glob that cannot be used.
   */
  replaceSelection(spec: SelectionSpec): void {
    const next = new Selection(spec);
    // The kernel reports the types the new filters take in before they
    // apply, and stops reporting those they leave out after.
    const narrow = this.marks.refilter(this.subtree ? 0 : filteredOutTypes(spec));
    this.reader.selection = next;
    narrow();
  }

  /** A coalesced event's window ended: it is queued as any notification, within the rate limit and the queue's room. */
  private emitHeld(encoded: EncodedEvent, now: number): void {
    if (!this.outbox.withinRate(now)) return;
    if (this.outbox.full) this.outbox.drop();
    else this.outbox.pushEncoded(encoded);
  }

  /**
   * A stream attaches: an unnamed watch's one stream starts its reading;
   * a named watch's streams each read its journal from `from` on.
   */
  attach(sink: WatchSink, from?: AttachFrom): Attachment {
    const fanout = this.fanout;
    if (this.closed) throw new WatchClosedError();
    if (!fanout) {
      if (this.attachedOnce) throw new Error(`watch ${this.id} is unnamed: it has one stream`);
      this.attachedOnce = true;
      (this.outbox as Outbox).attach(sink);
      this.start();
      this.outbox.flush();
      return { resume: () => this.resume(), verdict: (id, d, o) => this.verdict(id, d, o), detach: () => this.close('disconnect') };
    }
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const c = fanout.attach(sink, from);
    this.start();
    return { resume: () => fanout.resume(c), verdict: (id, d, o) => this.verdictFrom(c, id, d, o), detach: () => this.detach(c) };
  }

  /**
   * Start reading the group (attach does, for the first stream). A named
   * watch restored without a stream starts here and lingers.
   */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    // A notification group rests between reads while its queue has room.
    // Once it is full and events are being dropped, resting buys nothing,
    // and reading at once keeps the kernel's queue short, so drops are
    // counted here one by one rather than lost in a kernel overflow.
    // A permission group never rests: a process waits on each of its events.
    this.pump.add(this.fd, this, this.groupClass === 'notif' ? () => !this.outbox.full : undefined);
    if (this.fanout && this.fanout.attached === 0) this.linger();
  }

  /** The sink can take more after returning false (the unnamed watch's stream). */
  resume(): void {
    (this.outbox as Outbox).resume();
  }

  /** Streams attached now (named watches; an unnamed watch: 1 while open). */
  get consumers(): number {
    return this.fanout ? this.fanout.attached : this.closed ? 0 : 1;
  }

  /** A named watch with no stream, waiting for one until its linger ends. */
  get lingering(): boolean {
    return this.lingerTimer !== undefined;
  }

  /** The last sequence given to an event or notice; 0: none yet. */
  get lastSequence(): number {
    return this.seq.last;
  }

  /** The oldest sequence a stream attaching now could be sent; 0: none held. */
  get firstSequence(): number {
    return this.fanout?.firstSequence ?? 0;
  }

  /** Apply a client verdict. False when the id is unknown or already answered. */
  verdict(id: number, decision: Decision, opts: VerdictOptions = {}): boolean {
    const item = this.pending.take(id);
    if (!item) {
      this.stats.unknownVerdicts++;
      return false;
    }
    this.fanout?.answered(item);
    if (opts.cache && decision === 'allow') this.cacheVerdict(item);
    this.responder.answer(item, responseWord(decision === 'allow', opts), 'client', opts.auditRule);
    if (item.readAt !== undefined) this.options.onVerdictLatency?.(this.clock.now() - item.readAt);
    return true;
  }

  /** A verdict from one stream of a named watch: refused for an event given to another stream. */
  private verdictFrom(c: Consumer, id: number, decision: Decision, opts?: VerdictOptions): boolean {
    const owner = this.fanout!.ownerOf(id);
    if (owner !== undefined && owner !== c) {
      this.stats.verdictsRefused++;
      return false;
    }
    return this.verdict(id, decision, opts);
  }

  /** A stream of a named watch ended: its events move on, and with none left the watch lingers or closes. */
  private detach(c: Consumer): void {
    if (this.closed || c.detached) return;
    this.fanout!.detach(c);
    if (this.fanout!.attached === 0) this.linger();
  }

  private linger(): void {
    const ms = this.options.shared?.lingerMs ?? 0;
    if (ms <= 0) {
      this.close('disconnect');
      return;
    }
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      this.close('disconnect');
    }, ms);
  }

  /** A permission event with no stream to answer it: the watch's timeout decision, at once. */
  private orphan(item: WatchEvent): void {
    if (this.pending.take(item.id)) this.responder.answer(item, this.timeoutResponse(), 'disconnect');
  }

  private cacheVerdict(item: WatchEvent): void {
    try {
      addIgnoreForFd(this.fd, item.ev.fd, item.ev.mask & K.FAN_PERMISSION_EVENTS, this.features.evictable);
      this.stats.cachedVerdicts++;
    } catch (err) {
      this.stats.cacheErrors++;
      this.eventLog.warn('caching a verdict failed; the kernel will ask again', { error: err });
    }
  }

  /** Add a mark to the live group. */
  async addMark(m: MarkSpec): Promise<void> {
    this.checkMark(m);
    if (this.resolver) await this.resolver.add(m.path);
    await this.subtree?.prepare(m);
    if (this.closed) throw new WatchClosedError();
    this.marks.add(m);
    this.subtree?.add(m);
  }

  removeMark(m: MarkSpec): void {
    this.checkMark(m);
    if (this.subtree) throw new GroupSpecError('MARK_SCOPE_SUBTREE marks stay for the life of their watch: close the watch to remove them');
    this.marks.remove(m);
  }

  flushMarks(scope: MarkScope): void {
    if (!this.subtree) {
      // A subtree mark is a mount mark to the kernel; this watch has none to flush.
      if (scope !== 'subtree') {
        flushMarks(this.fd, scope);
        this.marks.forget(scope);
      }
      return;
    }
    // The inode marks of a subtree watch are its ignore marks and cached verdicts: dropping them is always safe.
    if (scope === 'inode') this.subtree.flushIgnores();
    else if (scope === 'subtree' || scope === 'mount') {
      throw new GroupSpecError('MARK_SCOPE_SUBTREE marks stay for the life of their watch: close the watch to remove them');
    }
  }

  private checkMark(m: MarkSpec): void {
    if ((m.scope === 'subtree') !== (this.subtree !== undefined)) {
      throw new GroupSpecError(
        this.subtree
          ? 'a watch with MARK_SCOPE_SUBTREE marks holds only MARK_SCOPE_SUBTREE marks: open another watch for marks of other scopes'
          : 'a MARK_SCOPE_SUBTREE mark needs a watch of its own: subscribe with it',
      );
    }
    if (m.scope === 'subtree') checkSubtreeMark(m);
    if (this.reportMode === 'fd' && m.mask & K.FAN_FID_ONLY_EVENTS) {
      throw new GroupSpecError(
        'directory-entry events need the file-handle report mode, which is chosen at Subscribe; ' +
          'this watch reports by fd: open another watch for them',
      );
    }
  }

  /**
   * Answer everything pending (the timeout decision when the client went
   * away, ALLOW when the daemon shuts down), then close the group.
   * 'handoff': the group lives on in systemd's fd store for the next
   * process, which answers what was read and not answered (by fd number)
   * and reads the rest; nothing is answered or read here.
   */
  close(reason: 'disconnect' | 'shutdown' | 'handoff'): void {
    if (this.closed) return;
    if (reason === 'handoff') return this.handOff();
    this.closed = true;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const response = reason === 'shutdown' ? K.FAN_ALLOW : this.timeoutResponse();
    for (const [, item] of this.pending.takeAll()) this.responder.answer(item, response, reason);
    this.pump.remove(this.fd);
    this.subtree?.close();
    try {
      this.reader.drainAtClose(response, reason);
    } catch (err) {
      this.log.warn('draining the group at close failed; the kernel answers the rest', { watch: this.id, error: err });
    }
    ffi.closeFd(this.fd);
    this.resolver?.close();
    this.coalescer?.close();
    this.outbox.close(this.failure);
    this.eventLog.flush();
    this.onClose?.(this);
  }

  private handOff(): void {
    this.closed = true;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.pump.remove(this.fd);
    const fds: number[] = [];
    for (const [, item] of this.pending.takeAll()) {
      fds.push(item.ev.fd);
      if (item.pidfd !== undefined) fds.push(item.pidfd);
    }
    ffi.closeFds(fds);
    this.subtree?.close();
    ffi.closeFd(this.fd);
    this.resolver?.close();
    this.coalescer?.close();
    this.outbox.close();
    // Nothing reads or numbers for this group here any more: where the
    // next process may start numbering is known exactly (handedOffSequence).
    this.seq.seal();
    this.eventLog.flush();
    this.onClose?.(this);
  }

  /**
   * After close('handoff'): the first sequence this watch never gave,
   * fixed for good (a later number would throw); undefined before.
   */
  get handedOffSequence(): number | undefined {
    return this.seq.sealed;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // --- PumpClient ---

  onData(buf: Buffer, length: number): void {
    this.reader.read(buf, length);
    // A wake may read 16 times 256 KiB: the journal's streams get each read
    // at once, so a journal of a few MiB never drops what a stream keeping
    // up has not yet been sent.
    this.fanout?.flush();
  }

  onDrained(): void {
    this.outbox.flush();
  }

  /**
   * Reading or handling this group's events failed. The watch closes as if
   * its client had gone (pending events get the timeout decision) and says
   * why through onFailed; the daemon and other watches go on.
   */
  onError(err: Error): void {
    this.log.error('watch failed; closing it', { watch: this.id, error: err });
    this.failure ??= err;
    this.close('disconnect');
    this.options.onFailed?.(err);
  }

  snapshot(): WatchStats {
    this.stats.pending = this.pending.size;
    this.stats.queued = this.outbox.length;
    this.stats.consumers = this.consumers;
    return { ...this.stats, decisions: { ...this.stats.decisions } };
  }

  private timeoutResponse(): number {
    return responseWord(this.options.timeoutDecision === 'allow');
  }
}

/**
 * A group opened by an earlier process of the daemon (its fd handed back
 * by systemd's fd store): its marks are in the kernel already, its flags
 * are what the same spec asks for.
 */
function adoptGroup(fd: number, spec: GroupSpec, features: GroupFeatures, marks: PlacedMarks): { fd: number; flags: number; reportMode: ReportMode } {
  marks.adopted(spec.marks);
  const { flags, reportMode } = initFlags(spec, features);
  return { fd, flags, reportMode };
}
