// The only file that touches koffi. It declares just the libc calls Node
// lacks, and readlinkat, which Node has only as readlink of a whole path;
// everything else (/proc reads) uses node:fs.
//
// Each wrapper reads errno immediately after a -1 return and throws a
// SyscallError carrying errno, its name and the call, so callers never
// inspect return codes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import koffi from 'koffi';
import { FanotifydError } from '../common/errors';

const libc = koffi.load('libc.so.6');

const c = {
  fanotify_init: libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
  fanotify_mark: libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)'),
  read: libc.func('long read(int fd, _Out_ void *buf, unsigned long count)'),
  write: libc.func('long write(int fd, const void *buf, unsigned long count)'),
  close: libc.func('int close(int fd)'),
  open_by_handle_at: libc.func('int open_by_handle_at(int mount_fd, const void *handle, int flags)'),
  readlinkat: libc.func('long readlinkat(int dirfd, const char *path, _Out_ void *buf, unsigned long size)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  getrlimit: libc.func('int getrlimit(int resource, _Out_ uint64_t *rlim)'),
  setrlimit: libc.func('int setrlimit(int resource, const uint64_t *rlim)'),
};

/** A failed system call: errno, its symbolic name and the call that failed. */
export class SyscallError extends FanotifydError {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(errnoName(errno), `${syscall}${detail ? ` ${detail}` : ''}: ${errnoName(errno)}`);
  }
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, num]) => [num as number, name]),
);
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

export const EAGAIN = os.constants.errno.EAGAIN;
export const EINTR = os.constants.errno.EINTR;

function check(ret: number | bigint, syscall: string, detail?: string): number {
  const n = Number(ret);
  if (n < 0) throw new SyscallError(syscall, koffi.errno(), detail);
  return n;
}

export function fanotifyInit(flags: number, eventFFlags: number): number {
  return check(c.fanotify_init(flags >>> 0, eventFFlags >>> 0), 'fanotify_init');
}

const AT_FDCWD = -100;
/** fanotify_mark(2) on an absolute path, or (path null) on the object dirfd refers to. */
export function fanotifyMark(fd: number, flags: number, mask: number, path: string | null, dirfd = AT_FDCWD): void {
  check(c.fanotify_mark(fd, flags >>> 0, BigInt(mask), dirfd, path), 'fanotify_mark', path ?? undefined);
}

export const O_RDONLY = 0;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;

// Readiness of group fds comes from Node's own event loop: a libuv uv_poll
// handle per fd, made through libuv's exported C API (the uv_* symbols Node
// exports for native addons, reached with dlopen of the running process).
// The main thread's epoll_wait then covers the groups too: no other thread
// and no wake-up hop between threads per batch (docs/architecture.md).
const uv = koffi.load(null);
const UV_POLL = 8; // uv_handle_type
/** uv_poll_event: data to read (POLLIN). */
export const UV_READABLE = 1;
/** uv_poll_event: an urgent condition (POLLPRI), which /proc/self/mountinfo raises when the mount table changes. */
export const UV_PRIORITIZED = 8;
const PollCb = koffi.proto('void fanotifyd_poll_cb(void *handle, int status, int events)');
const CloseCb = koffi.proto('void fanotifyd_close_cb(void *handle)');
const u = {
  default_loop: uv.func('void *uv_default_loop(void)'),
  handle_size: uv.func('size_t uv_handle_size(int type)'),
  poll_init: uv.func('int uv_poll_init(void *loop, void *handle, int fd)'),
  poll_start: uv.func('int uv_poll_start(void *handle, int events, fanotifyd_poll_cb *cb)'),
  poll_stop: uv.func('int uv_poll_stop(void *handle)'),
  close: uv.func('void uv_close(void *handle, fanotifyd_close_cb *cb)'),
  err_name: uv.func('const char *uv_err_name(int err)'),
};
const POLL_HANDLE_SIZE = Number(u.handle_size(UV_POLL));

/** Live poll handles by id (kept in the handle's data field, its first member). */
const polls = new Map<number, { handle: Buffer; events: number; onReadable: (status: number) => void }>();
/** Handles stopped and closing: their memory must live until uv_close's callback. */
const closing = new Map<number, Buffer>();
let nextPollId = 1;
// The id sits in uv_handle_t.data, a pointer-sized first member.
const handleId = (h: unknown) => Number(koffi.decode(h, 'intptr_t'));
// One callback of each kind for every handle: koffi has a bounded number of slots.
let pollCb: unknown;
let closeCb: unknown;

/**
 * Call onReadable(0) on the main thread whenever fd is readable (level
 * triggered: again on the next loop turn while data remains), or with a
 * negative libuv error. `events` may ask for UV_PRIORITIZED instead.
 * Returns the id for pollStop.
 */
