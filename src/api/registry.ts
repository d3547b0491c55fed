// The daemon's watches and every limit on them: --max-watches, per client
// identity (--max-watches-per-identity), and per policy rule (maxWatches).
//
// A Subscribe reserves its slot synchronously, before its first await, and
// the slot counts against every limit from then on: whatever resolves in
// between, concurrent Subscribes can never hold more slots than a limit
// allows. The slot is released when the Subscribe fails or the watch
// closes, and only then.
//
// A named watch (Subscribe.name) is also found here by its client identity
// and name, for Attach; it holds its slot while it lingers without a
// stream, so it counts against --max-watches until it closes. A client
// the policy lets attach to another client's watch (a rule's `attach`)
// adds a stream, not a watch: the watch counts against its creator's
// limits only, and attaching takes no slot.
import * as grpc from '@grpc/grpc-js';
import type { WatchStats } from '../watch/types';
import type { SubscribeRequest } from './convert';
import { ApiError } from './errors';
import type { MarkSpec } from '../kernel/group';
import type { Subscribe__Output } from './gen/fanotify/v1/Subscribe';
import { describeIdentity, identityKey, type ClientIdentity } from './identity';
import type { RuleMatch } from './policy';
import type { WatchHandle } from './watch-factory';

export interface RegistryLimits {
  maxWatches: number;
  maxWatchesPerIdentity: number;
}

/** A named watch as it was asked for: what it takes to open it again (after a daemon restart). */
export interface NamedWatch {
  readonly name: string;
  readonly identity: ClientIdentity;
  /** The Subscribe that opened it, as received. */
  readonly subscribe: Subscribe__Output;
  /** That Subscribe, parsed. */
  readonly request: SubscribeRequest;
  readonly lingerMs: number;
  readonly watch: WatchHandle;
  /**
   * Marks added since (AddMark), never taken out again: an attach grant
   * is checked against every mark the watch may hold, and over-counting a
   * removed one can only refuse, never widen.
   */
  readonly addedMarks: MarkSpec[];
  /**
   * False for a watch restored from a definition written before added
   * marks were recorded: what its group holds beyond its Subscribe is not
   * known, so no grant may let another client join it.
   */
  readonly marksKnown: boolean;
  /** The identities of the streams attached under a grant now, by stream: a mark added later must be one each may see. */
  readonly grantees: Map<object, ClientIdentity>;
}

/** Told when a named watch opens and when it finally closes (after its linger). */
export interface NamedWatchHooks {
  opened?(w: NamedWatch): void;
  closed?(w: NamedWatch): void;
  /** A mark was added to `w` (in addedMarks): resolves once it is recorded wherever the watch is kept, before the kernel has it. */
  marksAdded?(w: NamedWatch): Promise<void>;
}

/** One reserved place for a watch; holds the watch once it is open. */
export class WatchSlot {
  private opened?: WatchHandle;
  private released = false;

  /** Set with the watch, for a named one. */
  private named?: NamedWatch;

  constructor(
    readonly id: string,
    readonly identity: ClientIdentity,
    readonly identityKey: string,
    private readonly registry: WatchRegistry,
    /** Subscribe.name; undefined: unnamed. */
    readonly name?: string,
  ) {}

  get watch(): WatchHandle | undefined {
    return this.opened;
  }

  /** The named watch's definition, once it is open. */
  get definition(): NamedWatch | undefined {
    return this.named;
  }

  /** The watch opened for this slot; a named one with the Subscribe that asked for it. */
  activate(watch: WatchHandle, subscribe?: Subscribe__Output, request?: SubscribeRequest, lingerMs = 0, addedMarks: MarkSpec[] | 'unknown' = []): void {
    if (this.released) throw new Error(`slot ${this.id} was released before its watch opened`);
    this.opened = watch;
    if (this.name !== undefined && subscribe && request) {
      const known = addedMarks !== 'unknown';
      this.named = { name: this.name, identity: this.identity, subscribe, request, lingerMs, watch, addedMarks: known ? [...addedMarks] : [], marksKnown: known, grantees: new Map() };
      this.registry.namedOpened(this.named);
    }
  }

