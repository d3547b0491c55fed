// The domain event: a decoded record turned into what a client wants to
// read, the object's path and the process that caused it. Runs on the main
// thread right after decoding; everything here is synchronous and touches
// only /proc and handles, never a file under a user's mark.
import * as K from '../kernel/constants';
import type { FileId, RawEvent } from '../kernel/decoder';
import { translatePath } from './container-path';
import { fdPath } from './fd-path';
import type { HandleResolver } from './handle-resolver';
import type { ProcessCache } from './process-cache';
import { threadGroupOf, unknownProcess, type ProcessInfo } from './process';

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
  /**
   * Wall-clock time the event was read (ms since the epoch): the timestamp
   * shown to clients, never a base for durations (a clock step moves it).
   */
  timeMs: number;
  error?: { error: number; count: number };
  range?: { offset: bigint; count: bigint };
  mntId?: bigint;
  malformed?: string;
  /** FAN_REPORT_TARGET_FID: the entry's own handle. */
  target?: FileId;
  /** FAN_REPORT_FD_ERROR: the errno of the kernel's failed open. */
  fdError?: number;
  /** The path as the process saw it (bytes), where its mount namespace shows it elsewhere. */
  containerPath?: Buffer;
}

/** The event with nothing looked up: what is delivered when enrichment fails. */
export function bareEvent(raw: RawEvent, timeMs: number): FsEvent {
  return {
    mask: raw.mask,
    pid: raw.pid,
    fd: raw.fd,
    deleted: false,
    isDir: (raw.mask & K.FAN_ONDIR) !== 0,
    process: unknownProcess(raw.pid),
    timeMs,
    error: raw.error,
    range: raw.range,
    mntId: raw.mntId,
    malformed: raw.malformed,
    target: raw.fid,
    // FAN_NOFD (-1) means no fd by design; below it, -errno of a failed open.
    fdError: raw.fd < K.FAN_NOFD ? -raw.fd : undefined,
  };
}

/** The event's process, from /proc through the cache (ev.pid becomes the thread group's with FAN_REPORT_TID). */
export function describeProcess(ev: FsEvent, raw: RawEvent, procs: ProcessCache, reportTid: boolean): void {
  if (reportTid) {
    // The kernel gave a thread id: describe its thread group, and say which thread.
    const tgid = threadGroupOf(raw.pid);
    ev.pid = tgid ?? raw.pid;
    ev.process = { ...procs.lookup(ev.pid), tid: raw.pid };
  } else {
    ev.process = procs.lookup(raw.pid, raw.pidfd);
  }
}

/**
 * With FAN_REPORT_TID, the event's process by its pid alone: the thread's
 * group, from one read of its status, and the thread; nothing else read.
 */
export function describeThreadOnly(ev: FsEvent, raw: RawEvent): void {
  const tgid = threadGroupOf(raw.pid);
  ev.pid = tgid ?? raw.pid;
  ev.process = { ...unknownProcess(ev.pid), tid: raw.pid };
}

/**
 * Host and container paths for a process of another mount namespace (a
 * container), once both its path and its process are known; nothing for
 * the host's processes. An event fd's link names the file as the opener
 * saw it (the kernel opened it through the opener's mount, and that mount
 * is not in the daemon's tree), so in fd mode the host's path is worked
 * out from it; a resolved handle names it as the host sees it.
 */
export function describeContainerPath(ev: FsEvent, fromFd: boolean): void {
  const ns = ev.process.mntns;
  if (ns === undefined || !ev.path) return;
  const p = ev.path;
  if (fromFd) {
    const host = translatePath(p, ev.process.pid, ns, true);
    if (host === p) return;
    // The host does not show it (a container's own tmpfs): its own path in both fields.
    ev.containerPath = p;
    if (host) ev.path = host;
    return;
  }
  const seen = translatePath(p, ev.process.pid, ns, false);
  if (seen && seen !== p) ev.containerPath = seen;
}

/** The object's path: the event fd's link in fd mode, the resolved directory handles and names in dfid_name mode. */
export function describeObject(ev: FsEvent, raw: RawEvent, resolver: HandleResolver | undefined): void {
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
