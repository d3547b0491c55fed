// What this kernel supports, found by trying: each class, init flag, mark
// scope and event bit is tried on a throwaway group with a mark on an
// existing directory: by default the one holding this compiled module,
// which is the daemon's own and always there. Users' hosts run 5.x to 6.x
// kernels; nothing is assumed.
//
// Nothing is written anywhere: the daemon runs with a read-only root
// (deploy/daemonset.yaml), so the probe makes no directory of its own.
// Its marks are safe even on a directory other processes use, because of
// what each mark can report while it exists (microseconds: the group is
// closed in the same synchronous call, which drops its mark and whatever
// it queued):
// - the inode marks, permission ones included, carry neither FAN_ONDIR
//   nor FAN_EVENT_ON_CHILD. fanotify reports an event on a directory
//   itself only for a mark with FAN_ONDIR (fanotify(7): "without this
//   flag, events are created only for files"), and one on the files in it
//   only with FAN_EVENT_ON_CHILD, so opening or reading the directory or
//   anything in it makes no permission event and blocks nobody. The one mark
//   with FAN_ONDIR is an ignore mark, which reports nothing;
// - the mount, filesystem and mount-namespace marks are in notification
//   groups: what they catch (every open on that mount for those
//   microseconds) is queued, never waited on, and freed with the group;
// - directory-entry events (a file made there in that instant) reach a
//   notification group too.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as K from './constants';
import * as ffi from './ffi';

export interface KernelFeatures {
  release: string;
  fanotify: boolean;
  classes: { notif: boolean; content: boolean; pre_content: boolean };
  /** init flag bit -> accepted */
  initFlags: Map<number, boolean>;
  /**
   * subtree: a mount mark and the daemon's path check are all a subtree
   * needs; the ignore marks that spare the kernel's questions about what
   * lies outside (FAN_MARK_IGNORE, 6.0) are used where the kernel takes
   * them (src/watch/subtree.ts).
   */
  scopes: { inode: boolean; mount: boolean; filesystem: boolean; mount_namespace: boolean; subtree: boolean };
  /** FAN_MARK_* flag bit -> accepted */
  markFlags: Map<number, boolean>;
  /** event bit -> accepted by fanotify_mark in a group suited to it */
  events: Map<number, boolean>;
  limits: { maxQueuedEvents: number; maxUserGroups: number; maxUserMarks: number };
}

/** Every event bit the API can name, with the group it must be tried in. */
export const PROBED_EVENTS: number[] = [
  K.FAN_ACCESS, K.FAN_MODIFY, K.FAN_CLOSE_WRITE, K.FAN_CLOSE_NOWRITE, K.FAN_OPEN, K.FAN_OPEN_EXEC,
  K.FAN_ATTRIB, K.FAN_CREATE, K.FAN_DELETE, K.FAN_DELETE_SELF, K.FAN_MOVED_FROM, K.FAN_MOVED_TO,
  K.FAN_MOVE_SELF, K.FAN_RENAME, K.FAN_FS_ERROR, K.FAN_OPEN_PERM, K.FAN_ACCESS_PERM,
  K.FAN_OPEN_EXEC_PERM, K.FAN_PRE_ACCESS, K.FAN_MNT_ATTACH, K.FAN_MNT_DETACH,
];

function tryInit(flags: number): number | undefined {
  try {
    return ffi.fanotifyInit(flags | K.FAN_CLOEXEC | K.FAN_NONBLOCK, ffi.O_RDONLY | ffi.O_CLOEXEC);
  } catch {
    return undefined;
  }
}

function tryGroup(initFlags: number, markFlags: number, mask: number, target: string): boolean {
  // The safety argument at the top of this file, kept by construction.
  if (mask & K.FAN_PERMISSION_EVENTS && mask & (K.FAN_ONDIR | K.FAN_EVENT_ON_CHILD)) {
    throw new Error('probe: a permission mark with FAN_ONDIR or FAN_EVENT_ON_CHILD could block other processes');
  }
  const fd = tryInit(initFlags);
  if (fd === undefined) return false;
  try {
    ffi.fanotifyMark(fd, K.FAN_MARK_ADD | markFlags, mask, target);
    return true;
  } catch {
    return false;
  } finally {
    // Closing the group removes the mark and frees what it queued; no
    // permission event can be pending (see the top of this file).
    ffi.closeFd(fd);
  }
}

