// The replay journal of a named watch: cursors, eviction by bytes, and the
// exact ranges a cursor is told it lost.
import { expect } from 'chai';
import { Journal, type Cursor } from '../../src/watch/journal';

/** An "event" of n bytes whose every byte is its sequence modulo 256. */
const ev = (seq: number, n = 100) => Buffer.alloc(n, seq % 256);

/** Read everything from the cursor: the sequences of the events in order, notices as strings. */
function drain(j: Journal, cur: Cursor, before = Infinity): Array<number | string> {
  const out: Array<number | string> = [];
  for (;;) {
    const n = j.takeNotice(cur);
    if (n) {
      out.push(`notice ${n.seq}`);
      continue;
    }
    const start = cur.last;
    const run = j.read(cur, 7, Infinity, before);
    if (!run.count) return out;
    // Each event is 100 bytes of its own sequence's low byte.
    for (let i = 0; i < run.count; i++) out.push(run.bytes[i * 100]);
    expect(cur.last).to.be.above(start);
  }
}

describe('unit: replay journal', () => {
  it('replays from after any sequence, events and notices in order, and stops before a given sequence', () => {
    const j = new Journal(1 << 20);
    for (let s = 1; s <= 50; s++) {
      if (s === 20) j.appendNotice({ source: 'kernel', dropped: 0, total: 1, seq: s }, s);
      else j.appendEvent(ev(s), undefined, s);
    }
    const all = drain(j, j.cursorAfter(0));
    expect(all).to.have.length(50);
    expect(all[19]).to.equal('notice 20');
    expect(drain(j, j.cursorAfter(45))).to.deep.equal([46, 47, 48, 49, 50]);
    expect(drain(j, j.cursorAfter(50))).to.deep.equal([]);
    expect(drain(j, j.endCursor(50))).to.deep.equal([]);
    expect(drain(j, j.cursorAfter(10), 14)).to.deep.equal([11, 12, 13]);
    expect(j.lostAfter(3)).to.equal(undefined);
  });

  it('finds the first entry after a sequence the journal never held (a permission event\'s)', () => {
    const j = new Journal(1 << 20);
    for (const s of [2, 4, 6, 8]) j.appendEvent(ev(s), undefined, s);
    expect(drain(j, j.cursorAfter(5))).to.deep.equal([6, 8]);
    expect(j.lostAfter(1)).to.equal(undefined);
  });

  it('drops whole chunks past its bound and tells a cursor that pointed into them exactly what it lost', () => {
    const j = new Journal(256 * 1024);
    const slow = j.cursorAfter(0);
    for (let s = 1; s <= 5000; s++) j.appendEvent(ev(s, 1000), undefined, s);
    expect(j.bytes).to.be.at.most(256 * 1024 + 64 * 1024);
    const first = j.firstSequence;
    expect(first).to.be.above(1);
    const gap = j.catchUp(slow);
    expect(gap).to.deep.equal({ from: 1, to: first - 1 });
    expect(j.catchUp(slow)).to.equal(undefined);
    // Reads on from the oldest held, every one once.
    let n = 0;
    let last = first - 1;
    for (;;) {
      const run = j.read(slow, 1000, Infinity, Infinity);
      if (!run.count) break;
      n += run.count;
      expect(slow.last).to.equal(last + run.count);
      last = slow.last;
    }
    expect(n).to.equal(5000 - first + 1);
    expect(j.lostAfter(10)).to.deep.equal({ from: 11, to: first - 1 });
  });

  it('a cursor that read everything before its chunk went has lost nothing', () => {
    const j = new Journal(128 * 1024);
    const cur = j.cursorAfter(0);
    let s = 0;
    for (; s < 65; s++) j.appendEvent(ev(s + 1, 1000), undefined, s + 1);
    drain(j, cur);
    expect(cur.last).to.equal(65);
    // Two more chunks: the one the cursor is in goes.
    for (; s < 65 + 70; s++) j.appendEvent(ev(s + 1, 1000), undefined, s + 1);
    const gap = j.catchUp(cur);
    if (j.firstSequence <= 66) expect(gap).to.equal(undefined);
    else expect(gap).to.deep.equal({ from: 66, to: j.firstSequence - 1 });
    const from = cur.last;
    expect(drain(j, cur).length).to.equal(135 - from);
  });

  it('counts a process message shared by a run of events once', () => {
    const tail = Buffer.alloc(10_000);
    const shared = new Journal(1 << 30);
    const own = new Journal(1 << 30);
    for (let s = 1; s <= 100; s++) {
      shared.appendEvent(ev(s), tail, s);
      own.appendEvent(ev(s), Buffer.alloc(10_000), s);
    }
    expect(own.bytes - shared.bytes).to.equal(99 * 10_000);
  });

  it('a restored journal has lost what came before its first sequence', () => {
    const j = new Journal(1 << 20, 500);
    j.appendEvent(ev(501), undefined, 501);
    expect(j.lostAfter(400)).to.deep.equal({ from: 401, to: 500 });
    expect(drain(j, j.cursorAfter(400))).to.deep.equal([501 % 256]);
  });
});
