// A watch's sequence: one number per event and notice, in the order they
// are queued for streams, never reused (Event.sequence). A watch restored
// after a daemon restart starts after its last one (WatchOptions.firstSequence).
// Numbers stay below 2^53: at a million a second that is 285 years.
export class Sequence {
  /** The last number given; 0: none yet. */
  last: number;

  constructor(first = 1) {
    this.last = first - 1;
  }

  next(): number {
    return ++this.last;
  }
}
