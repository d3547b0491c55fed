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
import * as K from '../kernel/constants';
import * as ffi from '../kernel/ffi';
import { groupInfo } from '../kernel/group';
import type { KernelFeatures } from '../kernel/probe';
import type { EventPump } from '../kernel/pump';
import { responseWord, sweepPending } from '../kernel/response';
import { HandleResolver } from '../host/handle-resolver';
import { Watch } from '../watch/watch';
import type { WatchSink } from '../watch/types';
import { identityFields, identityKey, type ClientIdentity } from '../api/identity';
import type { SubscribeRequest } from '../api/convert';
import type { PreparedWatch, WatchFactory, WatchHandle } from '../api/watch-factory';
import { watchOptions, type ServiceLimits } from '../api/watch-options';
import type { ListenFd } from './listen-fds';
import type { SdNotify } from './sd-notify';
import { DEFINITION_VERSION, storeName, type WatchDefinition, type WatchStore } from './watch-store';

/**
 * The soft RLIMIT_NOFILE the daemon keeps while it uses the store: the
 * bound of the restore sweep, which costs 2.3-6.4 us per number here
 * (75-420 ms per watch at this bound, 2.4-4.9 s at 1,048,576), and
 * still room for 32,000 pending events with their pidfds.
 */
export const FD_LIMIT_WITH_STORE = 65_536;
/**
 * Sequence numbers reserved ahead in a definition: the file is rewritten
 * once per this many, and the next process starts past the block, so no
 * number is given out twice.
 */
export const SEQUENCE_BLOCK = 65_536n;

interface Kept {
  def: WatchDefinition;
  watch: Watch;
  handedOff: boolean;
  /** Writes and removals of the definition, in order. */
  io: Promise<void>;
  linger?: NodeJS.Timeout;
}

export interface FdStoreParts {
  sd: SdNotify;
  store: WatchStore;
  log: Logger;
  kernel: KernelFeatures;
  pump: EventPump;
  limits: ServiceLimits;
}

/** Sink of a restored watch until a client attaches: permission events wait for their deadline, then the timeout decision. */
const LINGER_SINK: WatchSink = {
  encode: () => ({ bytes: new Uint8Array(0) }),
  sendEvents: () => true,
  sendOverflow: () => true,
};

export class FdStore {
  private readonly kept = new Map<string, Kept>();
  private restoredSeq = 0;

  constructor(private readonly p: FdStoreParts) {}

  /** Watches whose groups are in the store now. */
  get size(): number {
    return this.kept.size;
  }

  /** The factory the service uses: named watches that linger are kept in the store once open. */
  wrap(factory: WatchFactory): WatchFactory {
    return {
      check: (spec) => factory.check(spec),
      checkMark: (groupClass, mark) => factory.checkMark(groupClass, mark),
      prepare: async (req, identity) => {
        const prepared = await factory.prepare(req, identity);
        return req.name && req.lingerMs ? this.keeping(prepared, req, identity) : prepared;
      },
    };
  }

  private keeping(prepared: PreparedWatch, req: SubscribeRequest, identity?: ClientIdentity): PreparedWatch {
    return {
      open: (id, options, onClose) => {
        const name = storeName(req.name!, identity ? identityKey(identity) : '');
        const w = prepared.open(id, options, (h) => {
          this.closed(name, h);
          onClose(h);
        });
        if (!(w instanceof Watch)) return w;
        if (this.kept.has(name)) {
          this.p.log.warn('a watch of this name is kept already; this one is not', { watch: id, name: req.name });
          return w;
        }
        this.keep(this.definition(name, req, identity, w), w);
        return w;
      },
      release: () => prepared.release(),
    };
  }

  private definition(fdName: string, req: SubscribeRequest, identity: ClientIdentity | undefined, w: Watch, nextSequence = 1n): WatchDefinition {
    return {
      version: DEFINITION_VERSION,
      fdName,
      name: req.name ?? fdName,
      identity,
      lingerMs: req.lingerMs ?? 0,
      request: req,
      groupFlags: w.initFlags,
      nextSequence: String(nextSequence + SEQUENCE_BLOCK),
      fdLimit: ffi.fileLimit().soft,
      pid: process.pid,
    };
  }

