// The daemon-wide bound on named watches' replay journals (journal.ts).
// Each journal is bounded by --resume-buffer-bytes, but a daemon holding
// --max-watches of them could hold that times the number of watches; every
// journal draws its chunks from this one budget instead
// (--resume-buffer-total-bytes).
//
// A journal is charged when it opens a chunk (the chunk, plus the process
// messages its previous chunk took on), and credited when a chunk goes: the
// budget is touched once per chunk of about 170 events, never per event.
// When a charge takes the total past the budget, the journal holding the
// most gives up its oldest chunk, again until the total fits: the busiest
// watch pays for its own traffic, and may be the one asking. A journal
// always keeps its newest chunk (the one being written), so every watch
// keeps working: with more journals than the budget has chunks the total
// passes it, and each journal's newest chunk grows uncounted until the
// next opens (its process messages). A chunk dropped here goes exactly as one
// dropped at the journal's own bound: streams behind it are told the range.
//
// Choosing the journal scans them all: at most --max-watches, once per
// chunk opened under pressure (a heap would need updating per chunk of
// every journal, pressure or not).

/** A journal as the budget sees it. */
export interface BudgetMember {
  /** Bytes the budget has charged this journal and not been credited back. */
  readonly charged: number;
  /** It holds a chunk besides its newest. */
  readonly canGive: boolean;
  /** Whose journal it is, for the log and metrics. */
  readonly owner?: JournalOwner;
  /** Drop the oldest chunk (as at its own bound); the bytes it had been charged for. */
  giveOldest(): number;
}

export interface JournalOwner {
  watch: string;
  name: string;
}

/** A chunk the budget made a journal give up. */
export interface ForcedDrop {
  owner?: JournalOwner;
  bytes: number;
  /** The journal's bytes left. */
  left: number;
}

export class JournalBudget {
  private usedBytes = 0;
  private readonly members = new Set<BudgetMember>();
  /** Chunks the budget took, and their bytes, since the start. */
  forcedDrops = 0;
  forcedDropBytes = 0;

  constructor(
    readonly totalBytes: number,
    /** Told each chunk taken; it runs once per chunk, so a log behind it needs rate limiting by the caller. */
    private readonly onForcedDrop?: (drop: ForcedDrop) => void,
  ) {}

  /** Bytes charged to every journal now. */
  get used(): number {
    return this.usedBytes;
  }

  /** The journals charged now (for per-watch figures). */
  journals(): Iterable<BudgetMember> {
    return this.members;
  }

  /** A journal opened a chunk: `bytes` more, and room made if the total is past the budget. */
  charge(m: BudgetMember, bytes: number): void {
    this.members.add(m);
    this.usedBytes += bytes;
    while (this.usedBytes > this.totalBytes) {
      const victim = this.largest();
      if (!victim) return;
      const freed = victim.giveOldest();
      this.usedBytes -= freed;
      this.forcedDrops++;
      this.forcedDropBytes += freed;
      this.onForcedDrop?.({ owner: victim.owner, bytes: freed, left: victim.charged });
    }
  }

  /** A journal dropped a chunk at its own bound. */
  credit(bytes: number): void {
    this.usedBytes -= bytes;
  }

  /** A journal was cleared (its watch closed): everything it was charged comes back. */
  leave(m: BudgetMember): void {
    if (!this.members.delete(m)) return;
    this.usedBytes -= m.charged;
  }

  /** The journal charged the most that can give a chunk; ties go to the one charged first. */
  private largest(): BudgetMember | undefined {
    let best: BudgetMember | undefined;
    for (const m of this.members) if (m.canGive && (!best || m.charged > best.charged)) best = m;
    return best;
  }
}
