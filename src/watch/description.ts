// An event described step by step: its process and its path are looked up
// only when a filter or rule asks (each once), and the rest when the event
// is kept. A filtered event thus costs what its filter needed and no more:
// a path-only filter never reads /proc, an event-type filter reads nothing.
//
// One description serves every event of a watch, one after the other: the
// reader handles a read's events in one synchronous pass.
import { lastName } from '../common/glob';
import type { RateLimitedLog } from '../common/rate-limited-log';
import type { RawEvent } from '../kernel/decoder';
import { bareEvent, describeContainerPath, describeObject, describeThreadOnly, describeProcess, type FsEvent } from '../host/event';
import type { HandleResolver } from '../host/handle-resolver';
import { unknownProcess, type ProcessInfo } from '../host/process';
import type { ProcessCache } from '../host/process-cache';
import type { MatchSubject } from './selection';
import type { ProcessDetails } from './types';

export interface DescriptionParts {
  procs: ProcessCache;
  resolver?: HandleResolver;
  /** FAN_REPORT_TID: an event's pid is a thread id. */
  reportTid: boolean;
  /** What the client is sent about the process. */
  details: ProcessDetails;
  log: RateLimitedLog;
}

/** The kernel names the directory itself "." or not at all (joinEntry). */
const isSelf = (name: Buffer) => name.length === 0 || (name.length === 1 && name[0] === 0x2e);

/** Pid-only descriptions kept for reuse; the map is emptied when it reaches this. */
const PID_ONLY_MAX = 4096;

export class EventDescription implements MatchSubject {
  /**
   * One pid-only description per pid, shared by its events as the process
   * cache shares a full one: the wire encodes a description once per object
   * (src/api/wire.ts), so a fresh object per event would be encoded per event.
   */
  private readonly pidOnly = new Map<number, ProcessInfo>();
  private raw!: RawEvent;
  private timeMs = 0;
  /** Made on first need: an event a filter leaves out by its path never needs it. */
  private current?: FsEvent;
  /** The last directory decoded to text, by its resolved bytes (the resolver hands equal handles of a read the same Buffer). */
  private dirText?: { dir: Buffer; text: string };
  private processRead = false;
  private objectRead = false;
  private placed = false;
  private name?: string;
  private whole?: string;

  constructor(private readonly p: DescriptionParts) {}

  /** Describe `raw` from now on; nothing is looked up yet. */
  start(raw: RawEvent, timeMs: number): void {
    this.raw = raw;
    this.timeMs = timeMs;
    this.current = undefined;
    this.processRead = false;
    this.objectRead = false;
    this.placed = false;
    this.name = undefined;
    this.whole = undefined;
  }

  get mask(): number {
    return this.raw.mask;
  }

  /** The event as described so far (enough to answer it; a client gets finish()'s). */
  get ev(): FsEvent {
    return (this.current ??= bareEvent(this.raw, this.timeMs));
  }

  /**
   * The process as /proc describes it, even when the client asked for the
   * pid alone: a filter or rule on ids or names needs it (the cache then
   * reads all but the command line).
   */
  process(): ProcessInfo {
    if (!this.processRead) {
      this.processRead = true;
      try {
        describeProcess(this.ev, this.raw, this.p.procs, this.p.reportTid);
      } catch (err) {
        this.failed(err);
      }
      if (this.objectRead) this.place();
    }
    return this.ev.process;
  }

  pathName(): string {
    if (this.name === undefined && this.whole === undefined && this.entryText() !== undefined) {
      const name = this.raw.dfid!.name;
      this.name = name && !isSelf(name) ? name.toString('utf8') : lastName(this.whole!);
    }
    if (this.name === undefined && this.whole !== undefined) this.name = this.whole === '' ? '' : lastName(this.whole);
    if (this.name === undefined) {
      const path = this.path();
      if (!path) this.name = '';
      else if (this.whole !== undefined) this.name = lastName(this.whole);
      else this.name = path.toString('utf8', path.lastIndexOf(0x2f) + 1);
    }
    return this.name;
  }

  pathWhole(): string {
    return (this.whole ??= this.entryText() ?? this.path()?.toString('utf8') ?? '');
  }

  /**
   * The path as text straight from a directory handle and a name, for a
   * filter: no event object, no joined Buffer, the directory decoded once
   * for a run of events in it. The same text as joinEntry's bytes decoded,
   * as the two parts are split at an ASCII slash. Undefined where that does
   * not apply (an fd, several handles, a directory that cannot be resolved).
   */
  private entryText(): string | undefined {
    const raw = this.raw;
    if (this.objectRead || raw.fd >= 0 || !this.p.resolver || !raw.dfid || raw.oldDfid || raw.newDfid) return undefined;
    const dir = this.p.resolver.resolve(raw.dfid);
    if (!dir) return undefined;
    if (this.dirText?.dir !== dir) this.dirText = { dir, text: dir.toString('utf8') };
    const d = this.dirText.text;
    const name = raw.dfid.name;
    if (!name || isSelf(name)) return (this.whole = d);
    return (this.whole = d === '/' ? `/${name.toString('utf8')}` : `${d}/${name.toString('utf8')}`);
  }

  /** The event complete for its client: its path, and its process to the detail asked for. */
  finish(): FsEvent {
    const ev = this.ev;
    this.path();
    if (this.p.details !== 'pid') {
      this.process();
    } else if (this.p.reportTid) {
      // Read for a filter, or not yet: the client asked for the pid alone (and the thread).
      if (this.processRead) ev.process = { ...unknownProcess(ev.pid), tid: this.raw.pid };
      else {
        try {
          describeThreadOnly(ev, this.raw);
        } catch (err) {
          this.failed(err);
        }
      }
    } else {
      ev.process = this.pidOnlyOf(ev.pid);
    }
    return ev;
  }

  private pidOnlyOf(pid: number): ProcessInfo {
    let info = this.pidOnly.get(pid);
    if (!info) {
      if (this.pidOnly.size >= PID_ONLY_MAX) this.pidOnly.clear();
      info = unknownProcess(pid);
      this.pidOnly.set(pid, info);
    }
    return info;
  }

  /** The object's path (read once per event, whoever asks first: the subtree check or a filter). */
  pathBytes(): Buffer | undefined {
    return this.path();
  }

  private path(): Buffer | undefined {
    if (!this.objectRead) {
      this.objectRead = true;
      try {
        describeObject(this.ev, this.raw, this.p.resolver);
      } catch (err) {
        this.failed(err);
      }
      if (this.processRead) this.place();
    }
    return this.ev.path;
  }

  /**
   * The host's and the process's own path, once both the path and the
   * process are read (whichever a filter asked for first): a process read
   * for the pid alone (PROCESS_DETAILS_PID, no filter on it) is not read
   * for this, and its events keep the path the kernel's fd gave.
   */
  private place(): void {
    if (this.placed) return;
    this.placed = true;
    try {
      describeContainerPath(this.ev, this.raw.fd >= 0);
    } catch (err) {
      this.failed(err);
    }
  }

  /** Enrichment is best effort; the event itself (and its verdict) is not. */
  private failed(err: unknown): void {
    this.p.log.warn('event enrichment failed; delivering the event without it', { error: err });
  }
}