  /** The definition first, then the fd: a stored fd without a definition would be closed at the next start. */
  private keep(def: WatchDefinition, watch: Watch, storeFd = true): void {
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

  /** A kept watch closed: unless handed off, its fd leaves the store and its definition goes. */
  private closed(name: string, h: WatchHandle): void {
    const k = this.kept.get(name);
    if (!k || k.watch !== h) return;
    this.kept.delete(name);
    clearTimeout(k.linger);
    if (k.handedOff) return;
    this.p.sd.remove(name);
    k.io = k.io.then(() => this.p.store.remove(name)).catch((err: unknown) => this.p.log.warn('removing a watch definition failed', { name, error: err }));
  }

  /**
   * The daemon is stopping and the store keeps the groups: each kept
   * watch lets go of its group without answering or reading anything, so
   * what it had read waits for the next process's sweep (or, on a stop,
   * for systemd closing the store, when the kernel allows it). Returns
   * once every definition is written.
   */
  async handOff(): Promise<number> {
    const all = [...this.kept.values()];
    for (const k of all) {
      k.handedOff = true;
      clearTimeout(k.linger);
      k.watch.close('handoff');
    }
    await Promise.all(all.map((k) => k.io));
    return all.length;
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
        log.error('a stored watch could not be restored; its group is closed', { name: entry.fdName, error: err });
        this.drop(f);
        await this.p.store.remove(entry.fdName);
      }
    }
    for (const f of byName.values()) {
      log.warn('an fd in the store has no watch definition; closed', { name: f.name, fd: f.fd });
      this.drop(f);
    }
    return restored;
  }

  private drop(f: ListenFd): void {
    ffi.closeFd(f.fd);
    this.p.sd.remove(f.name);
  }

  private async restoreOne(def: WatchDefinition, fd: number): Promise<void> {
    const info = groupInfo(fd);
    if (!info) throw new Error(`fd ${fd} is not a fanotify group`);
    if (info.flags !== def.groupFlags) throw new Error(`the group's flags are ${info.flags.toString(16)}, its definition says ${def.groupFlags.toString(16)}`);
    const id = `r${++this.restoredSeq}`;
    const timeoutResponse = responseWord(def.request.timeoutDecision === 'allow');
    const started = process.hrtime.bigint();
    const swept = def.request.group.groupClass === 'notif' ? { answered: 0, errors: 0 } : sweepPending(fd, def.fdLimit, timeoutResponse);
    const sweepMs = Number(process.hrtime.bigint() - started) / 1e6;
    const req = def.request;
    const resolver = (info.flags & K.FAN_REPORT_DFID_NAME) === K.FAN_REPORT_DFID_NAME ? await HandleResolver.open(req.group.marks.map((m) => m.path)) : undefined;
    const who = def.identity ? identityFields(def.identity) : {};
    const options = watchOptions(id, req, this.p.limits, {
      who,
      onVerdictLatency: () => undefined,
      onFailed: (err) => this.p.log.error('a restored watch failed', { watch: id, error: err }),
    });
    const features = { reportPidfd: (info.flags & K.FAN_REPORT_PIDFD) !== 0, evictable: this.p.kernel.markFlags.get(K.FAN_MARK_EVICTABLE) === true };
    const watch = new Watch(id, { ...req.group, adoptFd: fd }, features, options, this.p.pump, this.p.log, resolver, (h) => this.closed(def.fdName, h));
    // The group is in the store already (systemd keeps its copy): only the definition is written again.
    this.keep({ ...def, pid: process.pid, fdLimit: ffi.fileLimit().soft, nextSequence: String(BigInt(def.nextSequence) + SEQUENCE_BLOCK) }, watch, false);
    watch.attach(LINGER_SINK);
    const k = this.kept.get(def.fdName)!;
    k.linger = setTimeout(() => watch.close('disconnect'), def.lingerMs);
    k.linger.unref();
    this.p.log.info('watch restored', { watch: id, name: def.name, ...who, class: req.group.groupClass, pending_answered: swept.answered, sweep_errors: swept.errors, sweep_ms: Math.round(sweepMs * 10) / 10, linger_ms: def.lingerMs, previous_pid: def.pid });
  }
}
