// The read path of a watch: each read(2) of its group decoded, and every
// record taken one way: a kernel overflow notice, the daemon's own access
// (allowed at once), a notification dropped for a full queue, or an event
// described as far as the watch's filters and rules need, then: left out
// (a permission event allowed at once), decided by a rule, or described in
// full and queued (a permission event also awaits its verdict).
import type { Clock } from '../common/clock';
import type { RateLimitedLog } from '../common/rate-limited-log';
import * as K from '../kernel/constants';
import { decodeEvents, FidInterner, type RawEvent } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';
import { responseWord } from '../kernel/response';
import type { HandleResolver } from '../host/handle-resolver';
import { isOwnThread } from '../host/process';
import type { ProcessCache } from '../host/process-cache';
import type { Coalescer } from './coalescer';
import { EventDescription } from './description';
import type { EventOutput } from './outbox';
import type { PendingLedger } from './pending';
import type { ReleasedFds } from './released-fds';
import type { Responder } from './responder';
import type { SubtreeScope } from './subtree';
import { DELIVER, FILTERED, type Selection } from './selection';
import type { DecidedBy, ProcessDetails, WatchEvent, WatchStats } from './types';

const SELF_PID = process.pid;

/** What the reader works with, all owned by the watch. */
export interface ReaderParts {
  groupFd: number;
  /** A notification-only group: its events can be dropped when the queue is full. */
  notifyOnly: boolean;
  /** FAN_REPORT_TID: an event's pid is a thread id. */
  reportTid: boolean;
  /** Permission events awaiting a verdict at most; past it the timeout decision answers at once. */
  maxPending: number;
  /** The response word of the watch's timeout decision. */
  timeoutResponse: number;
  clock: Clock;
  stats: WatchStats;
  log: RateLimitedLog;
  procs: ProcessCache;
  resolver?: HandleResolver;
  pending: PendingLedger<WatchEvent>;
  outbox: EventOutput;
  responder: Responder;
  fds: ReleasedFds;
  /** The watch's subtree marks: events outside them go no further than their path. */
  subtree?: SubtreeScope;
  details: ProcessDetails;
  /** Filters and rules; replaced as a whole by Watch.replaceSelection. */
  selection: Selection;
  /** With coalescing on. */
  coalescer?: Coalescer;
  /** Places the ignore mark of a cached ALLOW (a rule with cache). */
  cacheVerdict(item: WatchEvent): void;
  /** Decisions are reported (onDecision, the audit): a rule's decided events are described in full for it. */
  reportsDecisions: boolean;
}

export class EventReader {
  /** Equal handles of this group's records share their bytes, read after read. */
  private readonly interner = new FidInterner();
  private nextId = 1;
  private readonly description: EventDescription;

  constructor(private readonly p: ReaderParts) {
    this.description = new EventDescription({ procs: p.procs, resolver: p.resolver, reportTid: p.reportTid, details: p.details, log: p.log });
  }

  /** Filters and rules for the events read from now on; those already read keep their fate. */
  set selection(s: Selection) {
    this.p.selection = s;
  }

  /** One read's records; a throw leaves none of them unanswered (the watch then closes). */
  read(buf: Buffer, length: number): void {
    const p = this.p;
    // The queue drains only between reads, so a notification watch whose
    // queue is full now drops every event of this read: it needs their fds
    // to close, nothing more. Not decoding their file handles cut the drop
    // path from 6.9-7.5 to 5.1-5.6 us per event (dfid_name, with pidfds,
    // bench/pump.js notify with BENCH_SINK=stalled).
    const { events, error } = decodeEvents(buf, length, p.notifyOnly && p.outbox.full, this.interner);
    if (error) {
      p.stats.decodeErrors++;
      p.log.warn('undecodable fanotify record; rest of the read skipped', { error });
    }
    // One wall-clock timestamp for clients and one monotonic read time per read.
    const timeMs = Date.now();
    const readAt = p.clock.now();
    p.resolver?.newBatch();
    p.procs.newBatch();
    // Held events whose window ended leave before this read's.
    p.coalescer?.expire(readAt);
    try {
      for (let i = 0; i < events.length; i++) {
        try {
          this.take(events[i], timeMs, readAt);
        } catch (err) {
          // The watch fails and closes; the rest of this read never reaches
          // it, so answer that now as the close answers the rest.
          for (const raw of events.slice(i + 1)) this.abandon(raw, p.timeoutResponse, 'disconnect');
          throw err;
        }
      }
    } finally {
      p.fds.closeAll();
    }
  }

