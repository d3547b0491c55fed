// The daemon's mount table (/proc/self/mountinfo, proc(5)) and its changes.
// A subtree watch marks every mount below its directory, so it reads the
// table when it starts and again whenever the table changes. The kernel
// says when: poll(2) on an open mountinfo file reports POLLPRI (with
// POLLERR) once after each change to the mount namespace, on every kernel
// version, so no polling of the file and no fanotify group of its own.
import * as fs from 'node:fs';
import * as ffi from '../kernel/ffi';

export interface MountEntry {
  /** Mount ID (field 1); the kernel may reuse it after an unmount. */
  id: number;
  parentId: number;
  /** major:minor of the filesystem (field 3): equal for every mount of one filesystem. */
  dev: string;
  /** The directory of the filesystem this mount shows at its mount point (field 4): not "/" for a bind mount. */
  root: string;
  mountPoint: string;
  fsType: string;
}

/** proc(5): space, tab, newline and backslash in paths are written as \ooo. */
function unescape(field: string): string {
  return field.includes('\\') ? field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))) : field;
}

/** Parse mountinfo text; lines that do not have its shape are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    // Optional fields (shared:N, master:N, ...) run from field 7 to the "-" separator.
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 2) continue;
    const id = Number(f[0]);
    const parentId = Number(f[1]);
    if (!Number.isInteger(id) || !Number.isInteger(parentId)) continue;
    out.push({ id, parentId, dev: f[2], root: unescape(f[3]), mountPoint: unescape(f[4]), fsType: f[sep + 1] });
  }
  return out;
}

/**
 * Whose mount table subtrees follow: the daemon's, or under a host root of
 * /proc/PID/root that process's, whose mount points are then host paths.
 */
let mountTable = '/proc/self/mountinfo';

export function useMountTable(pid: number): void {
  mountTable = `/proc/${pid}/mountinfo`;
}

/** The mount table now (the daemon's, or the host root's process's). */
export function readMountInfo(): MountEntry[] {
  return parseMountInfo(fs.readFileSync(mountTable, 'utf8'));
}

/**
 * Calls onChange on the main thread after the mount table changed (a
 * mount, an unmount, a move, a propagation change). Changes between two
 * calls come as one call: the caller reads the table again. Errors of the
 * poll itself come as onChange's argument, after which nothing more is told.
 */
export class MountTableWatch {
  private fd: number;
  private poll?: number;

  constructor(onChange: (err?: Error) => void) {
    // A /proc file: no permission mark can make this open wait (they are refused on procfs).
    this.fd = fs.openSync(mountTable, fs.constants.O_RDONLY | ffi.O_CLOEXEC);
    try {
      // Only POLLPRI: the file is always readable, so asking for POLLIN would wake the loop forever.
      this.poll = ffi.pollStart(
        this.fd,
        (status) => {
          if (status >= 0) return onChange();
          this.stop();
          onChange(new ffi.SyscallError('poll', -status, mountTable));
        },
        ffi.UV_PRIORITIZED,
      );
    } catch (err) {
      fs.closeSync(this.fd);
      throw err;
    }
  }

  private stop(): void {
    if (this.poll === undefined) return;
    ffi.pollStop(this.poll);
    this.poll = undefined;
  }

  close(): void {
    if (this.fd < 0) return;
    this.stop();
    ffi.closeFd(this.fd);
    this.fd = -1;
  }
}
