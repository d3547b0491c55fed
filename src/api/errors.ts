// The one place errors become gRPC statuses. Branches on error classes and
// errno codes, never on message text.
import * as grpc from '@grpc/grpc-js';
import { SyscallError } from '../kernel/ffi';
import { GroupSpecError } from '../kernel/group';

/** An error that already knows its status; the message tells the client what to fix. */
export class ApiError extends Error {
  constructor(
    readonly status: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
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
  if (err instanceof GroupSpecError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof SyscallError) {
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

export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const { code, details } = toStatus(err);
  return { code, details };
}
