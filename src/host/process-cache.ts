// Process descriptions reused between events. A process typically causes
// many events in a row, and describing it costs four or five /proc reads.
//
// An entry is keyed by pid and start time, and checked against the start
// time /proc gives now: a pid is reused once its process is gone, so an
// entry matched by pid alone could describe the previous process. Lifetimes
// are measured on a monotonic clock, so a wall-clock step neither keeps an
// entry "fresh" for hours nor empties the cache.
import { monotonicClock, type Clock } from '../common/clock';
import { readProcess, readStartTime, unknownProcess, type ProcessInfo } from './process';

/** How long a description is reused: exec changes comm, exe and cmdline without changing pid or start time. */
export const PROCESS_CACHE_TTL_MS = 500;
const PROCESS_CACHE_MAX = 4096;

interface Entry {
  info: ProcessInfo;
  start: number;
  at: number;
}

export class ProcessCache {
  private readonly cache = new Map<number, Entry>();
  /**
   * Start times read during the current read(2). Its events are handled in
   * one synchronous pass, so a start time read earlier in the pass is as
   * current as one read now, and a process causing every event of a read
   * costs one /proc read per read, not per event.
   */
  private readonly starts = new Map<number, number | undefined>();
  private now?: number;
  hits = 0;
  misses = 0;

  constructor(
    private readonly clock: Clock = monotonicClock,
    private readonly readStart: (pid: number) => number | undefined = readStartTime,
    private readonly read: (pid: number, pidfd?: number) => ProcessInfo = readProcess,
  ) {}

  /** Call before handling a new read's events: start times and the time are read afresh. */
  newBatch(): void {
    this.starts.clear();
    this.now = undefined;
  }

  lookup(pid: number, pidfd?: number): ProcessInfo {
    const start = this.startOf(pid);
    // Gone (or never there): whatever the cache holds for the pid may be
    // another process that had it, so the pid alone is what is certain.
    if (start === undefined) {
      this.misses++;
      return unknownProcess(pid);
    }
    const now = (this.now ??= this.clock.now());
    const hit = this.cache.get(pid);
    if (hit && hit.start === start && now - hit.at < PROCESS_CACHE_TTL_MS) {
      this.hits++;
      return hit.info;
    }
    this.misses++;
    const info = this.read(pid, pidfd);
    if (this.cache.size >= PROCESS_CACHE_MAX) this.cache.clear();
    if (info.details) this.cache.set(pid, { info, start, at: now });
    return info;
  }

  private startOf(pid: number): number | undefined {
    if (this.starts.has(pid)) return this.starts.get(pid);
    const start = this.readStart(pid);
    this.starts.set(pid, start);
    return start;
  }
}
