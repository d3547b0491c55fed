// What this kernel supports, found by trying: each class, init flag, mark
// scope and event bit is tried on a throwaway group and a directory the
// probe creates. Users' hosts run 5.x to 6.x kernels; nothing is assumed.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as K from './constants';
import * as ffi from './ffi';

export interface KernelFeatures {
  release: string;
  fanotify: boolean;
  classes: { notif: boolean; content: boolean; pre_content: boolean };
  /** init flag bit -> accepted */
  initFlags: Map<number, boolean>;
  scopes: { inode: boolean; mount: boolean; filesystem: boolean; mount_namespace: boolean };
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
  const fd = tryInit(initFlags);
  if (fd === undefined) return false;
  try {
    ffi.fanotifyMark(fd, K.FAN_MARK_ADD | markFlags, mask, target);
    return true;
  } catch {
    return false;
  } finally {
    // Closing the group removes the mark; no event can be pending on a
    // directory nobody else knows about.
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

export function probeKernel(): KernelFeatures {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-probe-'));
  try {
    const classes = {
      notif: tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
      content: tryGroup(K.FAN_CLASS_CONTENT, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
      pre_content: tryGroup(K.FAN_CLASS_PRE_CONTENT, K.FAN_MARK_INODE, K.FAN_OPEN, dir),
    };
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
    const scopes = {
      inode: classes.notif,
      mount: tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_MOUNT, K.FAN_OPEN, dir),
      filesystem: tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_FILESYSTEM, K.FAN_OPEN, dir),
      mount_namespace: tryGroup(K.FAN_REPORT_MNT, K.FAN_MARK_MNTNS, K.FAN_MNT_ATTACH, '/proc/self/ns/mnt'),
    };
    const markFlags = new Map<number, boolean>([
      [K.FAN_MARK_DONT_FOLLOW, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_DONT_FOLLOW, K.FAN_OPEN, dir)],
      [K.FAN_MARK_ONLYDIR, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_ONLYDIR, K.FAN_OPEN, dir)],
      [K.FAN_MARK_EVICTABLE, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_EVICTABLE, K.FAN_OPEN, dir)],
      // The kernel takes an ignore mark on a directory only with IGNORED_SURV_MODIFY (else EISDIR).
      [K.FAN_MARK_IGNORE, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_SURV_MODIFY, K.FAN_OPEN | K.FAN_ONDIR, dir)],
      [K.FAN_MARK_IGNORED_SURV_MODIFY, tryGroup(K.FAN_CLASS_NOTIF, K.FAN_MARK_IGNORED_MASK | K.FAN_MARK_IGNORED_SURV_MODIFY, K.FAN_OPEN, dir)],
    ]);
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
    return {
      release: os.release(),
      fanotify: classes.notif,
      classes,
      initFlags,
      scopes,
      markFlags,
      events,
      limits: {
        maxQueuedEvents: readSysctl('max_queued_events'),
        maxUserGroups: readSysctl('max_user_groups'),
        maxUserMarks: readSysctl('max_user_marks'),
      },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
