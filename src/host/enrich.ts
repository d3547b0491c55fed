// Enrichment: turns a decoded record into what a client wants to read: the
// object's path and the process that caused the event. Runs on the main
// thread right after decoding; everything here is synchronous and touches
// only /proc and handles, never a file under a user's mark.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as K from '../kernel/constants';
import type { FileId, RawEvent } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  gid: number;
  comm: string;
  exe: string;
  cmdline: string[];
  /** False when the process was gone before it could be read: pid alone is certain. */
  details: boolean;
  /** A pidfd from the kernel confirmed the details belong to this process. */
  verified: boolean;
  /** With FAN_REPORT_TID: the thread; pid is then its thread group. */
  tid?: number;
  /** cmdline holds only the arguments that fit in CMDLINE_MAX_BYTES. */
  cmdlineTruncated?: boolean;
}

/** Command-line bytes kept per process: an event stays small whatever a process's arguments (up to 2 MiB and more). */
export const CMDLINE_MAX_BYTES = 16 * 1024;

export interface ResolvedEntry {
  /** Directory path bytes, or undefined when the handle could not be resolved. */
  dir?: Buffer;
  name: Buffer;
  id: FileId;
}

export interface FsEvent {
  mask: number;
  pid: number;
  /** The event fd; kept open only for permission events until they are answered. */
  fd: number;
  path?: Buffer;
  deleted: boolean;
  isDir: boolean;
  entry?: ResolvedEntry;
  oldEntry?: ResolvedEntry;
  newEntry?: ResolvedEntry;
  process: ProcessInfo;
  timeMs: number;
  error?: { error: number; count: number };
  range?: { offset: bigint; count: bigint };
  mntId?: bigint;
  malformed?: string;
  /** FAN_REPORT_TARGET_FID: the entry's own handle. */
  target?: FileId;
  /** FAN_REPORT_FD_ERROR: the errno of the kernel's failed open. */
  fdError?: number;
}

const openAsync = promisify(fs.open);

const DELETED_SUFFIX = Buffer.from(' (deleted)');

/** readlink of /proc/self/fd/N: the path of an open fd, as bytes. */
export function fdPath(fd: number): { path?: Buffer; deleted: boolean } {
  try {
    let path = ffi.fdLink(fd);
    let deleted = false;
    // The kernel appends " (deleted)" to an unlinked file's path; a file may
    // also really be named so, which nlink tells apart.
    if (path.length > DELETED_SUFFIX.length && path.subarray(-DELETED_SUFFIX.length).equals(DELETED_SUFFIX)) {
      try {
        if (fs.fstatSync(fd).nlink === 0) {
          deleted = true;
          path = path.subarray(0, path.length - DELETED_SUFFIX.length);
        }
      } catch {
        // fstat failing leaves the name as the kernel gave it.
      }
    }
    return { path, deleted };
  } catch {
    return { deleted: false };
  }
}

/**
 * Turns directory handles into paths with open_by_handle_at, using an fd on
 * the filesystem that reported the handle (matched by fsid).
 */
export class HandleResolver {
  private readonly mountFds = new Map<string, number>();

