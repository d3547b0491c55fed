// A watch's marks as its client asked for them, and as the kernel holds
// them: each asked mask less the event types the watch's filters leave out
// whatever else an event is (selection.ts filteredOutTypes). The kernel
// then never reports those events, so they cost the daemon nothing; the
// client, GetInfo and the audit still see the marks as asked. ReplaceRules
// re-marks when the types left out change.
//
// The kernel holds one mark per object and scope (and kind: an ignore mark
// is another), ORing the masks of every FAN_MARK_ADD into it; this keeps
// the same sum per such key.
import * as K from '../kernel/constants';
import { addMark, removeMark, type MarkScope, type MarkSpec } from '../kernel/group';

/** The flags a mark's mask carries besides its event types. */
const FLAG_BITS = K.FAN_ONDIR | K.FAN_EVENT_ON_CHILD;
/** The mark flags that say which kernel mark a request is about (as removeMark reads them). */
const SELECT_FLAGS = K.FAN_MARK_DONT_FOLLOW | K.FAN_MARK_ONLYDIR | K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_MASK;
const IGNORE_FLAGS = K.FAN_MARK_IGNORE | K.FAN_MARK_IGNORED_MASK;

interface Held {
  /** The mark with `mask` the sum of what was asked and not removed. */
  mark: MarkSpec;
  /** What the kernel was given of it (0: no kernel mark). */
  placed: number;
}

const keyOf = (m: MarkSpec) => `${m.scope}\0${m.flags & SELECT_FLAGS}\0${m.path}`;

export class PlacedMarks {
  private readonly held = new Map<string, Held>();
  private fd = -1;

  /** `out`: the event types left out of the kernel's marks (0 for a watch whose marks must stay as asked). */
  constructor(private out: number) {}

  /**
   * What the kernel is to hold of a mark asked with `mask`: 0 when none of
   * its types is wanted. An ignore mark stays as asked: narrowing it would
   * report what its client asked the kernel to keep quiet.
   */
  private narrowed(m: MarkSpec, mask: number): number {
    if (m.flags & IGNORE_FLAGS) return mask;
    const events = mask & ~FLAG_BITS & ~this.out;
    return events === 0 ? 0 : events | (mask & FLAG_BITS);
  }

  /**
   * The marks to open the group with, recorded. A mark none of whose types
   * is wanted is placed as asked all the same, so the kernel still checks
   * its path; settle() then takes it away.
   */
  initial(marks: readonly MarkSpec[]): MarkSpec[] {
    return marks.map((m) => {
      const h = this.record(m);
      const want = this.narrowed(h.mark, h.mark.mask) || h.mark.mask;
      h.placed |= want;
      return { ...m, mask: want };
    });
  }

  /** The group the marks are in, once open. */
  bind(fd: number): void {
    this.fd = fd;
  }

  private record(m: MarkSpec): Held {
    const key = keyOf(m);
    let h = this.held.get(key);
    if (!h) this.held.set(key, (h = { mark: { ...m, mask: 0 }, placed: 0 }));
    h.mark.mask |= m.mask;
    return h;
  }

  /** Add a mark to the live group (the kernel's errors, such as ENOENT, are thrown as for any mark). */
  add(m: MarkSpec): void {
    const prev = this.held.get(keyOf(m));
    const asked = (prev?.mark.mask ?? 0) | m.mask;
    const want = this.narrowed(m, asked);
    // Nothing of it wanted: placed and taken away, so a bad path is still refused.
    addMark(this.fd, { ...m, mask: want || m.mask });
    const h = this.record(m);
    h.placed |= want || m.mask;
    this.settle();
  }

  /** Remove a mark's types; one never asked for is the kernel's to refuse. */
  remove(m: MarkSpec): void {
    const h = this.held.get(keyOf(m));
    if (!h) return removeMark(this.fd, m);
    const asked = h.mark.mask & ~m.mask;
    const keep = asked & ~FLAG_BITS ? this.narrowed(h.mark, asked) : 0;
    if (h.placed & ~keep) removeMark(this.fd, { ...h.mark, mask: keep ? h.placed & ~keep : h.placed });
    h.placed = keep;
    if (asked & ~FLAG_BITS) h.mark.mask = asked;
    else this.held.delete(keyOf(m));
  }

  /** The kernel flushed a scope's marks. */
  forget(scope: MarkScope): void {
    for (const [key, h] of this.held) if (h.mark.scope === scope) this.held.delete(key);
  }

  /**
   * New types to leave out. The marks that must report more are widened
   * now (a refusal, say of a path gone since, undoes what was widened,
   * restores the old types and is thrown); those that may report less are
   * narrowed by the returned function, to call once the new filters are in
   * place: until then, the old filters still drop what the kernel reports.
   */
  refilter(out: number): () => void {
    const old = this.out;
    this.out = out;
    const widened: Array<[Held, number]> = [];
    try {
      for (const h of this.held.values()) {
        const want = this.narrowed(h.mark, h.mark.mask);
        if (want & ~FLAG_BITS & ~h.placed) {
          addMark(this.fd, { ...h.mark, mask: want });
          widened.push([h, h.placed]);
          h.placed |= want;
        }
      }
    } catch (err) {
      for (const [h, before] of widened) {
        try {
          removeMark(this.fd, { ...h.mark, mask: h.placed & ~before });
        } catch {
          // Reported, then dropped by the old filters.
        }
        h.placed = before;
      }
      this.out = old;
      throw err;
    }
    return () => this.settle();
  }

  /**
   * Take from the kernel's marks what is not wanted. A removal the kernel
   * refuses (the object gone) leaves events the filters drop, as before.
   */
  private settle(): void {
    for (const h of this.held.values()) {
      const want = this.narrowed(h.mark, h.mark.mask);
      const less = h.placed & ~want;
      if (!less) continue;
      try {
        removeMark(this.fd, { ...h.mark, mask: want ? less : h.placed });
        h.placed = want;
      } catch {
        // See above.
      }
    }
  }

  /**
   * The marks of a group taken over from an earlier process, which placed
   * them narrowed or not (by its version and filters): recorded as asked,
   * so settleInitial() narrows them to this watch's filters.
   */
  adopted(marks: readonly MarkSpec[]): void {
    for (const m of marks) this.record(m).placed |= m.mask;
  }

  /** After the group opened (or was adopted): what is placed but not wanted is taken away. */
  settleInitial(): void {
    this.settle();
  }
}
