// What a fanotify group is told about a permission event: struct
// fanotify_response { __s32 fd; __u32 response; }, followed, when FAN_INFO
// is set, by struct fanotify_response_info_audit_rule naming the rule that
// decided (include/uapi/linux/fanotify.h).
import * as os from 'node:os';
import * as K from './constants';
import { decodeEvents } from './decoder';
import * as ffi from './ffi';

const ENOENT = os.constants.errno.ENOENT;

export interface ResponseExtras {
  /** FAN_DENY_ERRNO: the errno a DENY fails the operation with. */
  errno?: number;
  /** FAN_AUDIT: ask the kernel for an audit record. */
  audit?: boolean;
  /** With audit: FAN_INFO naming this policy rule. */
  auditRule?: number;
}

/** The response word: FAN_ALLOW or FAN_DENY, the errno in the top byte, FAN_AUDIT and FAN_INFO. */
export function responseWord(allow: boolean, extras: ResponseExtras = {}): number {
  let response = allow ? K.FAN_ALLOW : K.FAN_DENY;
  if (extras.errno && !allow) response |= (extras.errno & 0xff) << 24;
  if (extras.audit) response |= K.FAN_AUDIT;
  if (extras.audit && extras.auditRule) response |= K.FAN_INFO;
  return response >>> 0;
}

/** Lays the response out in b (at least RESPONSE_MAX_LEN bytes); returns its length. */
export function encodeResponse(b: Buffer, eventFd: number, response: number, auditRule = 0): number {
  b.writeInt32LE(eventFd, 0);
  b.writeUInt32LE(response >>> 0, 4);
  if (!(response & K.FAN_INFO)) return K.FAN_RESPONSE_LEN;
  const o = K.FAN_RESPONSE_LEN;
  // struct fanotify_response_info_header { u8 type; u8 pad; u16 len; }, then rule number and two trust fields.
  b.writeUInt8(K.FAN_RESPONSE_INFO_AUDIT_RULE, o);
  b.writeUInt8(0, o + 1);
  b.writeUInt16LE(K.AUDIT_RULE_INFO_LEN, o + 2);
  b.writeUInt32LE(auditRule >>> 0, o + 4);
  b.writeUInt32LE(K.FAN_AUDIT_TRUST_UNKNOWN, o + 8);
  b.writeUInt32LE(K.FAN_AUDIT_TRUST_UNKNOWN, o + 12);
  return o + K.AUDIT_RULE_INFO_LEN;
}

export const RESPONSE_MAX_LEN = K.FAN_RESPONSE_LEN + K.AUDIT_RULE_INFO_LEN;

/** Writes responses to one group, through a buffer of its own. */
export class ResponseWriter {
  private readonly buf = Buffer.alloc(RESPONSE_MAX_LEN);

  constructor(private readonly groupFd: number) {}

  /** Throws a SyscallError when the kernel refuses it (EINVAL for bits it does not take, ENOENT for an fd it holds no event for). */
  write(eventFd: number, response: number, auditRule = 0): void {
    ffi.writeAll(this.groupFd, this.buf, encodeResponse(this.buf, eventFd, response, auditRule));
  }
}

/** Times one fd number is answered at most in a sweep; see sweepPending. */
const MAX_PER_NUMBER = 64;

/**
 * Answer every permission event of a group whose event fd number lies in
 * [0, limit) with `response`, without knowing which numbers are pending:
 * the kernel matches a response to an event by the fd number the reader
 * was given (process_access_response walks the group's access list for
 * event->fd == fd) and refuses a number with no event (ENOENT), so trying
 * each number finds them. A number is tried again after a success, since
 * a process that closed an event's fd before answering it could have been
 * given the same number for a later event. Used when a group is taken
 * back after its reader died: its numbers name nothing in this process,
 * and must all be answered before this process reads (and gets numbers
 * of its own). Returns the events answered and the numbers the kernel
 * refused with something else than ENOENT.
 */
export function sweepPending(groupFd: number, limit: number, response: number): { answered: number; errors: number } {
  const buf = Buffer.alloc(K.FAN_RESPONSE_LEN);
  buf.writeUInt32LE(response >>> 0, 4);
  let answered = 0;
  let errors = 0;
  for (let fd = 0; fd < limit; fd++) {
    buf.writeInt32LE(fd, 0);
    for (let i = 0; i < MAX_PER_NUMBER; i++) {
      const errno = ffi.tryWrite(groupFd, buf, K.FAN_RESPONSE_LEN);
      if (errno === 0) {
        answered++;
        continue;
      }
      if (errno !== ENOENT) errors++;
      break;
    }
  }
  return { answered, errors };
}

/**
 * Read what a group still queues and answer each permission event with
 * `response`, closing every fd the records carry: before giving up a group
 * whose watch cannot be had back, since closing it makes the kernel allow
 * all it holds. At most `maxReads` reads; what comes after is the kernel's.
 * Returns the events answered.
 */
export function answerQueued(groupFd: number, response: number, maxReads = 64): number {
  const buf = Buffer.allocUnsafe(64 * 1024);
  const resp = Buffer.alloc(K.FAN_RESPONSE_LEN);
  resp.writeUInt32LE(response >>> 0, 4);
  let answered = 0;
  for (let i = 0; i < maxReads; i++) {
    const len = ffi.readNonblock(groupFd, buf);
    if (len <= 0) break;
    const fds: number[] = [];
    for (const ev of decodeEvents(buf, len, true).events) {
      if (ev.fd >= 0 && ev.mask & K.FAN_PERMISSION_EVENTS) {
        resp.writeInt32LE(ev.fd, 0);
        if (ffi.tryWrite(groupFd, resp, K.FAN_RESPONSE_LEN) === 0) answered++;
      }
      if (ev.fd >= 0) fds.push(ev.fd);
      if (ev.pidfd !== undefined && ev.pidfd >= 0) fds.push(ev.pidfd);
    }
    ffi.closeFds(fds);
  }
  return answered;
}