  /**
   * One fd per filesystem of the given paths. open_by_handle_at refuses
   * O_PATH fds (EBADF), so these are real opens, done on the thread pool:
   * if another watch holds a permission mark here, the main thread stays
   * free to answer the daemon's own event.
   */
  static async open(paths: string[]): Promise<HandleResolver> {
    const r = new HandleResolver();
    try {
      for (const p of paths) await r.add(p);
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  /** Make handles from path's filesystem resolvable. */
  async add(p: string): Promise<void> {
    const key = ffi.fsidOf(p).toString('hex');
    if (this.mountFds.has(key)) return;
    // Prefer the parent: an fd held on the marked directory itself would
    // keep it alive after deletion, and its handle would never go stale.
    // The parent serves only if it is on the same filesystem (not across a
    // mount point).
    const parent = path.dirname(p);
    const st = await fs.promises.stat(p);
    const target = parent !== p && ffi.fsidOf(parent).toString('hex') === key ? parent : st.isDirectory() ? p : parent;
    // fs.open (not fs.promises.open): a raw fd, which no wrapper closes behind our back.
    const fd = await openAsync(target, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NONBLOCK | ffi.O_CLOEXEC);
    if (this.mountFds.has(key)) ffi.closeFd(fd);
    else this.mountFds.set(key, fd);
  }

  /**
   * Directory paths resolved during the current read, by handle. Events of
   * one read(2) are handled in one synchronous pass, so a directory's path is
   * looked up once per read instead of once per event (open_by_handle_at,
   * readlink, close), and is as current as a per-event lookup would be.
   */
  private readonly batch = new Map<string, Buffer | undefined>();

  /** Forget the previous read's results: call before handling a new read. */
  newBatch(): void {
    this.batch.clear();
    this.last = undefined;
  }

  /** The last handle resolved in this read and its result (the decoder shares equal handles' bytes). */
  private last?: { handle: Buffer; fsid: Buffer; dir: Buffer | undefined };

  resolve(id: FileId): Buffer | undefined {
    const last = this.last;
    if (last && last.handle === id.fileHandle && last.fsid === id.fsid) return last.dir;
    const key = id.fsid.toString('latin1') + id.fileHandle.toString('latin1');
    let dir: Buffer | undefined;
    if (this.batch.has(key)) dir = this.batch.get(key);
    else this.batch.set(key, (dir = this.lookup(id)));
    this.last = { handle: id.fileHandle, fsid: id.fsid, dir };
    return dir;
  }

  private lookup(id: FileId): Buffer | undefined {
    const mountFd = this.mountFds.get(id.fsid.toString('hex'));
    if (mountFd === undefined) return undefined;
    let fd: number;
    try {
      fd = ffi.openByHandleAt(mountFd, id.fileHandle, ffi.O_PATH | ffi.O_CLOEXEC);
    } catch {
      return undefined; // ESTALE: the directory is gone; the caller reports the handle.
    }
    try {
      return fdPath(fd).path;
    } finally {
      ffi.closeFd(fd);
    }
  }

  close(): void {
    for (const fd of this.mountFds.values()) ffi.closeFd(fd);
    this.mountFds.clear();
  }
}

/** How long a /proc read of a pid is reused. Short, because pids get reused and exec changes comm/exe. */
const PROCESS_CACHE_TTL_MS = 500;
const PROCESS_CACHE_MAX = 4096;

/** Best-effort /proc reader with a small time-bounded cache. */
export class ProcessCache {
  private readonly cache = new Map<number, { info: ProcessInfo; at: number }>();
  hits = 0;
  misses = 0;

  lookup(pid: number, pidfd: number | undefined, now: number): ProcessInfo {
    const hit = this.cache.get(pid);
    if (hit && now - hit.at < PROCESS_CACHE_TTL_MS) {
      this.hits++;
      return hit.info;
    }
    this.misses++;
    const info = readProcess(pid, pidfd);
    if (this.cache.size >= PROCESS_CACHE_MAX) this.cache.clear();
    if (info.details) this.cache.set(pid, { info, at: now });
    return info;
  }
}

/** The thread group (process id) of a thread id, from /proc; undefined once it is gone. */
export function threadGroupOf(tid: number): number | undefined {
  try {
    const m = /^Tgid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${tid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a thread id is one of this process's threads (a stat of procfs: opens nothing). */
export function isOwnThread(tid: number): boolean {
  return fs.existsSync(`/proc/self/task/${tid}`);
}

/** A process known by its pid alone. */
export function unknownProcess(pid: number): ProcessInfo {
  return { pid, ppid: 0, uid: 0, gid: 0, comm: '', exe: '', cmdline: [], details: false, verified: false };
}

export function readProcess(pid: number, pidfd?: number): ProcessInfo {
  const info = unknownProcess(pid);
  if (pid <= 0) return info;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    info.ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    info.uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    info.gid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    info.comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
    info.details = true;
  } catch {
    return info; // exited: pid alone
  }
  try {
    info.exe = fs.readlinkSync(`/proc/${pid}/exe`, 'utf8');
  } catch {
    // Kernel threads and zombies have no exe.
  }
  try {
    let raw = fs.readFileSync(`/proc/${pid}/cmdline`);
    if (raw.length > CMDLINE_MAX_BYTES) {
      // Keep the arguments that end (NUL) within the limit.
      raw = raw.subarray(0, raw.lastIndexOf(0, CMDLINE_MAX_BYTES - 1) + 1);
      info.cmdlineTruncated = true;
    }
    const text = raw.toString('utf8');
    info.cmdline = text.length ? text.replace(/\0$/, '').split('\0') : [];
  } catch {
    // Gone between reads: keep what was read.
  }
  // A pidfd pins the process the kernel meant. If it still refers to a live
  // process with this pid after the reads above, the pid was not reused in
  // between and the details are that process's.
  if (pidfd !== undefined && pidfd >= 0) {
    try {
      const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${pidfd}`, 'latin1');
      info.verified = Number(/^Pid:\s+(-?\d+)/m.exec(fdinfo)?.[1]) === pid;
    } catch {
      info.verified = false;
    }
  }
  return info;
}

/** The event with nothing looked up: what is delivered when enrichment fails. */
export function bareEvent(raw: RawEvent, now: number): FsEvent {
  return {
    mask: raw.mask,
    pid: raw.pid,
    fd: raw.fd,
    deleted: false,
    isDir: (raw.mask & K.FAN_ONDIR) !== 0,
    process: unknownProcess(raw.pid),
    timeMs: now,
    error: raw.error,
    range: raw.range,
    mntId: raw.mntId,
    malformed: raw.malformed,
    target: raw.fid,
    // FAN_NOFD (-1) means no fd by design; below it, -errno of a failed open.
    fdError: raw.fd < K.FAN_NOFD ? -raw.fd : undefined,
  };
}

/** Build an FsEvent from a decoded record (fd-mode path or FID-mode entries). */
export function enrich(raw: RawEvent, resolver: HandleResolver | undefined, procs: ProcessCache, now: number, reportTid = false): FsEvent {
  const ev = bareEvent(raw, now);
  if (reportTid) {
    // The kernel gave a thread id: describe its thread group, and say which thread.
    const tgid = threadGroupOf(raw.pid);
    ev.pid = tgid ?? raw.pid;
    ev.process = { ...procs.lookup(ev.pid, undefined, now), tid: raw.pid };
  } else {
    ev.process = procs.lookup(raw.pid, raw.pidfd, now);
  }
  if (raw.fd >= 0) {
    const { path, deleted } = fdPath(raw.fd);
    ev.path = path;
    ev.deleted = deleted;
  }
  if (resolver) {
    if (raw.dfid) ev.entry = resolveEntry(raw.dfid, resolver);
    if (raw.oldDfid) ev.oldEntry = resolveEntry(raw.oldDfid, resolver);
    if (raw.newDfid) ev.newEntry = resolveEntry(raw.newDfid, resolver);
    const main = ev.entry ?? ev.newEntry ?? ev.oldEntry;
    if (!ev.path && main?.dir) ev.path = joinEntry(main.dir, main.name);
  }
  return ev;
}

function resolveEntry(id: FileId, resolver: HandleResolver): ResolvedEntry {
  return { dir: resolver.resolve(id), name: id.name ?? Buffer.alloc(0), id };
}

const DOT = Buffer.from('.');
const SLASH = Buffer.from('/');
/** dir + "/" + name; the kernel reports "." (or no name) for an event on the directory itself. */
export function joinEntry(dir: Buffer, name: Buffer): Buffer {
  if (name.length === 0 || name.equals(DOT)) return dir;
  if (dir.length === 1 && dir[0] === 0x2f) return Buffer.concat([dir, name]);
  return Buffer.concat([dir, SLASH, name]);
}