  /**
   * A mark about to be added to a named watch: counted at once (an Attach
   * under a grant meanwhile is checked against it too) and recorded where
   * the watch is kept, so a watch restored after a restart is checked
   * against it as well. Throws when it could not be recorded.
   */
  async addMark(mark: MarkSpec): Promise<void> {
    if (!this.named) return;
    this.named.addedMarks.push(mark);
    await this.registry.namedMarksAdded(this.named);
  }

  /** Free the slot (its watch closed, or none will open); idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.registry.remove(this);
  }
}

export class WatchRegistry {
  private readonly slots = new Set<WatchSlot>();
  /** Named watches' slots by identity key and name. */
  private readonly names = new Map<string, WatchSlot>();
  /** For the daemon's restart support: named watches to persist and forget. */
  hooks: NamedWatchHooks = {};
  private seq = 0;
  private closing = false;
  /** Statistics of closed watches, summed, so totals survive their watches. */
  private closedTotals?: WatchStats;

  constructor(
    private readonly limits: RegistryLimits,
    /** The policy rule each identity falls under now (a reload may change it). */
    private readonly ruleOf: (identity: ClientIdentity) => RuleMatch | undefined = () => undefined,
  ) {}

  /**
   * Take a slot for a watch, or throw what the client is told: UNAVAILABLE
   * once shutdown began, RESOURCE_EXHAUSTED at a limit. Synchronous, so no
   * other Subscribe can take the same place.
   */
  reserve(identity: ClientIdentity, rule?: RuleMatch, name?: string): WatchSlot {
    if (this.closing) throw new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down');
    if (this.slots.size >= this.limits.maxWatches) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `the daemon already serves ${this.slots.size} watches, its limit (--max-watches)`);
    }
    const key = identityKey(identity);
    if (name !== undefined && this.names.has(nameKey(key, name))) {
      throw new ApiError(grpc.status.ALREADY_EXISTS, `client ${describeIdentity(identity)} already has a watch named "${name}"; send Attach with that name to join it, or choose another name`);
    }
    const mine = this.count((s) => s.identityKey === key);
    if (mine >= this.limits.maxWatchesPerIdentity) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `client ${describeIdentity(identity)} already holds ${mine} watches, the limit per client (--max-watches-per-identity)`);
    }
    if (rule && this.count((s) => this.ruleOf(s.identity)?.rule === rule.rule) >= rule.rule.maxWatches) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `${rule.name} allows at most ${rule.rule.maxWatches} concurrent watches`);
    }
    const slot = new WatchSlot(`w${++this.seq}`, identity, key, this, name);
    this.slots.add(slot);
    if (name !== undefined) this.names.set(nameKey(key, name), slot);
    return slot;
  }

  /**
   * The named watch an Attach asks for: the client's own; else another
   * client's of that name that `grant` lets it join (grant throws
   * PERMISSION_DENIED when the policy does not); else NOT_FOUND.
   * Names are unique per client only: when grants let this client join
   * the watches of that name of several others, which one is meant cannot
   * be told, and the Attach is refused.
   */
  findNamed(identity: ClientIdentity, name: string, grant: (slot: WatchSlot, def: NamedWatch) => void): WatchSlot {
    const slot = this.names.get(nameKey(identityKey(identity), name));
    if (slot) return usable(slot, name);
    const others = [...this.names.values()].filter((s) => s.name === name);
    if (others.length === 0) {
      throw new ApiError(grpc.status.NOT_FOUND, `no watch named "${name}" is open or lingering for client ${describeIdentity(identity)}; send Subscribe with that name to open one`);
    }
    const granted: WatchSlot[] = [];
    let refusal: unknown;
    for (const s of others) {
      // Still opening, or closing: its marks are not settled, so it is not offered.
      if (!s.definition || s.watch?.isClosed) continue;
      try {
        grant(s, s.definition);
        granted.push(s);
      } catch (err) {
        refusal ??= err;
      }
    }
    if (granted.length === 1) return granted[0];
    if (granted.length > 1) {
      throw new ApiError(
        grpc.status.FAILED_PRECONDITION,
        `${granted.length} other clients have a watch named "${name}" that client ${describeIdentity(identity)} may attach to; names are unique per client only, so the creators must name them apart`,
      );
    }
    if (refusal) throw refusal;
    if (others.some((s) => !s.definition)) throw new ApiError(grpc.status.UNAVAILABLE, `the watch named "${name}" is still opening; attach once its Subscribed was sent`);
    throw new ApiError(grpc.status.NOT_FOUND, `no watch named "${name}" is open (it closed)`);
  }

  /** Named watches, open or lingering. */
  get namedWatches(): number {
    return this.names.size;
  }

  /** Every named watch open now, with its definition. */
  named(): NamedWatch[] {
    const out: NamedWatch[] = [];
    for (const s of this.names.values()) if (s.definition) out.push(s.definition);
    return out;
  }

  /** Close every watch still open (the lingering ones, with no stream to end them). */
  closeAll(reason: 'disconnect' | 'shutdown'): void {
    for (const s of [...this.slots]) s.watch?.close(reason);
  }

  /** Called by WatchSlot.activate. */
  async namedMarksAdded(w: NamedWatch): Promise<void> {
    await this.hooks.marksAdded?.(w);
  }

  namedOpened(w: NamedWatch): void {
    this.hooks.opened?.(w);
  }

  /** Refuse every later reservation: the daemon is shutting down. */
  shutdown(): void {
    this.closing = true;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Slots held: open watches and Subscribes still opening theirs. */
  get reserved(): number {
    return this.slots.size;
  }

  /** Watches open now. */
  get activeWatches(): number {
    return this.count((s) => s.watch !== undefined);
  }

  /** Statistics of the open watches. */
  liveStats(): WatchStats[] {
    const out: WatchStats[] = [];
    for (const s of this.slots) if (s.watch) out.push(s.watch.snapshot());
    return out;
  }

  /** Statistics of every watch the daemon has served, open and closed. */
  totals(): WatchStats[] {
    return this.closedTotals ? [...this.liveStats(), this.closedTotals] : this.liveStats();
  }

  /** Called by WatchSlot.release. */
  remove(slot: WatchSlot): void {
    if (!this.slots.delete(slot)) return;
    if (slot.name !== undefined) this.names.delete(nameKey(slot.identityKey, slot.name));
    if (slot.watch) this.closedTotals = addStats(this.closedTotals, slot.watch.snapshot());
    if (slot.definition) this.hooks.closed?.(slot.definition);
  }

  private count(pred: (s: WatchSlot) => boolean): number {
    let n = 0;
    for (const s of this.slots) if (pred(s)) n++;
    return n;
  }
}

/** A client's own named watch, if an Attach can join it now. */
function usable(slot: WatchSlot, name: string): WatchSlot {
  if (!slot.watch) throw new ApiError(grpc.status.UNAVAILABLE, `the watch named "${name}" is still opening; attach once its Subscribed was sent`);
  if (slot.watch.isClosed) throw new ApiError(grpc.status.NOT_FOUND, `no watch named "${name}" is open (it closed)`);
  return slot;
}

function nameKey(identityKey: string, name: string): string {
  return `${identityKey}\n${name}`;
}

function addStats(a: WatchStats | undefined, b: WatchStats): WatchStats {
  if (!a) return { ...b, decisions: { ...b.decisions }, pending: 0, queued: 0, consumers: 0 };
  const out = { ...a, decisions: { ...a.decisions } };
  for (const k of Object.keys(b) as Array<keyof WatchStats>) {
    if (k === 'decisions') for (const d of Object.keys(b.decisions) as Array<keyof WatchStats['decisions']>) out.decisions[d] += b.decisions[d];
    else if (k !== 'pending' && k !== 'queued' && k !== 'consumers') out[k] += b[k];
  }
  return out;
}