function readSysctl(name: string): number {
  try {
    return Number(fs.readFileSync(`/proc/sys/fs/fanotify/${name}`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function probeInitFlags(): Map<number, boolean> {
  const initFlags = new Map<number, boolean>();
  for (const [bit] of K.INIT_FLAG_NAMES) {
    // Flags that depend on others are tried with what they need.
    let flags = bit;
    if (bit === K.FAN_REPORT_NAME || bit === K.FAN_REPORT_TARGET_FID) flags |= K.FAN_REPORT_FID | K.FAN_REPORT_DIR_FID;
    if (bit === K.FAN_REPORT_TARGET_FID) flags |= K.FAN_REPORT_NAME;
    const fd = tryInit(flags);
    initFlags.set(bit, fd !== undefined);
    if (fd !== undefined) ffi.closeFd(fd);
  }
  return initFlags;
}

function probeMarkFlags(dir: string): Map<number, boolean> {
  return new Map<number, boolean>([
    [K.FAN_MARK_DONT_FOLLOW, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_DONT_FOLLOW, K.FAN_OPEN, dir)],
    [K.FAN_MARK_ONLYDIR, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_ONLYDIR, K.FAN_OPEN, dir)],
    [K.FAN_MARK_EVICTABLE, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_EVICTABLE, K.FAN_OPEN, dir)],
    // The kernel takes an ignore mark on a directory only with IGNORED_SURV_MODIFY (else EISDIR).
    [K.FAN_MARK_IGNORE, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_SURV_MODIFY, K.FAN_OPEN | K.FAN_ONDIR, dir)],
    [K.FAN_MARK_IGNORED_SURV_MODIFY, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_IGNORED_MASK | K.FAN_MARK_IGNORED_SURV_MODIFY, K.FAN_OPEN, dir)],
  ]);
}

function probeEvents(dir: string): Map<number, boolean> {
  const events = new Map<number, boolean>();
  const fidFlags = K.FAN_REPORT_FID | K.FAN_REPORT_DFID_NAME;
  for (const bit of PROBED_EVENTS) {
    let ok: boolean;
    if (bit & (K.FAN_MNT_ATTACH | K.FAN_MNT_DETACH)) ok = tryGroup(K.FAN_REPORT_MNT, K.FAN_MARK_MNTNS, bit, '/proc/self/ns/mnt');
    else if (bit === K.FAN_PRE_ACCESS) ok = tryGroup(K.FAN_CLASS_PRE_CONTENT, K.FAN_MARK_INODE, bit, dir);
    else if (bit & K.FAN_PERMISSION_EVENTS) ok = tryGroup(K.FAN_CLASS_CONTENT, K.FAN_MARK_INODE, bit, dir);
    else if (bit === K.FAN_FS_ERROR) ok = tryGroup(K.FAN_REPORT_FID, K.FAN_MARK_FILESYSTEM, bit, dir);
    else if (bit & K.FAN_DIRENT_EVENTS) ok = tryGroup(fidFlags, K.FAN_MARK_INODE, bit, dir);
    else ok = tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_INODE, bit, dir);
    events.set(bit, ok);
  }
  return events;
}

/** Probe with marks on dir, an existing directory (this module's own by default); writes nothing. */
export function probeKernel(dir = __dirname): KernelFeatures {
  const classes = {
    notif: tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
    content: tryGroup(K.FAN_CLASS_CONTENT, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
    pre_content: tryGroup(K.FAN_CLASS_PRE_CONTENT, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
  };
  const mount = tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_MOUNT, K.FAN_OPEN, dir);
  return {
    release: os.release(),
    fanotify: classes.notif,
    classes,
    initFlags: probeInitFlags(),
    scopes: {
      inode: classes.notif,
      mount,
      filesystem: tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_FILESYSTEM, K.FAN_OPEN, dir),
      mount_namespace: tryGroup(K.FAN_REPORT_MNT, K.FAN_MARK_MNTNS, K.FAN_MNT_ATTACH, '/proc/self/ns/mnt'),
      subtree: mount,
    },
    markFlags: probeMarkFlags(dir),
    events: probeEvents(dir),
    limits: {
      maxQueuedEvents: readSysctl('max_queued_events'),
      maxUserGroups: readSysctl('max_user_groups'),
      maxUserMarks: readSysctl('max_user_marks'),
    },
  };
}
