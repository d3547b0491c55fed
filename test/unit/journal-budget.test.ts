// The daemon-wide budget of named watches' journals: what it charges,
// whom it takes a chunk from, what every journal keeps, and that a chunk
// it takes is told to cursors exactly as one dropped at a journal's own
// bound.
import { expect } from 'chai';
import { Journal } from '../../src/watch/journal';
import { JournalBudget, type ForcedDrop } from '../../src/watch/journal-budget';

/** What a chunk counts: its 64 KiB buffer and 16 KiB of per-entry arrays. */
const CHUNK = 64 * 1024 + 1024 * 16;
/** 1000-byte events: 65 fill a chunk. */
const PER_CHUNK = 65;
const BIG = 1 << 30;

const ev = (seq: number) => Buffer.alloc(1000, seq % 256);

function fill(j: Journal, from: number, count: number): number {
  for (let s = from; s < from + count; s++) j.appendEvent(ev(s), undefined, s);
  return from + count;
}

/** How many events a stream attaching after `after` is sent (the Gap it is told first comes from lostAfter). */
function countFrom(j: Journal, after: number): number {
  const cur = j.cursorAfter(after);
  let n = 0;
  for (;;) {
    const run = j.read(cur, 1000, Infinity, Infinity);
    if (!run.count) return n;
    n += run.count;
  }
}

const sumCharged = (...js: Journal[]) => js.reduce((n, j) => n + j.charged, 0);

