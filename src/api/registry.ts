// The daemon's watches and every limit on them: --max-watches, per client
// identity (--max-watches-per-identity), and per policy rule (maxWatches).
//
// A Subscribe reserves its slot synchronously, before its first await, and
// the slot counts against every limit from then on: whatever resolves in
// between, concurrent Subscribes can never hold more slots than a limit
// allows. The slot is released when the Subscribe fails or the watch
// closes, and only then.
import * as grpc from '@grpc/grpc-js';
import type { WatchStats } from '../watch/types';
import { ApiError } from './errors';
import { describeIdentity, identityKey, type ClientIdentity } from './identity';
import type { RuleMatch } from './policy';
import type { WatchHandle } from './watch-factory';

export interface RegistryLimits {
  maxWatches: number;
  maxWatchesPerIdentity: number;
}

/** One reserved place for a watch; holds the watch once it is open. */
export class WatchSlot {
  private opened?: WatchHandle;
  private released = false;

  constructor(
    readonly id: string,
    readonly identity: ClientIdentity,
    readonly identityKey: string,
    private readonly registry: WatchRegistry,
  ) {}

  get watch(): WatchHandle | undefined {
    return this.opened;
  }

  /** The watch opened for this slot. */
  activate(watch: WatchHandle): void {
    if (this.released) throw new Error(`slot ${this.id} was released before its watch opened`);
    this.opened = watch;
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
  reserve(identity: ClientIdentity, rule?: RuleMatch): WatchSlot {
    if (this.closing) throw new ApiError(grpc.status.UNAVAILABLE, 'the daemon is shutting down');
    if (this.slots.size >= this.limits.maxWatches) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `the daemon already serves ${this.slots.size} watches, its limit (--max-watches)`);
    }
    const key = identityKey(identity);
    const mine = this.count((s) => s.identityKey === key);
    if (mine >= this.limits.maxWatchesPerIdentity) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `client ${describeIdentity(identity)} already holds ${mine} watches, the limit per client (--max-watches-per-identity)`);
    }
    if (rule && this.count((s) => this.ruleOf(s.identity)?.rule === rule.rule) >= rule.rule.maxWatches) {
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `${rule.name} allows at most ${rule.rule.maxWatches} concurrent watches`);
    }
    const slot = new WatchSlot(`w${++this.seq}`, identity, key, this);
    this.slots.add(slot);
    return slot;
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
    if (slot.watch) this.closedTotals = addStats(this.closedTotals, slot.watch.snapshot());
  }

  private count(pred: (s: WatchSlot) => boolean): number {
    let n = 0;
    for (const s of this.slots) if (pred(s)) n++;
    return n;
  }
}

function addStats(a: WatchStats | undefined, b: WatchStats): WatchStats {
  if (!a) return { ...b, decisions: { ...b.decisions }, pending: 0, queued: 0 };
  const out = { ...a, decisions: { ...a.decisions } };
  for (const k of Object.keys(b) as Array<keyof WatchStats>) {
    if (k === 'decisions') for (const d of Object.keys(b.decisions) as Array<keyof WatchStats['decisions']>) out.decisions[d] += b.decisions[d];
    else if (k !== 'pending' && k !== 'queued') out[k] += b[k];
  }
  return out;
}
