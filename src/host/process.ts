// What /proc says about the process that caused an event. Best effort and
// synchronous: these reads run on the main thread while the event is
// handled, and touch only procfs, never a file under a user's mark.
import * as fs from 'node:fs';
import { readAttribution } from './attribution';
import type { ContainerInfo } from './container';

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
  /** Clock ticks after boot (field 22 of /proc/PID/stat): with pid, names the process for the whole boot. */
  startTime?: number;
  /** The kernel's id of its v2 cgroup (the directory's inode); 0 or unset when unknown. */
  cgroupId?: number;
  /** Its cgroup's path (src/host/cgroup.ts says which line of /proc/PID/cgroup). */
  cgroup?: string;
  /** The container it runs in; unset for a process in none. */
  container?: ContainerInfo;
  /** Its mount namespace's inode, set only when it is not the host's. */
  mntns?: number;
}

/** Command-line bytes kept per process: an event stays small whatever a process's arguments (up to 2 MiB and more). */
export const CMDLINE_MAX_BYTES = 16 * 1024;

/**
 * How much is read about a process: everything, or everything but the
 * command line (the largest and dearest part: up to 16 KiB per process).
 */
export type ProcessReadLevel = 'full' | 'basic';

/** A process known by its pid alone. */
export function unknownProcess(pid: number): ProcessInfo {
  return { pid, ppid: 0, uid: 0, gid: 0, comm: '', exe: '', cmdline: [], details: false, verified: false };
}

export function readProcess(pid: number, pidfd?: number, level: ProcessReadLevel = 'full'): ProcessInfo {
  const info = unknownProcess(pid);
  if (pid <= 0) return info;
  try {
    // stat rather than comm: the same comm, and the start time besides, in one read.
    const stat = parseStat(readProcFile(`/proc/${pid}/stat`));
    if (!stat) return info;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    info.ppid = stat.ppid;
    info.comm = stat.comm;
    info.startTime = stat.startTime;
    info.uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    info.gid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    info.details = true;
  } catch {
    return info; // exited: pid alone
  }
  try {
    info.exe = fs.readlinkSync(`/proc/${pid}/exe`, 'utf8');
  } catch {
    // Kernel threads and zombies have no exe.
  }
  if (level === 'full') info.cmdline = readCmdline(pid, info);
  const attribution = readAttribution(pid);
  if (attribution) {
    info.cgroupId = attribution.cgroupId;
    info.cgroup = attribution.cgroup;
    if (attribution.container) info.container = attribution.container;
    if (attribution.mntns !== undefined) info.mntns = attribution.mntns;
  }
  // A pidfd pins the process the kernel meant. If it still refers to a live
  // process with this pid after the reads above, the pid was not reused in
  // between and the details are that process's.
  if (pidfd !== undefined && pidfd >= 0) info.verified = pidfdRefersTo(pidfd, pid);
  return info;
}

function readCmdline(pid: number, info: ProcessInfo): string[] {
  try {
    let raw = fs.readFileSync(`/proc/${pid}/cmdline`);
    if (raw.length > CMDLINE_MAX_BYTES) {
      // Keep the arguments that end (NUL) within the limit.
      raw = raw.subarray(0, raw.lastIndexOf(0, CMDLINE_MAX_BYTES - 1) + 1);
      info.cmdlineTruncated = true;
    }
    const text = raw.toString('utf8');
    return text.length ? text.replace(/\0$/, '').split('\0') : [];
  } catch {
    return []; // gone between reads: keep what was read
  }
}

function pidfdRefersTo(pidfd: number, pid: number): boolean {
  try {
    const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${pidfd}`, 'latin1');
    return Number(/^Pid:\s+(-?\d+)/m.exec(fdinfo)?.[1]) === pid;
  } catch {
    return false;
  }
}

/** A stat line is about 300 bytes; comm is at most 64 of them. */
const procBuf = Buffer.allocUnsafe(1024);

/**
 * A small /proc file read with open, read and close into a reused buffer:
 * readFileSync adds an fstat, a second read for end of file and an
 * allocation (measured here at about twice the cost). Throws once the
 * process is gone.
 */
function readProcFile(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    // UTF-8 as /proc/PID/comm was read: a comm may hold any bytes, the numbers are ASCII.
    return procBuf.toString('utf8', 0, fs.readSync(fd, procBuf, 0, procBuf.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The process's start time (clock ticks after boot), from /proc/PID/stat;
 * undefined once the process is gone. With the pid it names one process
 * for the whole boot: a pid is reused, a (pid, start time) pair is not.
 */
export function readStartTime(pid: number): number | undefined {
  if (pid <= 0) return undefined;
  try {
    return parseStat(readProcFile(`/proc/${pid}/stat`))?.startTime;
  } catch {
    return undefined;
  }
}

export function parseStartTime(stat: string): number | undefined {
  return parseStat(stat)?.startTime;
}

/** Fields are numbered from 1 (pid) in proc(5); these are the ones read. */
const STAT_PPID = 4;
const STAT_STARTTIME = 22;

/**
 * comm, ppid and starttime from a /proc/PID/stat line. comm (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so the fields
 * after it are counted from the last ')'.
 */
function parseStat(stat: string): { comm: string; ppid: number; startTime: number } | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // After ") " comes field 3 (state).
  const fields = stat.slice(close + 2).split(' ', STAT_STARTTIME - 2);
  const field = (n: number) => fields[n - 3];
  const start = field(STAT_STARTTIME);
  const ppid = field(STAT_PPID);
  if (start === undefined || !/^\d+$/.test(start) || ppid === undefined || !/^\d+$/.test(ppid)) return undefined;
  return { comm: stat.slice(open + 1, close), ppid: Number(ppid), startTime: Number(start) };
}

/** statfs(2) f_type of pidfs (include/uapi/linux/magic.h). */
const PID_FS_MAGIC = 0x50494446;
/** Whether a device (st_dev) is pidfs, learnt once per device: a fact of the kernel, not of a watch. */
const pidfsDevices = new Map<number, boolean>();

/**
 * The inode number of a pidfd's process, when pidfds live on pidfs (Linux
 * 6.9+), where it is that process's own for the whole boot; undefined on
 * older kernels, which give every pidfd one shared anonymous inode. One
 * fstat, several times cheaper here than reading /proc/PID/stat, and it
 * still names the process after it exited.
 */
export function pidfdInode(pidfd: number): number | undefined {
  try {
    const st = fs.fstatSync(pidfd);
    let pidfs = pidfsDevices.get(st.dev);
    if (pidfs === undefined) {
      // statfs follows the /proc/self/fd magic link to the fd's filesystem; nothing is opened.
      pidfs = fs.statfsSync(`/proc/self/fd/${pidfd}`).type === PID_FS_MAGIC;
      pidfsDevices.set(st.dev, pidfs);
    }
    return pidfs ? st.ino : undefined;
  } catch {
    return undefined;
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