  /**
   * Answer what is still in the kernel's queue with `response` before the
   * group closes: the kernel would allow it all on close, whatever the
   * watch's timeout decision. Bounded: what arrives after is the kernel's.
   */
  drainAtClose(response: number, reason: 'disconnect' | 'shutdown'): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    try {
      for (let i = 0; i < 64; i++) {
        const len = ffi.readNonblock(this.p.groupFd, buf);
        if (len <= 0) return;
        for (const raw of decodeEvents(buf, len, false, this.interner).events) this.abandon(raw, response, reason);
        this.p.fds.closeAll();
      }
    } finally {
      this.p.fds.closeAll();
    }
  }

  private take(raw: RawEvent, timeMs: number, readAt: number): void {
    const p = this.p;
    p.stats.eventsRead++;
    if (raw.malformed) p.stats.malformedRecords++;
    const isPerm = (raw.mask & K.FAN_PERMISSION_EVENTS) !== 0 && raw.fd >= 0;
    if (raw.mask & K.FAN_Q_OVERFLOW) {
      p.outbox.kernelOverflow();
      p.fds.release(raw);
    } else if (isPerm && this.isSelf(raw.pid)) {
      // The daemon's own access (a lazy module load, a log file): it must
      // never wait on a client, or on itself.
      p.responder.respond(raw.fd, K.FAN_ALLOW);
      p.stats.decisions.self++;
      p.fds.release(raw);
    } else if (p.subtree && this.outsideSubtree(raw, isPerm, timeMs)) {
      // Outside every subtree: answered, counted and ignored in subtree.ts.
      p.fds.release(raw);
    } else if (!isPerm && p.outbox.full) {
      p.outbox.drop();
      p.fds.release(raw);
    } else {
      this.deliver(raw, isPerm, timeMs, readAt, p.subtree !== undefined);
    }
  }

  /** The subtree check reads the event's path through its description, so an event delivered after it is not looked up twice. */
  private outsideSubtree(raw: RawEvent, isPerm: boolean, timeMs: number): boolean {
    this.description.start(raw, timeMs);
    return this.p.subtree!.leaves(raw, isPerm, this.description.pathBytes());
  }

  /** `described`: the description was started for this event already (outsideSubtree). */
  private deliver(raw: RawEvent, isPerm: boolean, timeMs: number, readAt: number, described = false): void {
    const d = this.description;
    if (!described) d.start(raw, timeMs);
    const sel = this.p.selection;
    const fate = sel.empty ? DELIVER : sel.decide(d, isPerm);
    if (!isPerm) this.notification(raw, fate, readAt);
    else if (fate === FILTERED) this.filteredPermission(raw);
    else if (fate === DELIVER) this.toClient(raw, readAt);
    else this.ruleDecides(raw, fate, readAt);
  }

  private notification(raw: RawEvent, fate: number, readAt: number): void {
    const p = this.p;
    // Done with at the end of the read, whatever its fate (the event fd
    // before the pidfd, the order the kernel made them in).
    p.fds.release(raw);
    if (fate === FILTERED) {
      p.stats.filtered++;
      return;
    }
    // Without coalescing, a rate-limited event is dropped before its description is finished.
    if (!p.coalescer && !p.outbox.withinRate(readAt)) return;
    const ev = this.description.finish();
    if (raw.fd >= 0) ev.fd = K.FAN_NOFD;
    const item: WatchEvent = { id: this.nextId++, ev, permission: false, needsVerdict: false, readAt };
    if (p.coalescer) p.coalescer.add(item, readAt);
    else p.outbox.pushNotification(item);
  }

  /** Left out by include or exclude: no client will answer it, so the daemon allows it now. */
  private filteredPermission(raw: RawEvent): void {
    const p = this.p;
    p.responder.respond(raw.fd, K.FAN_ALLOW);
    p.stats.decisions.filter++;
    p.stats.filtered++;
    p.fds.release(raw);
  }

  private permissionItem(raw: RawEvent, readAt: number, full: boolean): WatchEvent {
    const ev = full ? this.description.finish() : this.description.ev;
    const item: WatchEvent = { id: this.nextId++, ev, permission: true, needsVerdict: true, readAt };
    // Closed with the event fd when answered: the two are consecutive, one
    // close_range then, where closing the pidfd with the read's others
    // would cost a call of its own when the read holds one event.
    if (raw.pidfd !== undefined && raw.pidfd >= 0) item.pidfd = raw.pidfd;
    return item;
  }

  private toClient(raw: RawEvent, readAt: number): void {
    const p = this.p;
    const item = this.permissionItem(raw, readAt, true);
    if (p.pending.size >= p.maxPending) p.responder.answer(item, p.timeoutResponse, 'limit');
    else p.pending.add(item.id, item, readAt);
    p.outbox.pushPermission(item);
  }

  /**
   * The first matching rule answers at once. The event is described in
   * full only when someone reads it (report, or the audit); otherwise it
   * costs what the rule's match needed.
   */
  private ruleDecides(raw: RawEvent, index: number, readAt: number): void {
    const p = this.p;
    const rule = p.selection.rules[index];
    const item = this.permissionItem(raw, readAt, rule.report || p.reportsDecisions);
    item.ruleDecision = { decision: rule.decision, index };
    const allow = rule.decision === 'allow';
    if (allow && rule.cache) p.cacheVerdict(item);
    p.responder.answer(item, responseWord(allow, { errno: allow ? 0 : rule.errno }), 'rule');
    if (rule.report) p.outbox.pushPermission(item);
  }

  /** Answer a record that will not be delivered (the daemon's own accesses with ALLOW, as in take()) and release its fds. */
  private abandon(raw: RawEvent, response: number, reason: DecidedBy): void {
    if (raw.mask & K.FAN_PERMISSION_EVENTS && raw.fd >= 0) {
      const self = this.isSelf(raw.pid);
      this.p.responder.respond(raw.fd, self ? K.FAN_ALLOW : response);
      this.p.stats.decisions[self ? 'self' : reason]++;
    }
    this.p.fds.release(raw);
  }

  private isSelf(pid: number): boolean {
    return pid === SELF_PID || (this.p.reportTid && isOwnThread(pid));
  }
}
