// A fanotify group: which fanotify_init flags a subscription needs, and the
// calls that create the group and place its marks.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as K from './constants';
import * as ffi from './ffi';
import { FanotifydError } from '../common/errors';

export type GroupClass = 'notif' | 'content' | 'pre_content';
/** 'subtree': a directory and everything below it (src/watch/subtree.ts); the kernel sees mount marks. */
export type MarkScope = 'inode' | 'mount' | 'filesystem' | 'mount_namespace' | 'subtree';
export type ReportMode = 'fd' | 'dfid_name' | 'mnt';

export interface MarkSpec {
  path: string;
  scope: MarkScope;
  /** FAN_* event bits, plus FAN_EVENT_ON_CHILD / FAN_ONDIR when asked for. */
  mask: number;
  /** Extra FAN_MARK_* flags: DONT_FOLLOW, ONLYDIR, EVICTABLE, IGNORE, IGNORED_SURV_MODIFY. */
  flags: number;
}

export interface GroupSpec {
  groupClass: GroupClass;
  marks: MarkSpec[];
  /** FAN_ENABLE_AUDIT, so verdicts may carry FAN_AUDIT. */
  audit?: boolean;
  /** FAN_REPORT_TID: the event's pid field is a thread id. */
  reportTid?: boolean;
  /** FAN_REPORT_TARGET_FID: directory-entry events carry the entry's own handle. */
  reportTargetFid?: boolean;
  /** FAN_REPORT_FD_ERROR: a failed event-fd open is reported as -errno. */
  reportFdError?: boolean;
  /** The report mode the client asked for; undefined lets the daemon choose (chooseReportMode). */
  reportMode?: ReportMode;
  /** The kernel takes FAN_REPORT_DFID_NAME (probed): the daemon's choice for a notification watch. */
  dfidNameSupported?: boolean;
}

/** What the running kernel accepted when probed; decides optional flags. */
export interface GroupFeatures {
  reportPidfd: boolean;
  /** FAN_MARK_EVICTABLE, for the ignore marks that cache verdicts. */
  evictable: boolean;
}

const CLASS_FLAGS: Record<GroupClass, number> = {
  notif: K.FAN_CLASS_NOTIF,
  content: K.FAN_CLASS_CONTENT,
  pre_content: K.FAN_CLASS_PRE_CONTENT,
};
const SCOPE_FLAGS: Record<MarkScope, number> = {
  inode: K.FAN_MARK_INODE,
  mount: K.FAN_MARK_MOUNT,
  filesystem: K.FAN_MARK_FILESYSTEM,
  mount_namespace: K.FAN_MARK_MNTNS,
  subtree: K.FAN_MARK_MOUNT,
};

/** Error for a subscription the kernel cannot serve as asked; the message says what to change. */
export class GroupSpecError extends FanotifydError {
  constructor(message: string) {
    super('EGROUPSPEC', message);
  }
}

export function eventBits(spec: GroupSpec): number {
  let mask = 0;
  for (const m of spec.marks) mask |= m.mask;
  return mask & ~(K.FAN_EVENT_ON_CHILD | K.FAN_ONDIR);
}

/**
 * The report mode, when the client leaves it to the daemon: for a
 * notification watch FAN_REPORT_DFID_NAME where the kernel has it, since
 * the kernel then opens no file per event and the daemon resolves each
 * directory once per read: lossless to 100,000 opens/s where fd mode lost
 * at 100,000/s, and 0.68-0.81x the C reader's events at 200,000-400,000/s
 * against 0.16-0.35x (docs/performance.md). fd mode for permission
 * watches, for which the kernel refuses file handles, and with
 * report_fd_error, which is about the event fd. Directory-entry events and
 * FS_ERROR come with file handles only.
 */
