// The only file that touches koffi. It declares just the libc calls Node
// lacks; everything else (readlink, /proc reads) uses node:fs.
//
// Each wrapper reads errno immediately after a -1 return and throws a
// SyscallError carrying errno, its name and the call, so callers never
// inspect return codes.
import * as os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  fanotify_init: libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
  fanotify_mark: libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, _Out_ void *events, int maxevents, int timeout)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  read: libc.func('long read(int fd, _Out_ void *buf, unsigned long count)'),
  write: libc.func('long write(int fd, const void *buf, unsigned long count)'),
  close: libc.func('int close(int fd)'),
  open_by_handle_at: libc.func('int open_by_handle_at(int mount_fd, const void *handle, int flags)'),
};

/** A failed system call: errno, its symbolic name and the call that failed. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
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

export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const O_RDONLY = 0;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;

// struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned
// elsewhere (16 bytes, data at offset 8).
export const EPOLL_EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const EPOLL_DATA_OFF = process.arch === 'x64' ? 4 : 8;

export function epollCreate(): number {
  return check(c.epoll_create1(O_CLOEXEC), 'epoll_create1');
}
export function epollAdd(epfd: number, fd: number): void {
  const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  ev.writeUInt32LE(EPOLLIN, 0);
  ev.writeInt32LE(fd, EPOLL_DATA_OFF);
  check(c.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ev), 'epoll_ctl(ADD)');
}
export function epollDel(epfd: number, fd: number): void {
  check(c.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, Buffer.alloc(EPOLL_EVENT_SIZE)), 'epoll_ctl(DEL)');
}
/** The fd stored in the i-th struct epoll_event of an epoll_wait buffer. */
export function epollEventFd(buf: Buffer, i: number): number {
  return buf.readInt32LE(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFF);
}
/**
 * epoll_wait on a koffi worker thread, never on the main thread. The callback
 * gets the ready count, or -errno.
 */
export function epollWaitAsync(epfd: number, buf: Buffer, timeoutMs: number, cb: (n: number) => void): void {
  const max = Math.floor(buf.length / EPOLL_EVENT_SIZE);
  c.epoll_wait.async(epfd, buf, max, timeoutMs, (err: unknown, res: number) => {
    if (err) cb(-EINTR);
    else cb(res < 0 ? -koffi.errno() : res);
  });
}

export function eventfdCreate(): number {
  return check(c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), 'eventfd');
}

const ONE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
export function eventfdSignal(fd: number): void {
  c.write(fd, ONE, 8);
}

/** Non-blocking read: bytes read, 0 at EAGAIN. Throws on other errors. */
export function readNonblock(fd: number, buf: Buffer): number {
  const n = Number(c.read(fd, buf, buf.length));
  if (n >= 0) return n;
  const errno = koffi.errno();
  if (errno === EAGAIN || errno === EINTR) return 0;
  throw new SyscallError('read', errno);
}

export function writeAll(fd: number, buf: Buffer, len: number): void {
  const n = Number(c.write(fd, buf, len));
  if (n < 0) throw new SyscallError('write', koffi.errno());
}

/** close(2) that never throws: callers close in cleanup paths. Returns errno or 0. */
export function closeFd(fd: number): number {
  return c.close(fd) < 0 ? koffi.errno() : 0;
}

/** open_by_handle_at(2); handle is a struct file_handle (header + f_handle). */
export function openByHandleAt(mountFd: number, handle: Buffer, flags: number): number {
  return check(c.open_by_handle_at(mountFd, handle, flags), 'open_by_handle_at');
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
