// Directories moved into a subtree. A directory outside a subtree gets an
// ignore mark once something in it is touched (subtree.ts); moved into the
// subtree, it would keep the mark, and the kernel would never ask about
// its files there: with a DENY policy, a bypass. So a notification group
// of its own sees every directory move on the subtrees' filesystems, and a
// move whose destination is in a subtree (or above its root) flushes the
// watch's ignore marks. FAN_REPORT_DFID_NAME gives the destination as its
// parent's handle and the new name; a FILESYSTEM mark, as the kernel
// refuses rename events on mount marks (EINVAL, measured on 6.18).
import type { RateLimitedLog } from '../common/rate-limited-log';
import * as K from '../kernel/constants';
import { decodeEvents, FidInterner, type RawEvent } from '../kernel/decoder';
import * as ffi from '../kernel/ffi';
import { withMarkPath } from '../kernel/group';
import type { EventPump, PumpClient } from '../kernel/pump';
import { joinEntry } from '../host/event';
import { HandleResolver } from '../host/handle-resolver';

export interface RenameWatchParts {
  pump: EventPump;
  log: RateLimitedLog;
  /** Whether a destination path is in a subtree or above a subtree's root. */
  related(path: Buffer): boolean;
  /** After each read: the directory moves it held, and whether one may have brought an ignore mark into a subtree. */
  onMoves(moves: number, moveIn: boolean): void;
  /** Reading the group failed: moves are no longer seen. */
  onFailed(err: Error): void;
}

const NO_NAME = Buffer.alloc(0);

export class RenameWatch implements PumpClient {
  private readonly fd: number;
  private readonly interner = new FidInterner();
  private resolver?: HandleResolver;
  private readonly opening: Promise<void>;
  private closed = false;

  /** Places the group's marks on the filesystems of paths; throws when the kernel refuses. */
  constructor(
    paths: string[],
    private readonly p: RenameWatchParts,
  ) {
    this.fd = ffi.fanotifyInit(K.FAN_CLASS_NOTIF | K.FAN_CLOEXEC | K.FAN_NONBLOCK | K.FAN_REPORT_DFID_NAME, ffi.O_RDONLY | ffi.O_CLOEXEC);
    try {
      for (const path of paths) this.mark(path);
      // Never resting (no rest function): the time from a move to the flush is a window.
      p.pump.add(this.fd, this);
    } catch (err) {
      ffi.closeFd(this.fd);
      throw err;
    }
    this.opening = this.openResolver(paths);
  }

  /** One more subtree: its filesystem's moves too. */
  async add(path: string): Promise<void> {
    if (this.closed) return;
    this.mark(path);
    await this.opening;
    await this.resolver?.add(path);
  }

  private mark(path: string): void {
    // Files need no watching: their ignore marks are on directories, which a moved file leaves behind.
    withMarkPath(path, 0, (at) => ffi.fanotifyMark(this.fd, K.FAN_MARK_ADD | K.FAN_MARK_FILESYSTEM, K.FAN_MOVED_TO | K.FAN_ONDIR, at));
  }

  /**
   * A destination is named by its parent's handle, which needs an fd on
   * that filesystem to open: a real open, so on the thread pool (the
   * watch's own permission mark may cover it: the main thread must stay
   * free to answer it). Until it is there, every directory move flushes.
   */
  private async openResolver(paths: string[]): Promise<void> {
    try {
      const r = await HandleResolver.open(paths);
      if (this.closed) r.close();
      else this.resolver = r;
    } catch (err) {
      this.p.log.warn('subtree: cannot resolve moved directories; every directory move flushes the ignore marks', { error: err });
    }
  }

  onData(buf: Buffer, length: number): void {
    const { events, error } = decodeEvents(buf, length, false, this.interner);
    // A record lost (an undecodable read, a kernel overflow) may have been a move in.
    let moveIn = error !== undefined;
    let moves = 0;
    this.resolver?.newBatch();
    for (const ev of events) {
      if (ev.mask & K.FAN_Q_OVERFLOW) moveIn = true;
      else if (ev.mask & K.FAN_ONDIR) {
        moves++;
        if (!moveIn) moveIn = this.intoSubtree(ev);
      }
    }
    if (moves || moveIn) this.p.onMoves(moves, moveIn);
  }

  private intoSubtree(ev: RawEvent): boolean {
    const dir = ev.dfid && this.resolver?.resolve(ev.dfid);
    // Gone since, or not resolvable (yet): a flush costs questions again, a miss costs a bypass.
    if (!dir) return true;
    return this.p.related(joinEntry(dir, ev.dfid!.name ?? NO_NAME));
  }

  onDrained(): void {}

  onError(err: Error): void {
    this.close();
    this.p.onFailed(err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.p.pump.remove(this.fd);
    ffi.closeFd(this.fd);
    this.resolver?.close();
  }
}
