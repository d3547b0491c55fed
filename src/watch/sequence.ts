// A watch's sequence: one number per event and notice, in the order they
// are queued for streams, never reused (Event.sequence). A watch restored
// after a daemon restart starts after its last one (WatchOptions.firstSequence).
// Numbers stay below 2^53: at a million a second that is 285 years.
import { FanotifydError } from '../common/errors';

/** A number asked of a sealed sequence: the next process may give it too. */
export class SequenceSealedError extends FanotifydError {
  constructor(sealedAt: number) {
    super('ESEALED', `the sequence was sealed at ${sealedAt}: no number may be given past it`);
  }
}

export class Sequence {
  /** The last number given; 0: none yet. */
  last: number;
  private sealedAt?: number;

  constructor(first = 1) {
    this.last = first - 1;
  }

  next(): number {
    if (this.sealedAt !== undefined) throw new SequenceSealedError(this.sealedAt);
    return ++this.last;
  }

  /**
   * No number is given from now on; returns the first never given. A
   * watch handing its group to the next process seals its sequence
   * before that number is written down as where the next one starts:
   * a number given after the write would be given twice.
   */
  seal(): number {
    this.sealedAt ??= this.last + 1;
    return this.sealedAt;
  }

  /** The first number never given, once sealed; undefined before. */
  get sealed(): number | undefined {
    return this.sealedAt;
  }
}