export function pollStart(fd: number, onReadable: (status: number) => void, events = UV_READABLE): number {
  pollCb ??= koffi.register((h: unknown, status: number) => {
    try {
      polls.get(handleId(h))?.onReadable(status);
    } catch (err) {
      // Called from libuv, not from JavaScript: rethrow where Node reports it (uncaughtException) at once.
      queueMicrotask(() => {
        throw err;
      });
    }
  }, koffi.pointer(PollCb));
  closeCb ??= koffi.register((h: unknown) => closing.delete(handleId(h)), koffi.pointer(CloseCb));
  const handle = Buffer.alloc(POLL_HANDLE_SIZE);
  const r = u.poll_init(u.default_loop(), handle, fd);
  if (r < 0) throw new SyscallError('uv_poll_init', -r, u.err_name(r));
  const id = nextPollId++;
  if (koffi.sizeof('void *') === 8) handle.writeBigInt64LE(BigInt(id), 0);
  else handle.writeInt32LE(id, 0);
  polls.set(id, { handle, events, onReadable });
  const s = u.poll_start(handle, events, pollCb);
  if (s < 0) {
    pollStop(id);
    throw new SyscallError('uv_poll_start', -s, u.err_name(s));
  }
  return id;
}

/** Stop watching the fd for a while, keeping the handle (pollResume restarts it). */
export function pollPause(id: number): void {
  const p = polls.get(id);
  if (p) u.poll_stop(p.handle);
}

export function pollResume(id: number): void {
  const p = polls.get(id);
  if (!p) return;
  const s = u.poll_start(p.handle, p.events, pollCb);
  if (s < 0) throw new SyscallError('uv_poll_start', -s, u.err_name(s));
}

/** Stop polling; the fd may be closed right after. */
export function pollStop(id: number): void {
  const p = polls.get(id);
  if (!p) return;
  polls.delete(id);
  u.poll_stop(p.handle);
  closing.set(id, p.handle);
  u.close(p.handle, closeCb);
}

/** Non-blocking read: bytes read, 0 at EAGAIN. Throws on other errors. */
export function readNonblock(fd: number, buf: Buffer): number {
  const n = Number(c.read(fd, buf, buf.length));
  if (n >= 0) return n;
  const errno = koffi.errno();
  if (errno === EAGAIN || errno === EINTR) return 0;
  throw new SyscallError('read', errno);
}

/**
 * write(2) that reports failure as its errno (0: written) instead of
 * throwing: for loops where failure is the common answer (the restore
 * sweep's ENOENT), where building an error per call cost 9-13 us against
 * 1.6-2.2 us for the call itself.
 */
export function tryWrite(fd: number, buf: Buffer, len: number): number {
  return Number(c.write(fd, buf, len)) < 0 ? koffi.errno() : 0;
}

export function writeAll(fd: number, buf: Buffer, len: number): void {
  const n = Number(c.write(fd, buf, len));
  if (n < 0) throw new SyscallError('write', koffi.errno());
}

/** close(2) that never throws: callers close in cleanup paths. Returns errno or 0. */
export function closeFd(fd: number): number {
  return c.close(fd) < 0 ? koffi.errno() : 0;
}

// close_range(2) (Linux 5.9, glibc 2.34) closes a run of consecutive fds in
// one call. Measured here in C: 0.61-0.75 us per fd for close() calls in a
// row, 0.33-0.38 us with one close_range() per 64 (0.36-0.49 with one per
// 8); a koffi call adds its own overhead to each close(). Without the
// system call (Linux before 5.9) or glibc's wrapper (before 2.34), fds are
// closed one by one.
const closeRangeFn = (() => {
  try {
    return libc.func('int close_range(unsigned int first, unsigned int last, int flags)');
  } catch {
    return undefined;
  }
})();
let closeRangeWorks = closeRangeFn !== undefined;

/** Whether closeFds still closes runs with close_range (false once it failed, or without glibc's wrapper). */
export function closeRangeInUse(): boolean {
  return closeRangeWorks;
}

/**
 * Close distinct fds the caller owns, fds[0..n): each run of consecutive
 * numbers with one close_range(2). A run holds only numbers from the list,
 * so no other fd is touched. Sorts fds in place; never throws. Returns the
 * system calls it made.
 */
export function closeFds(fds: number[], n = fds.length): number {
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = fds[i] > fds[i - 1];
  if (!sorted) {
    const head = fds.slice(0, n).sort((x, y) => x - y);
    for (let i = 0; i < n; i++) fds[i] = head[i];
  }
  let calls = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && fds[j + 1] === fds[j] + 1) j++;
    if (j > i && closeRangeWorks) {
      calls++;
      if (closeRangeFn!(fds[i], fds[j], 0) === 0) {
        i = j + 1;
        continue;
      }
      // ENOSYS before Linux 5.9, or a seccomp filter refusing the call;
      // nothing was closed. One by one from now on.
      closeRangeWorks = false;
    }
    for (; i <= j; i++, calls++) c.close(fds[i]);
  }
  return calls;
}

