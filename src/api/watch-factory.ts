// What a Watch stream needs from the layer below: a watch it can open, feed
// and close. The daemon passes the kernel's (kernel-watch-factory.ts); unit
// tests pass a fake, so the stream's state machine and the registry run
// without root, a kernel or the FFI.
import type { GroupClass, GroupSpec, MarkScope, MarkSpec, ReportMode } from '../kernel/group';
import type { AttachFrom, Attachment, SelectionSpec, WatchOptions, WatchSink, WatchStats } from '../watch/types';
import type { SubscribeRequest } from './convert';

/** One open watch: the parts of src/watch's Watch a stream uses. */
export interface WatchHandle {
  readonly id: string;
  /** The fanotify group's fd (what a restart hands to systemd's fd store); -1 for a watch without one. */
  readonly fd: number;
  readonly groupClass: GroupClass;
  readonly audit: boolean;
  readonly initFlags: number;
  readonly reportMode: ReportMode;
  readonly isClosed: boolean;
  /** The last sequence given to an event or notice; 0: none yet. */
  readonly lastSequence: number;
  /** The oldest sequence a stream attaching now could be sent (a named watch's journal); 0: none. */
  readonly firstSequence: number;
  /** Streams attached now. */
  readonly consumers: number;
  /** A named watch with no stream, waiting for one until its linger ends. */
  readonly lingering: boolean;
  /**
   * A stream attaches and is delivered to: an unnamed watch's only stream,
   * or one of a named watch's, from `from` on (Attach).
   */
  attach(sink: WatchSink, from?: AttachFrom): Attachment;
  /** Start reading without a stream: a named watch restored after a restart, lingering until one attaches. */
  start(): void;
  addMark(m: MarkSpec): Promise<void>;
  removeMark(m: MarkSpec): void;
  flushMarks(scope: MarkScope): void;
  /**
   * Swap include, exclude and rules at once (ReplaceRules): events read
   * from now on meet the new ones; events already pending keep their fate.
   * Throws what the client is told when the watch cannot take them.
   */
  replaceSelection(spec: SelectionSpec): void;
  /** Answer everything pending and close; idempotent. */
  close(reason: 'disconnect' | 'shutdown'): void;
  snapshot(): WatchStats;
}

/**
 * A watch made ready by the work that must be awaited (in dfid_name mode,
 * a mount fd for each marked path). Exactly one of open() and release() is
 * called, once.
 */
export interface PreparedWatch {
  /**
   * Open the group and place its marks, synchronously: nothing can happen
   * between the caller's last look at its state and the group existing.
   * Whether it returns or throws, the preparation is used up.
   */
  open(id: string, options: WatchOptions, onClose: (w: WatchHandle) => void): WatchHandle;
  /** The watch will not be opened: free what prepare() took. */
  release(): void;
}

export interface WatchFactory {
  /**
   * Refusals that need the filesystem but open nothing: a permission mark
   * on procfs or sysfs, a missing path there, a report mode the events
   * cannot have. Throws what the client is told.
   */
  check(spec: GroupSpec): void;
  /** The same for a mark added to a live watch of this class. */
  checkMark(groupClass: GroupClass, mark: MarkSpec): void;
  /** The awaited part of opening a watch; opens no group. */
  prepare(req: SubscribeRequest): Promise<PreparedWatch>;
}
