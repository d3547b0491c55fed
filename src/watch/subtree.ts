// MARK_SCOPE_SUBTREE: a directory and everything below it, recursively.
// The kernel has no such mark, so a subtree is made of mount marks (the
// mount holding the directory, and each mount below it, followed as the
// mount table changes), and the daemon drops every event whose path lies
// outside: a permission event is allowed at once, in the read loop, before
// anything but its path is looked up. So that the kernel stops asking, the
// first event in each outside directory leaves an ignore mark on that
// directory for its entries. A directory moved into a subtree would bring
// its ignore mark along: subtree-renames.ts watches for that and the
// ignore marks are flushed. docs/architecture.md ("Subtree marks") has the
// measurements behind this design, its windows and what it does not cover.
import * as fs from 'node:fs';
import type { RateLimitedLog } from '../common/rate-limited-log';
import * as K from '../kernel/constants';
import type { RawEvent } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';
import { addDirectoryIgnore, addSubtreeMount, flushMarks, realMarkPath, type GroupClass, type MarkSpec } from '../kernel/group';
import type { EventPump } from '../kernel/pump';
import type { HandleResolver } from '../host/handle-resolver';
import { MountTableWatch, readMountInfo, type MountEntry } from '../host/mounts';
import type { Responder } from './responder';
import { RenameWatch } from './subtree-renames';
import type { WatchStats } from './types';

export interface SubtreeParts {
  groupFd: number;
  groupClass: GroupClass;
  /** The watch's marks, all of scope 'subtree'; the group already holds their mount marks. */
  marks: MarkSpec[];
  /** FAN_MARK_EVICTABLE works: ignore marks that pin no inode. Without it none are placed. */
  evictable: boolean;
  pump: EventPump;
  /** The watch's, in the dfid_name report mode: paths of events come from it. */
  resolver?: HandleResolver;
  responder: Responder;
  stats: WatchStats;
  log: RateLimitedLog;
}

interface Root {
  path: string;
  bytes: Buffer;
  mask: number;
}

/** Filesystems the daemon reads synchronously: never under its permission marks (group.ts checkPermissionTarget). */
const DAEMON_READS = new Set(['proc', 'sysfs']);
const SLASH = 0x2f;

/** Is path the root or below it? Bytes, as the kernel gives paths. */
export function isUnder(path: Buffer, root: Buffer): boolean {
  if (root.length === 1) return path[0] === SLASH;
  if (path.length < root.length || path.compare(root, 0, root.length, 0, root.length) !== 0) return false;
  return path.length === root.length || path[root.length] === SLASH;
}

