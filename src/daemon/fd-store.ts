// Watches that outlive the daemon's process, through systemd's file
// descriptor store: a named watch that lingers hands its group fd to the
// store (FDSTORE=1, FDNAME=) and its definition to the state directory;
// the next process gets the fds back ($LISTEN_FDS) and rebuilds each watch
// around its group, which never closed, so the kernel never answered its
// held opens with ALLOW (fanotify_release does that only when the last
// reference to the group goes).
//
// Taking a group back, the events the old process had read and not
// answered are still pending in the kernel, known only by the event fd
// numbers the old process was given. They are all answered with the
// watch's timeout decision (sweepPending) before this process reads the
// group and is given numbers of its own, which could otherwise name an
// old event. The sweep tries every number below the old process's
// RLIMIT_NOFILE, which the kernel never exceeded: docs/architecture.md
// has the measurements behind choosing this over a journal of numbers.
import type { Logger } from '../common/log';
import * as ffi from '../kernel/ffi';
import { groupInfo } from '../kernel/group';
import { answerQueued, responseWord, sweepPending } from '../kernel/response';
import { Watch } from '../watch/watch';
import { identityKey } from '../api/identity';
import type { NamedWatch, NamedWatchHooks } from '../api/registry';
import type { StoredWatch } from '../api/service';
import type { WatchHandle } from '../api/watch-factory';
import type { ListenFd } from './listen-fds';
import type { SdNotify } from './sd-notify';
import { DEFINITION_VERSION, restoredSequence, storeName, type WatchDefinition, type WatchStore } from './watch-store';

/**
 * The soft RLIMIT_NOFILE the daemon keeps while it uses the store: the
 * bound of the restore sweep, which costs 2.3-6.4 us per number here
 * (75-420 ms per watch at this bound, 2.4-4.9 s at 1,048,576), and still
 * room for 32,000 pending events with their pidfds.
 */
export const FD_LIMIT_WITH_STORE = 65_536;
/**
 * Sequence numbers reserved ahead in a definition: the next process starts
 * past them. Rewritten when a watch has used half of its block, checked
 * every SEQUENCE_CHECK_MS: 8 million numbers of headroom, 8 s at a million
 * events a second. Only after a crash does the next process start past
 * the block; a handoff writes the exact next number (writeExactSequence).
 */
export const SEQUENCE_BLOCK = 16_777_216;
const SEQUENCE_CHECK_MS = 1_000;
/** Start time asked of systemd for each watch restored (EXTEND_TIMEOUT_USEC). */
const RESTORE_TIMEOUT_USEC = 30_000_000;

interface Kept {
  def: WatchDefinition;
  watch: Watch;
  handedOff: boolean;
  /** Writes and removals of the definition, in order. */
  io: Promise<void>;
}

export interface FdStoreParts {
  sd: SdNotify;
  store: WatchStore;
  log: Logger;
  /** Opens a named watch again around a group fd (FanotifyService.restore). */
  restoreWatch(stored: StoredWatch): Promise<WatchHandle>;
}

export class FdStore {
  private readonly kept = new Map<string, Kept>();
  /** The FDNAME being restored: its fd is in the store already. */
  private restoring?: string;
  private readonly sequenceTimer: NodeJS.Timeout;

  constructor(private readonly p: FdStoreParts) {
    this.sequenceTimer = setInterval(() => this.reserveSequences(), SEQUENCE_CHECK_MS);
    this.sequenceTimer.unref();
  }

  /** Watches whose groups are in the store now. */
  get size(): number {
    return this.kept.size;
  }

  /** For the registry: named watches that linger are kept in the store once open, and leave it when they close. */
  hooks(): NamedWatchHooks {
    return { opened: (w) => this.opened(w), closed: (w) => this.closed(w), marksAdded: (w) => this.marksAdded(w) };
  }