export function chooseReportMode(spec: GroupSpec): ReportMode {
  const bits = eventBits(spec);
  const mnt = bits & (K.FAN_MNT_ATTACH | K.FAN_MNT_DETACH);
  if (mnt) {
    if (spec.reportMode && spec.reportMode !== 'mnt') throw new GroupSpecError('mount events (MNT_ATTACH, MNT_DETACH) are reported in REPORT_MODE_MNT only');
    if (bits !== mnt) throw new GroupSpecError('mount events (MNT_ATTACH, MNT_DETACH) need a watch of their own: the kernel reports them in a mode of their own');
    return 'mnt';
  }
  if (spec.reportMode === 'mnt') throw new GroupSpecError('REPORT_MODE_MNT is for mount events (MNT_ATTACH, MNT_DETACH) only');
  if ((bits & K.FAN_FID_ONLY_EVENTS) === 0) {
    if (spec.reportMode === 'fd') return 'fd';
    if (spec.reportMode === undefined) return spec.groupClass === 'notif' && spec.dfidNameSupported === true && !spec.reportFdError ? 'dfid_name' : 'fd';
  }
  if (spec.reportMode === 'dfid_name' && spec.groupClass !== 'notif') {
    throw new GroupSpecError('REPORT_MODE_DFID_NAME is for GROUP_CLASS_NOTIF watches: the kernel refuses file-handle reporting in the permission classes');
  }
  if (spec.reportMode === 'fd') {
    throw new GroupSpecError('directory-entry events (CREATE, DELETE, MOVED_*, RENAME, ATTRIB, *_SELF) and FS_ERROR are reported with file handles only, not with REPORT_MODE_FD');
  }
  if (bits & K.FAN_PERMISSION_EVENTS) {
    throw new GroupSpecError(
      'directory-entry events (CREATE, DELETE, MOVED_*, RENAME, ATTRIB, *_SELF) and FS_ERROR need a file-handle report mode, ' +
        'which the kernel refuses together with permission events: open one watch for each',
    );
  }
  return 'dfid_name';
}

export function initFlags(spec: GroupSpec, features: GroupFeatures): { flags: number; reportMode: ReportMode } {
  const reportMode = chooseReportMode(spec);
  let flags = K.FAN_CLOEXEC | K.FAN_NONBLOCK | CLASS_FLAGS[spec.groupClass];
  if (reportMode === 'dfid_name') flags |= K.FAN_REPORT_FID | K.FAN_REPORT_DFID_NAME;
  if (spec.reportTargetFid) {
    if (reportMode !== 'dfid_name') throw new GroupSpecError('report_target_fid needs directory-entry events (CREATE, DELETE, MOVED_*, RENAME, ...)');
    flags |= K.FAN_REPORT_TARGET_FID;
  }
  if (spec.reportFdError) {
    // A permission event whose fd could not be opened could not be answered.
    if (spec.groupClass !== 'notif') throw new GroupSpecError('report_fd_error is for notification watches (GROUP_CLASS_NOTIF)');
    if (reportMode !== 'fd') throw new GroupSpecError('report_fd_error applies to events reported with a file descriptor, not to directory-entry events');
    flags |= K.FAN_REPORT_FD_ERROR;
  }
  if (reportMode === 'mnt') flags |= K.FAN_REPORT_MNT;
  // The kernel refuses FAN_REPORT_PIDFD together with FAN_REPORT_TID.
  else if (spec.reportTid) flags |= K.FAN_REPORT_TID;
  else if (features.reportPidfd) flags |= K.FAN_REPORT_PIDFD;
  if (spec.audit) flags |= K.FAN_ENABLE_AUDIT;
  return { flags, reportMode };
}

/** O_LARGEFILE on x86-64; the flag is 0 on 64-bit arm, where it is implied. */
const O_LARGEFILE = process.arch === 'x64' ? 0o100000 : 0;
export const EVENT_F_FLAGS = ffi.O_RDONLY | ffi.O_CLOEXEC | O_LARGEFILE;

