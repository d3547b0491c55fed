// The path of an open fd (an event's, or one opened from a file handle).
import * as fs from 'node:fs';
import * as ffi from '../kernel/ffi';

const DELETED_SUFFIX = Buffer.from(' (deleted)');

/** readlink of /proc/self/fd/N: the path of an open fd, as bytes. */
export function fdPath(fd: number): { path?: Buffer; deleted: boolean } {
  try {
    let path = ffi.fdLink(fd);
    let deleted = false;
    // The kernel appends " (deleted)" to an unlinked file's path; a file may
    // also really be named so, which nlink tells apart.
    if (path.length > DELETED_SUFFIX.length && path.subarray(-DELETED_SUFFIX.length).equals(DELETED_SUFFIX)) {
      try {
        if (fs.fstatSync(fd).nlink === 0) {
          deleted = true;
          path = path.subarray(0, path.length - DELETED_SUFFIX.length);
        }
      } catch {
        // fstat failing leaves the name as the kernel gave it.
      }
    }
    return { path, deleted };
  } catch {
    return { deleted: false };
  }
}