  private opened(w: NamedWatch): void {
    if (!(w.watch instanceof Watch) || w.lingerMs <= 0) return;
    const fdName = storeName(w.name, identityKey(w.identity));
    if (this.kept.has(fdName)) return;
    const restored = this.restoring === fdName;
    const def: WatchDefinition = {
      version: DEFINITION_VERSION,
      fdName,
      name: w.name,
      identity: w.identity,
      lingerMs: w.lingerMs,
      subscribe: w.subscribe,
      groupClass: w.request.group.groupClass,
      timeoutDecision: w.request.timeoutDecision,
      groupFlags: w.watch.initFlags,
      nextSequence: String(w.watch.lastSequence + 1 + SEQUENCE_BLOCK),
      fdLimit: ffi.fileLimit().soft,
      pid: process.pid,
      // Always written, empty too: a definition without the field is one whose added marks are unknown.
      ...(w.marksKnown ? { addedMarks: [...w.addedMarks] } : {}),
    };
    this.keep(def, w.watch, !restored);
  }

  /** The definition first, then the fd: a stored fd without a definition would be closed at the next start. */
  private keep(def: WatchDefinition, watch: Watch, storeFd: boolean): void {
    const k: Kept = { def, watch, handedOff: false, io: Promise.resolve() };
    this.kept.set(def.fdName, k);
    k.io = this.p.store.write(def).then(
      () => {
        if (storeFd && this.kept.get(def.fdName) === k && !watch.isClosed && !this.p.sd.store(def.fdName, watch.fd)) this.kept.delete(def.fdName);
      },
      (err: unknown) => {
        this.p.log.error('writing a watch definition failed; the watch will not survive a restart', { watch: watch.id, error: err });
        if (this.kept.get(def.fdName) === k) this.kept.delete(def.fdName);
      },
    );
  }

  /**
   * A mark added to a kept watch: its definition rewritten with it before
   * the kernel has it, so a restored watch knows every mark its group may
   * hold. A failed write refuses the AddMark (the caller's await throws).
   */
  private async marksAdded(w: NamedWatch): Promise<void> {
    const k = this.kept.get(storeName(w.name, identityKey(w.identity)));
    // A restored watch whose added marks were never recorded stays unknown: listing only the new ones would pass for all.
    if (!k || k.watch !== w.watch || !w.marksKnown) return;
    const def = (k.def = { ...k.def, addedMarks: [...w.addedMarks] });
    const written = k.io.then(() => this.p.store.write(def));
    k.io = written.catch((err: unknown) => this.p.log.warn('writing an added mark to the watch definition failed; the mark was refused', { watch: k.watch.id, error: err }));
    await written;
  }

  /** A kept watch closed: unless handed off, its fd leaves the store and its definition goes. */
  private closed(w: NamedWatch): void {
    const name = storeName(w.name, identityKey(w.identity));
    const k = this.kept.get(name);
    if (!k || k.watch !== w.watch) return;
    this.kept.delete(name);
    if (k.handedOff) return;
    this.p.sd.remove(name);
    k.io = k.io.then(() => this.p.store.remove(name)).catch((err: unknown) => this.p.log.warn('removing a watch definition failed', { name, error: err }));
  }

  /** A watch past half of its reserved block reserves the next, written before it can be used. */
  private reserveSequences(): void {
    for (const k of this.kept.values()) {
      const last = k.watch.lastSequence;
      if (last + SEQUENCE_BLOCK / 2 < Number(k.def.nextSequence) || k.watch.isClosed) continue;
      k.def = { ...k.def, nextSequence: String(last + 1 + SEQUENCE_BLOCK) };
      const def = k.def;
      k.io = k.io.then(() => this.p.store.write(def)).catch((err: unknown) => this.p.log.error('writing a watch definition failed', { watch: k.watch.id, error: err }));
    }
  }

  /**
   * The daemon is stopping and the store keeps the groups: each kept
   * watch lets go of its group without answering or reading anything, so
   * what it had read waits for the next process's sweep (or, on a stop,
   * for systemd closing the store, when the kernel allows it). Resolves
   * once every definition is written.
   */
  async handOff(): Promise<number> {
    clearInterval(this.sequenceTimer);
    const all = [...this.kept.values()];
    for (const k of all) {
      k.handedOff = true;
      k.watch.close('handoff');
      this.writeExactSequence(k);
    }
    await Promise.all(all.map((k) => k.io));
    return all.length;
  }

  /**
   * A watch handed off has sealed its sequence (it can give no number
   * past it now): the next process starts there, not past the block.
   * Written after the seal, never before, so a crash at any point leaves
   * either this or the block in the file, and neither names a number
   * given already; a failed write leaves the block.
   */
  private writeExactSequence(k: Kept): void {
    const next = k.watch.handedOffSequence;
    if (next === undefined) return;
    const def = (k.def = { ...k.def, exactNextSequence: String(next) });
    k.io = k.io
      .then(() => this.p.store.write(def))
      .catch((err: unknown) => this.p.log.warn('writing the exact next sequence failed; the restored watch numbers past its reserved block', { watch: k.watch.id, error: err }));
  }

