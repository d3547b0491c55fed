// AF_UNIX datagram sockets with file descriptors attached (SCM_RIGHTS),
// which Node lacks (node:dgram is UDP only, node:net is streams): what
// sd_notify(3) with fds needs (sd_pid_notify_with_fds sends one datagram
// with the fds in an SCM_RIGHTS message), and what a test needs to play
// the receiving side (recvmsg). The layout is x86-64/arm64 Linux: size_t
// and pointers of 8 bytes (struct msghdr, struct cmsghdr, unix(7)).
import * as os from 'node:os';
import koffi from 'koffi';
import { closeFds, SyscallError } from './ffi';

const libc = koffi.load('libc.so.6');

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** Received fds are close-on-exec, as every fd the daemon opens. */
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_DONTWAIT = 0x40;
const MSG_CTRUNC = 0x8;
const MSG_TRUNC = 0x20;
/** The kernel takes at most this many fds in one SCM_RIGHTS message (SCM_MAX_FD). */
export const SCM_MAX_FD = 253;
/** sun_path's size in struct sockaddr_un. */
const SUN_PATH_MAX = 108;

const iovec = koffi.struct('fanotifyd_iovec', { base: 'void *', len: 'size_t' });
// Registered by name: the declarations below refer to it.
koffi.struct('fanotifyd_msghdr', {
  name: 'void *',
  namelen: 'uint32_t',
  iov: koffi.pointer(iovec),
  iovlen: 'size_t',
  control: 'void *',
  controllen: 'size_t',
  flags: 'int',
});
const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  sendmsg: libc.func('long sendmsg(int fd, const fanotifyd_msghdr *msg, int flags)'),
  recvmsg: libc.func('long recvmsg(int fd, _Inout_ fanotifyd_msghdr *msg, int flags)'),
};

function check(ret: number | bigint, syscall: string, detail?: string): number {
  const n = Number(ret);
  if (n < 0) throw new SyscallError(syscall, koffi.errno(), detail);
  return n;
}

/**
 * struct sockaddr_un for a path, or for an abstract name written as
 * "@name" (the leading @ stands for the NUL byte, as in $NOTIFY_SOCKET).
 */
export function unixAddress(path: string): Buffer {
  const name = Buffer.from(path.startsWith('@') ? `\0${path.slice(1)}` : path);
  const abstract = path.startsWith('@');
  if (name.length + (abstract ? 0 : 1) > SUN_PATH_MAX) throw new SyscallError('sockaddr_un', os.constants.errno.ENAMETOOLONG, path);
  const addr = Buffer.alloc(2 + name.length + (abstract ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

/** A non-blocking, close-on-exec AF_UNIX datagram socket. */
export function dgramSocket(): number {
  return check(c.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket');
}

export function bindUnix(fd: number, path: string): void {
  const addr = unixAddress(path);
  check(c.bind(fd, addr, addr.length), 'bind', path);
}

const CMSG_HDR = 16;
const align8 = (n: number) => (n + 7) & ~7;

/** One datagram to `path` carrying `fds` (at most SCM_MAX_FD); throws EAGAIN when the receiver's queue is full. */
export function sendWithFds(fd: number, path: string, data: Buffer, fds: readonly number[] = []): void {
  if (fds.length > SCM_MAX_FD) throw new SyscallError('sendmsg', os.constants.errno.EINVAL, `${fds.length} fds`);
  const addr = unixAddress(path);
  let control: Buffer | null = null;
  if (fds.length) {
    control = Buffer.alloc(CMSG_HDR + align8(4 * fds.length));
    control.writeBigUInt64LE(BigInt(CMSG_HDR + 4 * fds.length), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((f, i) => control!.writeInt32LE(f, CMSG_HDR + 4 * i));
  }
  const msg = {
    name: addr,
    namelen: addr.length,
    iov: [{ base: data, len: data.length }],
    iovlen: 1,
    control,
    controllen: control ? control.length : 0,
    flags: 0,
  };
  check(c.sendmsg(fd, msg, MSG_DONTWAIT), 'sendmsg', path);
}

export interface Datagram {
  data: Buffer;
  /** Received fds, close-on-exec; the caller owns them. */
  fds: number[];
}

/** One datagram, or undefined when none is queued. Throws when the datagram or its fds did not fit (what did arrive is closed). */
export function recvWithFds(fd: number, maxBytes = 4096, maxFds = SCM_MAX_FD): Datagram | undefined {
  const data = Buffer.alloc(maxBytes);
  const control = Buffer.alloc(CMSG_HDR + align8(4 * maxFds));
  const msg = { name: null, namelen: 0, iov: [{ base: data, len: data.length }], iovlen: 1, control, controllen: control.length, flags: 0 };
  const n = Number(c.recvmsg(fd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === os.constants.errno.EAGAIN) return undefined;
    throw new SyscallError('recvmsg', errno);
  }
  const fds = parseRights(control, Number(msg.controllen));
  if (msg.flags & (MSG_TRUNC | MSG_CTRUNC)) {
    closeFds(fds);
    throw new SyscallError('recvmsg', os.constants.errno.EMSGSIZE, 'datagram or its fds cut short');
  }
  return { data: data.subarray(0, n), fds };
}

/** The fds of every SCM_RIGHTS message in a control buffer of `len` bytes. */
export function parseRights(control: Buffer, len: number): number[] {
  const fds: number[] = [];
  for (let off = 0; off + CMSG_HDR <= len; ) {
    const cmsgLen = Number(control.readBigUInt64LE(off));
    if (cmsgLen < CMSG_HDR || off + cmsgLen > len) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + cmsgLen; p += 4) fds.push(control.readInt32LE(p));
    }
    off += align8(cmsgLen);
  }
  return fds;
}
