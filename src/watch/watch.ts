// A watch: one fanotify group, its bounded outbound queue, and its pending
// permission events with their deadlines. A stream attaches to a watch; the
// watch does not know about gRPC.
//
// Every permission event read from the kernel is answered exactly once:
// by verdict(), by the deadline timer (timeoutDecision), by close() (the
// timeoutDecision on disconnect, ALLOW on shutdown), or at once with ALLOW
// when the daemon's own process caused it.
import * as K from '../kernel/constants';
import { decodeEvents, type RawEvent } from '../kernel/decoder';
import { bareEvent, enrich, HandleResolver, isOwnThread, ProcessCache, type FsEvent } from '../host/enrich';
import * as ffi from '../kernel/ffi';
import type { EventPump, PumpClient } from '../kernel/pump';
import { FanotifydError } from '../common/errors';
import { EventQueue } from './event-queue';
import type { Decision, DecidedBy, EncodedEvent, OverflowNotice, VerdictOptions, WatchEvent, WatchOptions, WatchSink, WatchStats } from './types';
export type { Decision, DecidedBy, EncodedEvent, OverflowNotice, VerdictOptions, WatchEvent, WatchOptions, WatchSink, WatchStats } from './types';
import type { Logger } from '../common/log';
import {
  addIgnoreForFd,
  addMark,
  flushMarks,
  GroupSpecError,
  openGroup,
  removeMark,
  type GroupClass,
  type GroupFeatures,
  type GroupSpec,
  type MarkScope,
  type MarkSpec,
  type ReportMode,
} from '../kernel/group';

/** The watch closed while a mark request was in flight. */
export class WatchClosedError extends FanotifydError {
  constructor() {
    super('ECLOSED', 'the watch closed');
  }
}

const RESPONSE: Record<Decision, number> = { allow: K.FAN_ALLOW, deny: K.FAN_DENY };
const SELF_PID = process.pid;

