// Process descriptions reused between events. A process typically causes
// many events in a row, and describing it costs five /proc reads.
//
// A pid is reused once its process is gone, so an entry is reused only
// for the process it was read for: the one whose pidfd has the same pidfs
// inode, when the event carries a pidfd (kernels with pidfs), or else the
// one with the same start time in /proc/PID/stat. Lifetimes are measured on
// a monotonic clock, so a wall-clock step neither keeps an entry "fresh"
// for hours nor empties the cache.
import { monotonicClock, type Clock } from '../common/clock';
import { currentContainer } from './attribution';
import { pidfdInode, readProcess, readStartTime, unknownProcess, type ProcessInfo, type ProcessReadLevel } from './process';

/** How long a description is reused: exec changes comm, exe and cmdline without changing pid or start time. */
export const PROCESS_CACHE_TTL_MS = 500;
const PROCESS_CACHE_MAX = 4096;

interface Entry {
  info: ProcessInfo;
  /** The process's start time, with the pid its key. */
  start: number;
  /** Its pidfd's pidfs inode, when it was read for an event with a pidfd on pidfs. */
  pidfdInode?: number;
  at: number;
}

/** Where the cache learns about processes; /proc unless a test says otherwise. */
export interface ProcessSource {
  read(pid: number, pidfd: number | undefined, level: ProcessReadLevel): ProcessInfo;
  startTime(pid: number): number | undefined;
  pidfdInode(pidfd: number): number | undefined;
}

export const procSource: ProcessSource = { read: readProcess, startTime: readStartTime, pidfdInode };

export class ProcessCache {
  private readonly cache = new Map<number, Entry>();
  /**
   * Identities (pidfd inode or start time) found during the current
   * read(2), by pid. Its events are handled in one synchronous pass, so one
   * found earlier in the pass is as current as one found now, and a process
   * causing every event of a read costs one check per read, not per event.
   */
  private readonly inodes = new Map<number, number | undefined>();
  private readonly starts = new Map<number, number | undefined>();
  private now?: number;
  hits = 0;
  misses = 0;

  constructor(
    private readonly clock: Clock = monotonicClock,
    private readonly source: ProcessSource = procSource,
    /**
     * What every entry holds. One level per cache, so a description read
     * without its command line is never served where one is wanted (each
     * watch has a cache of its own, at the level its client asked for).
     */
    readonly level: ProcessReadLevel = 'full',
  ) {}

  /** Call before handling a new read's events: identities and the time are read afresh. */
  newBatch(): void {
    this.inodes.clear();
    this.starts.clear();
    this.now = undefined;
  }

  lookup(pid: number, pidfd?: number): ProcessInfo {
    const inode = pidfd !== undefined && pidfd >= 0 ? this.inodeOf(pid, pidfd) : undefined;
    const start = inode === undefined ? this.startOf(pid) : undefined;
    // Neither a pidfd nor a live pid: whatever the cache holds for the pid
    // may be another process that had it, so the pid alone is what is certain.
    if (inode === undefined && start === undefined) {
      this.misses++;
      return unknownProcess(pid);
    }
    const now = (this.now ??= this.clock.now());
    const hit = this.cache.get(pid);
    if (hit && now - hit.at < PROCESS_CACHE_TTL_MS && (inode !== undefined ? hit.pidfdInode === inode : hit.start === start)) {
      this.hits++;
      // What the container runtime told since the description was read.
      const c = hit.info.container;
      if (c) {
        const known = currentContainer(c);
        if (known !== c) hit.info = { ...hit.info, container: known };
      }
      return hit.info;
    }
    this.misses++;
    const info = this.source.read(pid, pidfd, this.level);
    // Kept only when the details are surely the identified process's: read
    // after the start time and matching it, or confirmed by the pidfd.
    const sure = inode !== undefined ? info.verified : info.startTime === start;
    if (info.details && info.startTime !== undefined && sure) {
      if (this.cache.size >= PROCESS_CACHE_MAX) this.cache.clear();
      this.cache.set(pid, { info, start: info.startTime, pidfdInode: inode, at: now });
    }
    return info;
  }

  private inodeOf(pid: number, pidfd: number): number | undefined {
    if (this.inodes.has(pid)) return this.inodes.get(pid);
    const inode = this.source.pidfdInode(pidfd);
    this.inodes.set(pid, inode);
    return inode;
  }

  private startOf(pid: number): number | undefined {
    if (this.starts.has(pid)) return this.starts.get(pid);
    const start = this.source.startTime(pid);
    this.starts.set(pid, start);
    return start;
  }
}
