// What a fanotify group is told about a permission event: struct
// fanotify_response { __s32 fd; __u32 response; }, followed, when FAN_INFO
// is set, by struct fanotify_response_info_audit_rule naming the rule that
// decided (include/uapi/linux/fanotify.h).
import * as K from './constants';
import * as ffi from './ffi';

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
