// Directory file handles (FAN_REPORT_DFID_NAME) turned into paths with
// open_by_handle_at, using an fd on the filesystem that reported the
// handle (matched by fsid).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { FileId } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';
import { openMarkPath } from '../kernel/group';
import { fdPath } from './fd-path';

const openAsync = promisify(fs.open);

export class HandleResolver {
  private readonly mountFds = new Map<string, number>();

  /**
   * One fd per filesystem of the given paths. open_by_handle_at refuses
   * O_PATH fds (EBADF), so these are real opens, done on the thread pool:
   * if another watch holds a permission mark here, the main thread stays
   * free to answer the daemon's own event.
   */
  static async open(paths: string[]): Promise<HandleResolver> {
    const r = new HandleResolver();
    try {
      for (const p of paths) await r.add(p);
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  /** Make handles from path's filesystem resolvable. */
  async add(hostPath: string): Promise<void> {
    // Under --host-root, the path and its parent are reached through fds beneath it (src/kernel/group.ts).
    const p = openMarkPath(hostPath, 0);
    const parentPath = path.dirname(hostPath);
    const parent = openMarkPath(parentPath, 0);
    try {
      const key = ffi.fsidOf(p.at).toString('hex');
      if (this.mountFds.has(key)) return;
      // Prefer the parent: an fd held on the marked directory itself would
      // keep it alive after deletion, and its handle would never go stale.
      // The parent serves only if it is on the same filesystem (not across a
      // mount point).
      const st = await fs.promises.stat(p.at);
      const target = parentPath !== hostPath && ffi.fsidOf(parent.at).toString('hex') === key ? parent.at : st.isDirectory() ? p.at : parent.at;
      // fs.open (not fs.promises.open): a raw fd, which no wrapper closes behind our back.
      const fd = await openAsync(target, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NONBLOCK | ffi.O_CLOEXEC);
      if (this.mountFds.has(key)) ffi.closeFd(fd);
      else this.mountFds.set(key, fd);
    } finally {
      p.close();
      parent.close();
    }
  }

  /**
   * Directory paths resolved during the current read, by handle. Events of
   * one read(2) are handled in one synchronous pass, so a directory's path is
   * looked up once per read instead of once per event (open_by_handle_at,
   * readlink, close), and is as current as a per-event lookup would be.
   */
  private readonly batch = new Map<string, Buffer | undefined>();

  /** Forget the previous read's results: call before handling a new read. */
  newBatch(): void {
    this.batch.clear();
    this.last = undefined;
  }

  /** The last handle resolved in this read and its result (the decoder shares equal handles' bytes). */
  private last?: { handle: Buffer; fsid: Buffer; dir: Buffer | undefined };

  resolve(id: FileId): Buffer | undefined {
    const last = this.last;
    if (last && last.handle === id.fileHandle && last.fsid === id.fsid) return last.dir;
    const key = id.fsid.toString('latin1') + id.fileHandle.toString('latin1');
    let dir: Buffer | undefined;
    if (this.batch.has(key)) dir = this.batch.get(key);
    else this.batch.set(key, (dir = this.lookup(id)));
    this.last = { handle: id.fileHandle, fsid: id.fsid, dir };
    return dir;
  }

  private lookup(id: FileId): Buffer | undefined {
    const mountFd = this.mountFds.get(id.fsid.toString('hex'));
    if (mountFd === undefined) return undefined;
    let fd: number;
    try {
      fd = ffi.openByHandleAt(mountFd, id.fileHandle, ffi.O_PATH | ffi.O_CLOEXEC);
    } catch {
      return undefined; // ESTALE: the directory is gone; the caller reports the handle.
    }
    try {
      return fdPath(fd).path;
    } finally {
      ffi.closeFd(fd);
    }
  }

  close(): void {
    for (const fd of this.mountFds.values()) ffi.closeFd(fd);
    this.mountFds.clear();
  }
}
