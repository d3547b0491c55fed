// What /proc says about the process that caused an event. Best effort and
// synchronous: these reads run on the main thread while the event is
// handled, and touch only procfs, never a file under a user's mark.
import * as fs from 'node:fs';

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
  info.cmdline = readCmdline(pid, info);
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

/** Field 22 of /proc/PID/stat is starttime; fields are counted from pid (1) and comm (2). */
const STAT_STARTTIME_FIELD = 22;
/** A stat line is about 300 bytes; comm is at most 64 of them. */
const statBuf = Buffer.allocUnsafe(1024);

/**
 * The process's start time (clock ticks after boot), from /proc/PID/stat;
 * undefined once the process is gone. With the pid it names one process
 * for the whole boot: a pid is reused, a (pid, start time) pair is not.
 */
export function readStartTime(pid: number): number | undefined {
  if (pid <= 0) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return undefined;
  }
  try {
    // open, read, close into a reused buffer: readFileSync would add an
    // fstat, a second read for end of file and an allocation (measured
    // here at about twice the cost).
    return parseStartTime(statBuf.toString('latin1', 0, fs.readSync(fd, statBuf, 0, statBuf.length, 0)));
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * starttime from a /proc/PID/stat line. comm (field 2) is in parentheses
 * and may itself hold spaces and parentheses, so fields are counted from
 * the last ')'.
 */
export function parseStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") " comes field 3 (state).
  const fields = stat.slice(close + 2).split(' ', STAT_STARTTIME_FIELD - 2);
  const v = fields[STAT_STARTTIME_FIELD - 3];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
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