/**
 * Create the group and place every mark (or `place`: the marks as the
 * kernel is to hold them, where the watch narrows them; the flags still
 * follow spec's); on any failure nothing stays open.
 */
export function openGroup(spec: GroupSpec, features: GroupFeatures, place: readonly MarkSpec[] = spec.marks): { fd: number; flags: number; reportMode: ReportMode } {
  checkSubtreeMarks(spec.marks);
  const { flags: asked, reportMode } = initFlags(spec, features);
  const { fd, flags } = spec.marks.some((m) => m.scope === 'subtree') ? initUnlimited(asked) : { fd: ffi.fanotifyInit(asked, EVENT_F_FLAGS), flags: asked };
  try {
    for (const m of place) addMark(fd, m);
  } catch (err) {
    ffi.closeFd(fd);
    throw err;
  }
  return { fd, flags, reportMode };
}

/**
 * The fanotify_init flags of a group fd, as /proc/self/fdinfo shows them
 * ("fanotify flags:87 event-flags:8002", hex); undefined when the fd is
 * not a fanotify group.
 */
export function groupInfo(fd: number): { flags: number; eventFFlags: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^fanotify flags:([0-9a-f]+) event-flags:([0-9a-f]+)$/m.exec(text);
  return m ? { flags: parseInt(m[1], 16), eventFFlags: parseInt(m[2], 16) } : undefined;
}

/**
 * A subtree watch adds an ignore mark per directory outside it that is
 * touched; they must not use up fs.fanotify.max_user_marks, which every
 * group of the daemon's user shares. The kernel grants FAN_UNLIMITED_MARKS
 * only with CAP_SYS_ADMIN (EPERM): without it, the limit stays.
 */
function initUnlimited(flags: number): { fd: number; flags: number } {
  try {
    return { fd: ffi.fanotifyInit(flags | K.FAN_UNLIMITED_MARKS, EVENT_F_FLAGS), flags: flags | K.FAN_UNLIMITED_MARKS };
  } catch {
    return { fd: ffi.fanotifyInit(flags, EVENT_F_FLAGS), flags };
  }
}

/** A directory fd request paths are resolved beneath (--host-root); -1: the daemon's own root, as paths are. */
let markRoot = -1;

/** Resolve every mark's path beneath this directory fd from now on (src/host/host-root.ts decides which). */
export function useMarkRoot(rootFd: number): void {
  markRoot = rootFd;
}

/**
 * Run fn with a path the daemon can hand to the kernel for `path`, a
 * request's (host) path: itself without a mark root; else an O_PATH fd
 * from openat2 beneath the root (RESOLVE_IN_ROOT: "..", absolute symlinks
 * and the like stay beneath it), named by its /proc/self/fd link, and
 * closed after. fanotify_mark with a NULL path takes only a real open fd
 * (EBADF for O_PATH, measured here), and a real open of a marked file
 * could wait on the daemon itself; the magic link reaches the same
 * object, on the root's mounts, so a mount mark attaches to the host's
 * mount and not to the daemon's namespace's copy of it. DONT_FOLLOW is
 * then said to openat2 (O_NOFOLLOW), as the link itself must be followed.
 */
export function withMarkPath<T>(path: string, flags: number, fn: (at: string, flags: number) => T): T {
  const p = openMarkPath(path, flags);
  try {
    return fn(p.at, p.flags);
  } finally {
    p.close();
  }
}

/** withMarkPath's path and flags, held until close() (for a caller that awaits in between). */
export function openMarkPath(path: string, flags: number): { at: string; flags: number; close(): void } {
  if (markRoot < 0) return { at: path, flags, close: () => undefined };
  const nofollow = (flags & K.FAN_MARK_DONT_FOLLOW) !== 0;
  const fd = ffi.openat2(markRoot, path, ffi.O_PATH | ffi.O_CLOEXEC | (nofollow ? ffi.O_NOFOLLOW : 0), ffi.RESOLVE_IN_ROOT | ffi.RESOLVE_NO_MAGICLINKS);
  return { at: `/proc/self/fd/${fd}`, flags: flags & ~K.FAN_MARK_DONT_FOLLOW, close: () => void ffi.closeFd(fd) };
}