  /**
   * Take back the groups of the previous process: each fd with a
   * definition becomes a lingering watch again, its read-and-unanswered
   * events answered with its timeout decision before anything is read;
   * an fd without one is closed and dropped from the store, a definition
   * without an fd deleted, a bad definition fails its watch alone.
   */
  async restore(fds: ListenFd[]): Promise<number> {
    const log = this.p.log;
    const defs = await this.p.store.readAll();
    const byName = new Map(fds.map((f) => [f.name, f]));
    let restored = 0;
    for (const entry of defs) {
      const f = byName.get(entry.fdName);
      byName.delete(entry.fdName);
      if (!f || !entry.def) {
        log.warn(f ? 'a stored watch has a bad definition; its group is closed' : 'a watch definition has no fd in the store; deleted', { name: entry.fdName, error: entry.error });
        if (f) this.drop(f);
        await this.p.store.remove(entry.fdName);
        continue;
      }
      try {
        await this.restoreOne(entry.def, f.fd);
        restored++;
      } catch (err) {
        // Its held events were answered by the sweep; what waits in its
        // queue gets the watch's decision too, not the kernel's ALLOW at close.
        const def = entry.def;
        const queued = def.groupClass !== 'notif' && groupInfo(f.fd) ? answerQueued(f.fd, responseWord(def.timeoutDecision === 'allow')) : 0;
        log.error('a stored watch could not be restored; its group is closed', { name: entry.fdName, queued_answered: queued, error: err });
        this.drop(f);
        await this.p.store.remove(entry.fdName);
      } finally {
        this.restoring = undefined;
      }
    }
    for (const f of byName.values()) {
      log.warn('an fd in the store has no watch definition; closed', { name: f.name, fd: f.fd });
      this.drop(f);
    }
    return restored;
  }

  private drop(f: ListenFd): void {
    // A restore that failed part-way may have closed it already; its number could be another's by now.
    if (groupInfo(f.fd)) ffi.closeFd(f.fd);
    this.p.sd.remove(f.name);
  }

  private async restoreOne(def: WatchDefinition, fd: number): Promise<void> {
    const info = groupInfo(fd);
    if (!info) throw new Error(`fd ${fd} is not a fanotify group`);
    if (info.flags !== def.groupFlags) throw new Error(`the group's flags are ${info.flags.toString(16)}, its definition says ${def.groupFlags.toString(16)}`);
    // Each watch may take a while (the sweep, on a busy host): systemd's start timeout is extended per watch.
    this.p.sd.send({ EXTEND_TIMEOUT_USEC: RESTORE_TIMEOUT_USEC, STATUS: `restoring watch ${def.name}` });
    const started = process.hrtime.bigint();
    const swept = def.groupClass === 'notif' ? { answered: 0, errors: 0 } : sweepPending(fd, def.fdLimit, responseWord(def.timeoutDecision === 'allow'));
    const sweepMs = Number(process.hrtime.bigint() - started) / 1e6;
    const { first: firstSequence, exact } = restoredSequence(def);
    // The file names firstSequence until it is rewritten: the block is
    // reserved before the watch reads anything, or a crash before the
    // write lands would have the next process give this one's numbers again.
    await this.p.store.write({ ...def, nextSequence: String(firstSequence + SEQUENCE_BLOCK), exactNextSequence: undefined, fdLimit: ffi.fileLimit().soft, pid: process.pid });
    this.restoring = def.fdName;
    const watch = await this.p.restoreWatch({ name: def.name, identity: def.identity, subscribe: def.subscribe, fd, firstSequence, addedMarks: def.addedMarks ?? 'unknown' });
    this.p.log.info('watch taken back from the fd store', {
      watch: watch.id,
      name: def.name,
      class: def.groupClass,
      pending_answered: swept.answered,
      sweep_errors: swept.errors,
      sweep_ms: Math.round(sweepMs * 10) / 10,
      first_sequence: firstSequence,
      sequence_exact: exact,
      linger_ms: def.lingerMs,
      previous_pid: def.pid,
    });
  }
}