export class Watch implements PumpClient {
  readonly fd: number;
  readonly initFlags: number;
  readonly reportMode: ReportMode;
  readonly groupClass: GroupClass;
  readonly audit: boolean;
  private readonly reportTid: boolean;
  private readonly procs = new ProcessCache();
  private readonly pending = new Map<number, { item: WatchEvent; deadline: number }>();
  private readonly queue = new EventQueue();
  private queuedNotifications = 0;
  /** The client-overflow notice still in the queue, grown while drops continue. */
  private openDropNotice?: OverflowNotice;
  private nextId = 1;
  private sink?: WatchSink;
  private writable = false;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly responseBuf = Buffer.alloc(K.FAN_RESPONSE_LEN + K.AUDIT_RULE_INFO_LEN);
  /**
   * Event fds and pidfds done with in the current read, closed together at
   * its end: the kernel made them together, so most are consecutive
   * numbers, and closeFds takes a run in one close_range(2).
   */
  private readonly toClose: number[] = [];
  readonly stats: WatchStats = {
    eventsRead: 0,
    eventsSent: 0,
    notificationsDropped: 0,
    kernelOverflows: 0,
    decodeErrors: 0,
    malformedRecords: 0,
    unknownVerdicts: 0,
    responseErrors: 0,
    responseFallbacks: 0,
    cachedVerdicts: 0,
    cacheErrors: 0,
    decisions: { client: 0, timeout: 0, disconnect: 0, shutdown: 0, self: 0, limit: 0 },
    allowed: 0,
    denied: 0,
    pending: 0,
    queued: 0,
  };

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
    const group = openGroup(spec, features);
    this.groupClass = spec.groupClass;
    this.audit = spec.audit === true;
    this.reportTid = spec.reportTid === true;
    this.fd = group.fd;
    this.initFlags = group.flags;
    this.reportMode = group.reportMode;
  }

  /** Start reading the group, delivering to sink. */
  attach(sink: WatchSink): void {
    this.sink = sink;
    this.writable = true;
    // A notification group rests between reads while its queue has room.
    // Once it is full and events are being dropped, resting buys nothing,
    // and reading at once keeps the kernel's queue short, so drops are
    // counted here one by one rather than lost in a kernel overflow.
    // A permission group never rests: a process waits on each of its events.
    this.pump.add(this.fd, this, this.groupClass === 'notif' ? () => this.queuedNotifications < this.options.queueCapacity : undefined);
    this.flush();
  }

  /** The sink can take more after returning false. */
  resume(): void {
    this.writable = true;
    this.flush();
  }

  /** Apply a client verdict. False when the id is unknown or already answered. */
  verdict(id: number, decision: Decision, opts: VerdictOptions = {}): boolean {
    const p = this.pending.get(id);
    if (!p) {
      this.stats.unknownVerdicts++;
      return false;
    }
    if (opts.cache && decision === 'allow') {
      try {
        addIgnoreForFd(this.fd, p.item.ev.fd, p.item.ev.mask & K.FAN_PERMISSION_EVENTS, this.features.evictable);
        this.stats.cachedVerdicts++;
      } catch (err) {
        this.stats.cacheErrors++;
        this.log.warn('caching a verdict failed; the kernel will ask again', { watch: this.id, error: err });
      }
    }
    let response = RESPONSE[decision];
    if (opts.errno && decision === 'deny') response |= (opts.errno & 0xff) << 24;
    if (opts.audit) response |= K.FAN_AUDIT;
    if (opts.audit && opts.auditRule) response |= K.FAN_INFO;
    this.answer(id, p.item, response >>> 0, 'client', opts.auditRule);
    this.options.onVerdictLatency?.(Date.now() - p.item.ev.timeMs);
    return true;
  }

  /** Add a mark to the live group. */
  async addMark(m: MarkSpec): Promise<void> {
    this.checkMark(m);
    if (this.resolver) await this.resolver.add(m.path);
    if (this.closed) throw new WatchClosedError();
    addMark(this.fd, m);
  }

  removeMark(m: MarkSpec): void {
    this.checkMark(m);
    removeMark(this.fd, m);
  }

  flushMarks(scope: MarkScope): void {
    flushMarks(this.fd, scope);
  }

  private checkMark(m: MarkSpec): void {
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
   */
  close(reason: 'disconnect' | 'shutdown'): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const response = reason === 'shutdown' ? K.FAN_ALLOW : RESPONSE[this.options.timeoutDecision];
    for (const [id, p] of this.pending) this.answer(id, p.item, response, reason);
    this.pump.remove(this.fd);
    this.drainQueue(response, reason);
    ffi.closeFd(this.fd);
    this.resolver?.close();
    this.queue.clear();
    this.sink = undefined;
    this.onClose?.(this);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // --- PumpClient ---

  onData(buf: Buffer, length: number): void {
    // The queue drains only between reads (flush), so a notification watch
    // whose queue is full now drops every event of this read: it needs
    // their fds to close, nothing more. Not decoding their file handles
    // cut the drop path from 6.9-7.5 to 5.1-5.6 us per event (dfid_name,
    // with pidfds, bench/pump.js notify with BENCH_SINK=stalled).
    const dropping = this.groupClass === 'notif' && this.queuedNotifications >= this.options.queueCapacity;
    const { events, error } = decodeEvents(buf, length, dropping);
    if (error) {
      this.stats.decodeErrors++;
      this.log.warn('undecodable fanotify record; rest of the read skipped', { watch: this.id, error });
    }
    const now = Date.now();
    this.resolver?.newBatch();
    try {
      for (let i = 0; i < events.length; i++) {
        try {
          this.take(events[i], now);
        } catch (err) {
          // The watch fails and closes (onError); the rest of this read never
          // reaches it, so answer that now as the close answers the rest.
          for (const raw of events.slice(i + 1)) this.abandon(raw, RESPONSE[this.options.timeoutDecision], 'disconnect');
          throw err;
        }
      }
    } finally {
      this.closeReleased();
    }
  }

  onDrained(): void {
    this.flush();
  }

  /**
   * Reading or handling this group's events failed. The watch closes as if
   * its client had gone (pending events get the timeout decision) and says
   * why through onFailed; the daemon and other watches go on.
   */
  onError(err: Error): void {
    this.log.error('watch failed; closing it', { watch: this.id, error: err });
    this.close('disconnect');
    this.options.onFailed?.(err);
  }

  // --- internals ---

  private take(raw: RawEvent, now: number): void {
    this.stats.eventsRead++;
    if (raw.malformed) this.stats.malformedRecords++;
    const isPerm = (raw.mask & K.FAN_PERMISSION_EVENTS) !== 0 && raw.fd >= 0;
    if (raw.mask & K.FAN_Q_OVERFLOW) {
      this.stats.kernelOverflows++;
      this.queue.pushOverflow({ source: 'kernel', dropped: 0, total: this.stats.kernelOverflows });
      this.release(raw);
      return;
    }
    if (isPerm && (raw.pid === SELF_PID || (this.reportTid && isOwnThread(raw.pid)))) {
      // The daemon's own access (a lazy module load, a log file): it must
      // never wait on a client, or on itself.
      this.respond(raw.fd, K.FAN_ALLOW);
      this.stats.decisions.self++;
      this.release(raw);
      return;
    }
    if (!isPerm && this.queuedNotifications >= this.options.queueCapacity) {
      this.stats.notificationsDropped++;
      if (!this.openDropNotice) {
        this.openDropNotice = { source: 'client', dropped: 0, total: 0 };
        this.queue.pushOverflow(this.openDropNotice);
      }
      this.openDropNotice.dropped++;
      this.openDropNotice.total = this.stats.notificationsDropped;
      this.release(raw);
      return;
    }
    let ev: FsEvent;
    try {
      ev = enrich(raw, this.resolver, this.procs, now, this.reportTid);
    } catch (err) {
      // Enrichment is best effort; the event itself (and its verdict) is not.
      this.log.warn('event enrichment failed; delivering the bare event', { watch: this.id, error: err });
      ev = bareEvent(raw, now);
    }
    // The event fd first: the kernel made it before the pidfd, so the list stays in order.
    if (!isPerm && raw.fd >= 0) {
      this.toClose.push(raw.fd);
      ev.fd = K.FAN_NOFD;
    }
    if (raw.pidfd !== undefined && raw.pidfd >= 0) this.toClose.push(raw.pidfd);
    const item: WatchEvent = { id: this.nextId++, ev, permission: isPerm, needsVerdict: isPerm };
    if (!isPerm) {
      // Reads start at attach(), so a sink is there.
      const e = this.sink!.encode(item);
      this.queue.pushEncoded(e.bytes, e.tail);
      this.queuedNotifications++;
      return;
    }
    if (this.pending.size >= (this.options.maxPending ?? Infinity)) {
      this.answer(item.id, item, RESPONSE[this.options.timeoutDecision], 'limit');
    } else {
      this.pending.set(item.id, { item, deadline: now + this.options.verdictTimeoutMs });
      if (!this.timer) this.armTimer(this.options.verdictTimeoutMs);
    }
    this.queue.pushEvent(item);
  }

  /**
   * Answer what is still in the kernel's queue with `response` before the
   * group closes: the kernel would allow it all on close, whatever the
   * watch's timeout decision. Bounded: what arrives after is the kernel's.
   */
  private drainQueue(response: number, reason: 'disconnect' | 'shutdown'): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    try {
      for (let i = 0; i < 64; i++) {
        const len = ffi.readNonblock(this.fd, buf);
        if (len <= 0) return;
        for (const raw of decodeEvents(buf, len).events) this.abandon(raw, response, reason);
        this.closeReleased();
      }
    } catch (err) {
      this.log.warn('draining the group at close failed; the kernel answers the rest', { watch: this.id, error: err });
    } finally {
      this.closeReleased();
    }
  }

  /** Answer a record that will not be delivered (the daemon's own accesses with ALLOW, as in take()) and close its fds. */
  private abandon(raw: RawEvent, response: number, reason: 'disconnect' | 'shutdown'): void {
    if (raw.mask & K.FAN_PERMISSION_EVENTS && raw.fd >= 0) {
      const self = raw.pid === SELF_PID || (this.reportTid && isOwnThread(raw.pid));
      this.respond(raw.fd, self ? K.FAN_ALLOW : response);
      this.stats.decisions[self ? 'self' : reason]++;
    }
    this.release(raw);
  }

  /** Close (at the end of the read: closeReleased) the fds a record carries when it will not be delivered. */
  private release(raw: RawEvent): void {
    if (raw.fd >= 0) this.toClose.push(raw.fd);
    if (raw.pidfd !== undefined && raw.pidfd >= 0) this.toClose.push(raw.pidfd);
  }

  private closeReleased(): void {
    if (!this.toClose.length) return;
    try {
      ffi.closeFds(this.toClose);
    } finally {
      // Never closed twice: by the next read these numbers may be another's.
      this.toClose.length = 0;
    }
  }

  private flush(): void {
    const sink = this.sink;
    if (!sink) return;
    const encode = (it: WatchEvent) => sink.encode(it);
    while (this.writable && this.queue.length) {
      const notice = this.queue.takeOverflow();
      if (notice) {
        if (notice === this.openDropNotice) this.openDropNotice = undefined;
        this.writable = sink.sendOverflow(notice);
        continue;
      }
      const batch = this.queue.takeEvents(this.options.maxBatchEvents, this.options.maxBatchBytes ?? Infinity, encode);
      this.queuedNotifications -= batch.notifications;
      this.stats.eventsSent += batch.count;
      this.writable = sink.sendEvents(batch.bytes, batch.count);
    }
  }

  private answer(id: number, item: WatchEvent, response: number, by: DecidedBy, auditRule = 0): void {
    this.pending.delete(id);
    item.needsVerdict = false;
    this.respond(item.ev.fd, response, auditRule);
    ffi.closeFd(item.ev.fd);
    item.ev.fd = K.FAN_NOFD;
    this.stats.decisions[by]++;
    this.options.onDecision?.(item, (response & K.FAN_DENY) === 0, by);
  }

  private respond(fd: number, response: number, auditRule = 0): void {
    if (response & K.FAN_DENY) this.stats.denied++;
    else this.stats.allowed++;
    if (this.write(fd, response, auditRule)) return;
    // The kernel refused an extended response (an errno or FAN_AUDIT it
    // does not take): the event is still pending, so answer it plainly.
    const plain = response & (K.FAN_ALLOW | K.FAN_DENY);
    if (plain !== response && this.write(fd, plain)) {
      this.stats.responseFallbacks++;
      return;
    }
    this.stats.responseErrors++;
  }

  /** One struct fanotify_response, followed by the audit-rule info record when FAN_INFO is set. */
  private write(fd: number, response: number, auditRule = 0): boolean {
    const b = this.responseBuf;
    b.writeInt32LE(fd, 0);
    b.writeUInt32LE(response >>> 0, 4);
    let len = K.FAN_RESPONSE_LEN;
    if (response & K.FAN_INFO) {
      b.writeUInt8(K.FAN_RESPONSE_INFO_AUDIT_RULE, 8);
      b.writeUInt8(0, 9);
      b.writeUInt16LE(K.AUDIT_RULE_INFO_LEN, 10);
      b.writeUInt32LE(auditRule >>> 0, 12);
      b.writeUInt32LE(K.FAN_AUDIT_TRUST_UNKNOWN, 16);
      b.writeUInt32LE(K.FAN_AUDIT_TRUST_UNKNOWN, 20);
      len += K.AUDIT_RULE_INFO_LEN;
    }
    try {
      ffi.writeAll(this.fd, b, len);
      return true;
    } catch (err) {
      this.log.error('writing a permission response failed', { watch: this.id, response, error: err });
      return false;
    }
  }

  private armTimer(delayMs: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(0, delayMs));
  }

  /** Pending events are in deadline order (one timeout per watch), so stop at the first one still in time. */
  private expire(): void {
    this.timer = undefined;
    const now = Date.now();
    const response = RESPONSE[this.options.timeoutDecision];
    for (const [id, p] of this.pending) {
      if (p.deadline > now) {
        this.armTimer(p.deadline - now);
        return;
      }
      this.answer(id, p.item, response, 'timeout');
    }
  }

  snapshot(): WatchStats {
    this.stats.pending = this.pending.size;
    this.stats.queued = this.queue.length;
    return { ...this.stats, decisions: { ...this.stats.decisions } };
  }
}