/**
 * A request path resolved (symlinks, "..") as the kernel will report it:
 * realpath(3) without a mark root (the native one: Node's own takes ".."
 * lexically first, so /a/link/.. would be /a, where the kernel goes to the
 * link target's parent); beneath one, the fd's own path, which names the
 * host's mount by the host's path.
 */
export function realMarkPath(path: string): string {
  if (markRoot < 0) return fs.realpathSync.native(path);
  return withMarkPath(path, 0, (at) => fs.readlinkSync(at));
}

export function addMark(fd: number, m: MarkSpec): void {
  if (m.scope === 'subtree') return addSubtreeMount(fd, m.path, m.mask, m.flags | K.FAN_MARK_ONLYDIR);
  withMarkPath(m.path, m.flags, (at, flags) => {
    // The kernel refuses an ignore mark on a directory (EISDIR) unless it
    // survives modification, which for a directory changes nothing: add it.
    if (flags & K.FAN_MARK_IGNORE && m.scope === 'inode' && isDirectory(at, flags)) flags |= K.FAN_MARK_IGNORED_SURV_MODIFY;
    ffi.fanotifyMark(fd, K.FAN_MARK_ADD | SCOPE_FLAGS[m.scope] | flags, m.mask, at);
  });
}

function isDirectory(p: string, flags: number): boolean {
  try {
    // stat opens nothing, so no permission mark can make it wait.
    return (flags & K.FAN_MARK_DONT_FOLLOW ? fs.lstatSync(p) : fs.statSync(p)).isDirectory();
  } catch {
    return false; // fanotify_mark reports the real error
  }
}

/**
 * A subtree's mark on the mount of its directory, or on a mount below it
 * (whose mount point may be a file). FAN_EVENT_ON_CHILD means nothing to a
 * mount mark: it covers every object reached through that mount.
 */
export function addSubtreeMount(fd: number, path: string, mask: number, flags = 0): void {
  withMarkPath(path, flags, (at, f) => ffi.fanotifyMark(fd, K.FAN_MARK_ADD | K.FAN_MARK_MOUNT | f, mask & ~K.FAN_EVENT_ON_CHILD, at));
}

/**
 * What a watch with MARK_SCOPE_SUBTREE marks may hold: only such marks (the
 * daemon drops every event outside their directories, which a mark of
 * another scope would want, and flushes the group's inode marks when a
 * directory moves into a subtree), and no directory-entry events, which
 * the kernel refuses on the mount marks a subtree is made of (EINVAL).
 */
export function checkSubtreeMarks(marks: readonly MarkSpec[]): void {
  const subtree = marks.filter((m) => m.scope === 'subtree').length;
  if (subtree === 0) return;
  if (subtree !== marks.length) {
    throw new GroupSpecError('a watch with MARK_SCOPE_SUBTREE marks holds only MARK_SCOPE_SUBTREE marks: open another watch for marks of other scopes');
  }
  for (const m of marks) checkSubtreeMark(m);
}

export function checkSubtreeMark(m: MarkSpec): void {
  if (m.mask & K.FAN_FID_ONLY_EVENTS) {
    throw new GroupSpecError(
      `MARK_SCOPE_SUBTREE on ${m.path} cannot report directory-entry events (CREATE, DELETE, MOVED_*, RENAME, ATTRIB, *_SELF) or FS_ERROR: ` +
        'the kernel refuses them on the mount marks a subtree is made of; use MARK_SCOPE_FILESYSTEM or MARK_SCOPE_INODE with on_child for them',
    );
  }
  if (m.flags & (K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_SURV_MODIFY | K.FAN_MARK_EVICTABLE)) {
    throw new GroupSpecError(`MARK_SCOPE_SUBTREE on ${m.path} takes none of ignore, ignore_survives_modify and evictable: the daemon places its own ignore marks`);
  }
}

