// The one place errors become gRPC statuses. Branches on error codes and
// errno names, never on message text, and on FanotifydError's stable codes
// rather than the kernel layer's classes: importing those would load the
// FFI (koffi) into every unit test of the API layer.
import * as grpc from '@grpc/grpc-js';
import { FanotifydError } from '../common/errors';

/** An error that already knows its status; the message tells the client what to fix. */
export class ApiError extends FanotifydError {
  constructor(
    readonly status: grpc.status,
    message: string,
  ) {
    super('EAPI', message);
  }
}

/** src/kernel/group.ts GroupSpecError: a group or mark the kernel would refuse, said before asking it. */
const GROUP_SPEC_CODE = 'EGROUPSPEC';

/** A glob the watch cannot compile (src/common/glob.ts GlobError); its message says what to write. */
const GLOB_CODE = 'EGLOB';

/** src/kernel/ffi.ts SyscallError: its code is the errno name, and it names the call. */
function isSyscallError(err: unknown): err is FanotifydError & { syscall: string; errno: number } {
  return err instanceof FanotifydError && typeof (err as { syscall?: unknown }).syscall === 'string';
}

const ERRNO_STATUS: Record<string, grpc.status> = {
  ENOENT: grpc.status.NOT_FOUND,
  ENOTDIR: grpc.status.INVALID_ARGUMENT,
  EINVAL: grpc.status.INVALID_ARGUMENT,
  ENAMETOOLONG: grpc.status.INVALID_ARGUMENT,
  ELOOP: grpc.status.INVALID_ARGUMENT,
  EISDIR: grpc.status.INVALID_ARGUMENT,
  EEXIST: grpc.status.ALREADY_EXISTS,
  EPERM: grpc.status.PERMISSION_DENIED,
  EACCES: grpc.status.PERMISSION_DENIED,
  EMFILE: grpc.status.RESOURCE_EXHAUSTED,
  ENFILE: grpc.status.RESOURCE_EXHAUSTED,
  ENOSPC: grpc.status.RESOURCE_EXHAUSTED,
  ENOMEM: grpc.status.RESOURCE_EXHAUSTED,
  ENOSYS: grpc.status.FAILED_PRECONDITION,
  EOPNOTSUPP: grpc.status.FAILED_PRECONDITION,
  ENODEV: grpc.status.FAILED_PRECONDITION,
  EXDEV: grpc.status.FAILED_PRECONDITION,
};

const ERRNO_HINT: Record<string, string> = {
  ENOENT: 'the path does not exist',
  EINVAL: 'the kernel refused this combination of class, report mode, scope and events',
  EMFILE: 'too many fanotify groups for this user (fs.fanotify.max_user_groups)',
  ENOSPC: 'too many marks for this user (fs.fanotify.max_user_marks)',
  EXDEV: 'this filesystem does not support the requested mark (file handles or subvolumes)',
  ENODEV: 'this filesystem cannot be watched with file handles',
  EOPNOTSUPP: 'this filesystem does not support the requested events',
};

export function toStatus(err: unknown): { code: grpc.status; details: string } {
  if (err && typeof err === 'object' && 'code' in err && 'details' in err && typeof (err as { code: unknown }).code === 'number') {
    return err as { code: grpc.status; details: string };
  }
  if (err instanceof ApiError) return { code: err.status, details: err.message };
  if (err instanceof FanotifydError && (err.code === GROUP_SPEC_CODE || err.code === GLOB_CODE)) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (isSyscallError(err)) {
    const hint = ERRNO_HINT[err.code];
    return {
      code: ERRNO_STATUS[err.code] ?? grpc.status.INTERNAL,
      details: hint ? `${err.message}: ${hint}` : err.message,
    };
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && ERRNO_STATUS[code] !== undefined) {
    return { code: ERRNO_STATUS[code], details: (err as Error).message };
  }
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

/** The kernel's errno name when a system call failed (MarkResult.errno), else "". */
export function errnoName(err: unknown): string {
  return isSyscallError(err) ? err.code : '';
}