// openat2(2) (Linux 5.6) has no glibc wrapper; its number is 437 on every
// architecture (it came after the syscall tables were unified).
const SYS_openat2 = 437;
const syscall4 = libc.func('long syscall(long number, int dirfd, const char *path, const void *how, unsigned long size)');
/** RESOLVE_* of linux/openat2.h: resolve as if dirfd were the root (".." and absolute links stay beneath it). */
export const RESOLVE_IN_ROOT = 0x10;
/** No /proc/PID/fd-style magic links on the way (they could lead out of the root). */
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const O_NOFOLLOW = 0o400000;
export const O_DIRECTORY = 0o200000;

/** openat2(2) with struct open_how {flags, mode, resolve}; returns the new fd. */
export function openat2(dirfd: number, path: string, flags: number, resolve: number): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags >>> 0), 0);
  how.writeBigUInt64LE(BigInt(resolve >>> 0), 16);
  return check(syscall4(SYS_openat2, dirfd, path, how, how.length), 'openat2', path);
}

/** open_by_handle_at(2); handle is a struct file_handle (header + f_handle). */
export function openByHandleAt(mountFd: number, handle: Buffer, flags: number): number {
  return check(c.open_by_handle_at(mountFd, handle, flags), 'open_by_handle_at');
}

// Every event fd's path is a readlink of /proc/self/fd/N. Relative to a
// held fd on that directory, the kernel walks one name instead of four
// (/proc, self, its pid, fd): 2.8-3.2 us a call against 4.5-5.0 us for
// fs.readlinkSync of the whole path, measured in process here. Opened at
// start-up, so it is never counted as an fd an event left behind; where it
// cannot be opened, fdLink falls back to the whole path.
const procSelfFd = (() => {
  try {
    return fs.openSync('/proc/self/fd', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | O_CLOEXEC);
  } catch {
    return -1;
  }
})();
// The kernel renders the link into a PATH_MAX buffer and fails longer
// paths with ENAMETOOLONG, so a larger buffer is never filled; a full one
// would mean a cut path, and is refused rather than returned.
const linkBuf = Buffer.allocUnsafe(2 * 4096);

/** The path of an open fd (the target of /proc/self/fd/N), as a new Buffer. */
export function fdLink(fd: number): Buffer {
  if (procSelfFd < 0) return fs.readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' });
  const n = check(c.readlinkat(procSelfFd, String(fd), linkBuf, linkBuf.length), 'readlinkat', `/proc/self/fd/${fd}`);
  if (n >= linkBuf.length) throw new SyscallError('readlinkat', os.constants.errno.ENAMETOOLONG, `/proc/self/fd/${fd}`);
  return Buffer.from(linkBuf.subarray(0, n));
}

// struct statfs on 64-bit Linux: seven 8-byte words (f_type, f_bsize,
// f_blocks, f_bfree, f_bavail, f_files, f_ffree), then f_fsid (2 x int).
const STATFS_SIZE = 120;
const STATFS_OFF_FSID = 56;
const statfsFn = libc.func('int statfs(const char *path, _Out_ void *buf)');

/** The filesystem id of path, as fanotify reports it in FID info records. */
export function fsidOf(path: string): Buffer {
  const buf = Buffer.alloc(STATFS_SIZE);
  check(statfsFn(path, buf), 'statfs', path);
  return buf.subarray(STATFS_OFF_FSID, STATFS_OFF_FSID + 8);
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Mark an inherited fd close-on-exec (sd_listen_fds does the same to the fds it hands over). */
export function setCloexec(fd: number): void {
  const flags = check(c.fcntl(fd, F_GETFD, 0), 'fcntl', `F_GETFD ${fd}`);
  check(c.fcntl(fd, F_SETFD, flags | FD_CLOEXEC), 'fcntl', `F_SETFD ${fd}`);
}

/** Whether fd is open in this process. */
export function fdIsOpen(fd: number): boolean {
  return c.fcntl(fd, F_GETFD, 0) >= 0;
}

const RLIMIT_NOFILE = 7;

/** RLIMIT_NOFILE: the kernel gives this process no fd number at or above `soft`. */
export function fileLimit(): { soft: number; hard: number } {
  const r = new BigUint64Array(2);
  check(c.getrlimit(RLIMIT_NOFILE, r), 'getrlimit');
  return { soft: Number(r[0]), hard: Number(r[1]) };
}

/** Lower (or raise, up to hard) the soft RLIMIT_NOFILE. */
export function setFileLimit(soft: number): void {
  const { hard } = fileLimit();
  check(c.setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(Math.min(soft, hard)), BigInt(hard)])), 'setrlimit');
}