describe('unit: journal budget', () => {
  it('keeps the total of two journals within the budget; the busy one loses its oldest, the quiet one nothing', () => {
    const drops: ForcedDrop[] = [];
    const budget = new JournalBudget(8 * CHUNK, (d) => drops.push(d));
    const busy = new Journal(BIG, 0, budget, { watch: 'w1', name: 'busy' });
    const quiet = new Journal(BIG, 0, budget, { watch: 'w2', name: 'quiet' });
    fill(quiet, 1, 2 * PER_CHUNK);
    let s = 1;
    for (let round = 0; round < 50; round++) {
      s = fill(busy, s, PER_CHUNK);
      expect(budget.used).to.equal(sumCharged(busy, quiet));
      expect(budget.used).to.be.at.most(8 * CHUNK);
    }
    // The quiet one still holds every event; the busy one only its newest.
    expect(countFrom(quiet, 0)).to.equal(2 * PER_CHUNK);
    expect(quiet.lostAfter(0)).to.equal(undefined);
    const first = busy.firstSequence;
    expect(first).to.be.above(1);
    expect(countFrom(busy, 0)).to.equal(s - first);
    // A stream after 0 is told exactly what went, then gets the rest.
    expect(busy.lostAfter(0)).to.deep.equal({ from: 1, to: first - 1 });
    expect(drops.length).to.be.above(0);
    expect(drops.every((d) => d.owner?.name === 'busy' && d.bytes === CHUNK)).to.equal(true);
    expect(budget.forcedDrops).to.equal(drops.length);
    expect(budget.forcedDropBytes).to.equal(drops.length * CHUNK);
  });

  it('takes from the journal holding the most, not the one asking', () => {
    const budget = new JournalBudget(10 * CHUNK);
    const big = new Journal(BIG, 0, budget);
    const mid = new Journal(BIG, 0, budget);
    const small = new Journal(BIG, 0, budget);
    fill(big, 1, 6 * PER_CHUNK);
    fill(mid, 1, 3 * PER_CHUNK);
    fill(small, 1, PER_CHUNK);
    expect(budget.used).to.equal(10 * CHUNK);
    const [b0, m0, s0] = [big.charged, mid.charged, small.charged];
    // The small journal's next event opens a chunk: the big one pays.
    fill(small, PER_CHUNK + 1, 1);
    expect(big.charged).to.equal(b0 - CHUNK);
    expect(mid.charged).to.equal(m0);
    expect(small.charged).to.equal(s0 + CHUNK);
    expect(big.lostAfter(0)).to.deep.equal({ from: 1, to: PER_CHUNK });
    expect(small.lostAfter(0)).to.equal(undefined);
  });

  it('takes from the journal asking when it holds the most', () => {
    const budget = new JournalBudget(6 * CHUNK);
    const asking = new Journal(BIG, 0, budget);
    const other = new Journal(BIG, 0, budget);
    fill(other, 1, 2 * PER_CHUNK);
    fill(asking, 1, 4 * PER_CHUNK);
    const o = other.charged;
    fill(asking, 4 * PER_CHUNK + 1, 1);
    expect(other.charged).to.equal(o);
    expect(asking.lostAfter(0)).to.deep.equal({ from: 1, to: PER_CHUNK });
    expect(budget.used).to.equal(6 * CHUNK);
  });

  it('spreads the loss: of two busy journals the larger pays, until they are even', () => {
    const budget = new JournalBudget(8 * CHUNK);
    const a = new Journal(BIG, 0, budget);
    const b = new Journal(BIG, 0, budget);
    let sa = fill(a, 1, 7 * PER_CHUNK);
    let sb = 1;
    for (let i = 0; i < 20; i++) {
      sb = fill(b, sb, PER_CHUNK);
      sa = fill(a, sa, PER_CHUNK);
    }
    expect(Math.abs(a.charged - b.charged)).to.be.at.most(CHUNK);
  });

  it('leaves every journal its newest chunk, past the budget if it must', () => {
    const budget = new JournalBudget(2 * CHUNK);
    const js = [0, 1, 2, 3].map(() => new Journal(BIG, 0, budget));
    for (const j of js) fill(j, 1, 10);
    for (const j of js) expect(countFrom(j, 0)).to.equal(10);
    expect(budget.used).to.equal(4 * CHUNK);
    // A journal opening its second chunk gives its first: it alone can.
    fill(js[0], 11, PER_CHUNK);
    expect(js[0].lostAfter(0)).to.deep.equal({ from: 1, to: PER_CHUNK });
    expect(budget.used).to.equal(4 * CHUNK);
  });

  it('tells a cursor inside a chunk the budget took the exact range it lost', () => {
    const budget = new JournalBudget(4 * CHUNK);
    const victim = new Journal(BIG, 0, budget);
    const other = new Journal(BIG, 0, budget);
    fill(victim, 1, 3 * PER_CHUNK + 5);
    const slow = victim.cursorAfter(10);
    victim.read(slow, 5, Infinity, Infinity);
    expect(slow.last).to.equal(15);
    // The other opens chunks: the victim, the larger, gives its oldest two.
    fill(other, 1, 2 * PER_CHUNK + 1);
    expect(victim.firstSequence).to.equal(2 * PER_CHUNK + 1);
    expect(victim.catchUp(slow)).to.deep.equal({ from: 16, to: 2 * PER_CHUNK });
    expect(victim.peek(slow)).to.equal(2 * PER_CHUNK + 1);
  });

  it('is credited what a journal drops at its own bound and what a cleared journal held', () => {
    const budget = new JournalBudget(BIG);
    const own = new Journal(3 * CHUNK, 0, budget);
    const other = new Journal(BIG, 0, budget);
    fill(own, 1, 20 * PER_CHUNK);
    fill(other, 1, 2 * PER_CHUNK + 1);
    expect(own.charged).to.be.at.most(3 * CHUNK);
    expect(budget.used).to.equal(sumCharged(own, other));
    own.clear();
    expect(budget.used).to.equal(other.charged);
    other.clear();
    expect(budget.used).to.equal(0);
    expect([...budget.journals()]).to.deep.equal([]);
  });

  it('counts process messages at the next chunk, and is charged once per chunk, not per event', () => {
    class Counting extends JournalBudget {
      charges = 0;
      override charge(...args: Parameters<JournalBudget['charge']>): void {
        this.charges++;
        super.charge(...args);
      }
    }
    const budget = new Counting(BIG);
    const j = new Journal(BIG, 0, budget);
    const tail = Buffer.alloc(500);
    for (let s = 1; s <= 10 * PER_CHUNK; s++) j.appendEvent(ev(s), s % 2 ? tail : Buffer.alloc(500), s);
    expect(budget.charges).to.equal(10);
    // All but the newest chunk's messages are charged.
    expect(j.bytes - j.charged).to.be.above(0).and.at.most(PER_CHUNK * 500);
    expect(budget.used).to.equal(j.charged);
  });
});