/**
 * An ignore mark on a directory outside a subtree, so the kernel stops
 * asking about it: for the directory's own events and, with children,
 * its entries' (FAN_MARK_IGNORE honours FAN_ONDIR and FAN_EVENT_ON_CHILD
 * in the ignore mask, 6.0+). Evictable, so it pins no inode; surviving
 * modification, without which the kernel refuses it on a directory
 * (EISDIR). ONLYDIR and DONT_FOLLOW: the path was read from the kernel a
 * moment ago, and may since name something else.
 */
export function addDirectoryIgnore(fd: number, dir: string, mask: number, children: boolean): void {
  const flags = K.FAN_MARK_ADD | K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_SURV_MODIFY | K.FAN_MARK_EVICTABLE | K.FAN_MARK_ONLYDIR | K.FAN_MARK_DONT_FOLLOW;
  withMarkPath(dir, flags, (at, f) => ffi.fanotifyMark(fd, f, mask | K.FAN_ONDIR | (children ? K.FAN_EVENT_ON_CHILD : 0), at));
}

export function removeMark(fd: number, m: MarkSpec): void {
  // Only the flags that select which mark are meaningful on removal.
  const select = m.flags & (K.FAN_MARK_DONT_FOLLOW | K.FAN_MARK_ONLYDIR | K.FAN_MARK_IGNORE);
  withMarkPath(m.path, select, (at, flags) => ffi.fanotifyMark(fd, K.FAN_MARK_REMOVE | SCOPE_FLAGS[m.scope] | flags, m.mask, at));
}

export function flushMarks(fd: number, scope: MarkScope): void {
  ffi.fanotifyMark(fd, K.FAN_MARK_FLUSH | SCOPE_FLAGS[scope], 0, null);
}

/**
 * Cache a verdict in the kernel: an ignore mask for these event bits on the
 * inode of an event fd. Without FAN_MARK_IGNORED_SURV_MODIFY the kernel
 * clears it when the file is modified, so a changed file is asked about again.
 */
export function addIgnoreForFd(fd: number, eventFd: number, mask: number, evictable: boolean): void {
  const base = K.FAN_MARK_ADD | K.FAN_MARK_IGNORED_MASK;
  if (evictable) {
    try {
      // Evictable: caching a million files must not pin a million inodes.
      ffi.fanotifyMark(fd, base | K.FAN_MARK_EVICTABLE, mask, null, eventFd);
      return;
    } catch {
      // EEXIST when the inode already has a non-evictable mark of this group.
    }
  }
  ffi.fanotifyMark(fd, base, mask, null, eventFd);
}

const PROC_SUPER_MAGIC = 0x9fa0;
const SYSFS_MAGIC = 0x62656572;

/**
 * The daemon reads /proc synchronously to describe processes; a permission
 * mark there would make it wait on itself. Refuse such marks up front.
 */
export function checkPermissionTarget(path: string): void {
  let type: number;
  try {
    type = withMarkPath(path, 0, (at) => fs.statfsSync(at).type);
  } catch (err) {
    // Said as fanotify_mark's own failure is said (a SyscallError with the
    // errno name), so a missing path reads the same in every group class.
    const errno = os.constants.errno[(err as NodeJS.ErrnoException).code as keyof typeof os.constants.errno];
    if (errno === undefined) throw err;
    throw new ffi.SyscallError('statfs', errno, path);
  }
  if (type === PROC_SUPER_MAGIC || type === SYSFS_MAGIC) {
    throw new GroupSpecError(`permission events cannot be marked on ${path}: the daemon itself reads procfs and sysfs`);
  }
}