function under(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(root + '/');
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class SubtreeScope {
  private readonly roots: Root[] = [];
  /** Every event bit of the subtrees: what an ignore mark must cover. */
  private ignoreMask = 0;
  /** Ignore marks are placed: the kernel takes them, and moves into a subtree are seen. */
  private ignoring: boolean;
  private renames?: RenameWatch;
  private readonly mounts: MountTableWatch;
  /** Mounts marked when the table was last read, by id and mount point. */
  private marked = new Set<string>();
  /** The last directory ignored: the rest of a read's events there need no mark again. */
  private lastIgnored?: string;
  private closed = false;

  constructor(private readonly p: SubtreeParts) {
    for (const m of p.marks) this.addRoot(m);
    this.ignoring = p.evictable;
    // Watched before it is read: a mount made between the two is still told.
    this.mounts = new MountTableWatch((err) => this.onMountTable(err));
    try {
      this.markMounts();
      if (this.ignoring) this.renames = this.openRenames();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private addRoot(m: MarkSpec): void {
    // The kernel gives events' paths resolved, so the roots are compared resolved too. realpath opens nothing.
    const path = realMarkPath(m.path);
    this.roots.push({ path, bytes: Buffer.from(path), mask: m.mask });
    this.ignoreMask |= m.mask & ~(K.FAN_EVENT_ON_CHILD | K.FAN_ONDIR);
  }

  private openRenames(): RenameWatch | undefined {
    try {
      return new RenameWatch(
        this.roots.map((r) => r.path),
        {
          pump: this.p.pump,
          log: this.p.log,
          related: (path) => this.roots.some((r) => isUnder(path, r.bytes) || isUnder(r.bytes, path)),
          onMoves: (moves, moveIn) => {
            this.p.stats.subtreeMoves += moves;
            if (moveIn) this.flushIgnores();
          },
          onFailed: (err) => this.stopIgnoring('subtree: moves into the subtree can no longer be seen; ignore marks flushed and no longer placed', err),
        },
      );
    } catch (err) {
      // Before 5.9 the kernel has no FAN_REPORT_DFID_NAME: without seeing moves in, no ignore mark is safe.
      this.ignoring = false;
      this.p.log.warn('subtree: no ignore marks (moves into the subtree cannot be watched); each event outside is answered by the daemon', { error: err });
      return undefined;
    }
  }

  /**
   * Take an event whose path lies outside every subtree: a permission
   * event is allowed now, a notification dropped, both counted as
   * filtered; its directory is ignored from now on. False for an event
   * inside (or whose path is unknown: the client decides).
   */
  leaves(raw: RawEvent, isPerm: boolean, path: Buffer | undefined): boolean {
    if (path === undefined || this.inside(path)) return false;
    const { responder, stats } = this.p;
    if (isPerm) {
      responder.respond(raw.fd, K.FAN_ALLOW);
      stats.decisions.filter++;
    }
    stats.filtered++;
    if (this.ignoring) this.ignore(raw, path);
    return true;
  }

  private inside(path: Buffer): boolean {
    for (const r of this.roots) if (isUnder(path, r.bytes)) return true;
    return false;
  }

  /** Is dir a subtree's root or above one? Its entries' events then cannot all be ignored. */
  private holdsRoot(dir: string): boolean {
    return this.roots.some((r) => under(r.path, dir));
  }

  private ignore(raw: RawEvent, pathBytes: Buffer): void {
    const path = pathBytes.toString();
    // Not UTF-8: the kernel could not be given the same name back.
    if (path.includes('\uFFFD')) return;
    const target = this.ignoreTarget(path, raw);
    if (!target || target.dir === this.lastIgnored) return;
    try {
      addDirectoryIgnore(this.p.groupFd, target.dir, this.ignoreMask, target.children);
      this.lastIgnored = target.dir;
      this.p.stats.subtreeIgnores++;
    } catch (err) {
      this.ignoreFailed(err as Error);
    }
  }

  /**
   * The directory whose entries (children) or own events are ignored for
   * an outside event: its parent, unless the parent is a root or above
   * one, where an ignore for its entries would hide a root. Then a
   * directory is ignored for itself and its entries (for itself alone if
   * it is above a root too); a file beside a root's ancestors is asked
   * about every time (a mark on the file itself would follow it through a
   * hard link into the subtree).
   */
  private ignoreTarget(path: string, raw: RawEvent): { dir: string; children: boolean } | undefined {
    const parent = parentOf(path);
    if (!this.holdsRoot(parent)) return { dir: parent, children: true };
    if (!isDirectory(raw)) return undefined;
    return { dir: path, children: !this.holdsRoot(path) };
  }

  private ignoreFailed(err: Error): void {
    const code = (err as ffi.SyscallError).code;
    // Renamed, deleted or replaced since its path was read: nothing to ignore.
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    this.p.stats.subtreeIgnoreErrors++;
    // The kernel has no FAN_MARK_IGNORE (before 6.0): every event outside is answered by the daemon.
    if (code === 'EINVAL') this.stopIgnoring('subtree: the kernel refuses FAN_MARK_IGNORE; each event outside is answered by the daemon', err);
    // EEXIST: the directory holds a cached verdict's mark of another kind; the kernel asks again, harmlessly.
    else if (code !== 'EEXIST') this.p.log.warn('subtree: an ignore mark outside the subtree failed; the kernel asks again', { error: err });
  }

  private stopIgnoring(msg: string, err: Error): void {
    if (!this.ignoring) return;
    this.ignoring = false;
    this.renames?.close();
    this.renames = undefined;
    this.flushIgnores();
    this.p.log.warn(msg, { error: err });
  }

  /** Drop every ignore mark (and cached verdict): a directory moved into a subtree may carry one. */
  flushIgnores(): void {
    if (this.closed) return;
    this.lastIgnored = undefined;
    try {
      flushMarks(this.p.groupFd, 'inode');
      this.p.stats.subtreeFlushes++;
    } catch (err) {
      this.p.log.error('subtree: flushing the ignore marks failed', { error: err });
    }
  }

  /** AddMark's awaited part: moves on the new subtree's filesystem can be resolved. */
  async prepare(m: MarkSpec): Promise<void> {
    try {
      await this.renames?.add(realMarkPath(m.path));
    } catch (err) {
      // A filesystem without file handles: moves into the new subtree cannot be seen, so nothing may be ignored.
      this.stopIgnoring('subtree: moves on the filesystem of the added subtree cannot be watched; ignore marks flushed and no longer placed', err as Error);
    }
  }

  /** AddMark: the group holds the new subtree's mount mark already. */
  add(m: MarkSpec): void {
    this.addRoot(m);
    this.markMounts();
    // Something ignored may lie in the new subtree.
    this.flushIgnores();
  }

  private onMountTable(err?: Error): void {
    if (this.closed) return;
    if (err) this.p.log.warn('subtree: the mount table can no longer be watched; mounts made below from now on are not covered', { error: err });
    else this.markMounts();
  }

  /**
   * Mark every mount at or below a root, again each time (a mark added
   * twice is one mark): which ones are new is not known for sure, as the
   * kernel gives an unmounted mount's id to the next mount, and marking
   * them all costs one system call per mount when the table changes. The
   * ones not marked at the last read go first: until its mark lands, a
   * new mount's events are not seen.
   */
  private markMounts(): void {
    const below = readMountInfo().filter((e) => this.roots.some((r) => under(e.mountPoint, r.path)));
    const key = (e: MountEntry) => `${e.id} ${e.mountPoint}`;
    const known = (e: MountEntry) => this.marked.has(key(e));
    const marked = new Set<string>();
    for (const e of [...below.filter((e) => !known(e)), ...below.filter(known)]) {
      if (this.markMount(e)) marked.add(key(e));
    }
    this.marked = marked;
  }

  private markMount(e: MountEntry): boolean {
    if (this.p.groupClass !== 'notif' && DAEMON_READS.has(e.fsType)) return false;
    for (const r of this.roots) {
      if (!under(e.mountPoint, r.path)) continue;
      try {
        addSubtreeMount(this.p.groupFd, e.mountPoint, r.mask);
      } catch (err) {
        this.p.log.warn('subtree: a mount below the subtree cannot be marked; its events are not seen', { mountPoint: e.mountPoint, fsType: e.fsType, error: err });
        return false;
      }
    }
    if (this.marked.has(`${e.id} ${e.mountPoint}`)) return true;
    this.p.stats.subtreeMounts++;
    // Paths in the dfid_name mode come from handles, which need an fd on each filesystem.
    this.p.resolver?.add(e.mountPoint).catch((error: unknown) => this.p.log.warn('subtree: paths on a mount below will be missing', { mountPoint: e.mountPoint, error }));
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mounts.close();
    this.renames?.close();
  }
}

/** Permission events in fd mode do not carry FAN_ONDIR (measured on 6.18): the event fd says. */
function isDirectory(raw: RawEvent): boolean {
  if (raw.fd < 0) return (raw.mask & K.FAN_ONDIR) !== 0;
  try {
    return fs.fstatSync(raw.fd).isDirectory();
  } catch {
    return false;
  }
}
