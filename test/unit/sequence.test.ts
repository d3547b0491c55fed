// A watch's sequence numbers: given once each, and sealed when its group
// is handed to the next process, which starts at the number sealed.
import { expect } from 'chai';
import { Sequence, SequenceSealedError } from '../../src/watch/sequence';

describe('unit: sequence', () => {
  it('numbers from 1, or from the first number a restored watch is given', () => {
    const fresh = new Sequence();
    expect([fresh.next(), fresh.next()]).to.deep.equal([1, 2]);
    const restored = new Sequence(2002);
    expect(restored.last).to.equal(2001);
    expect(restored.next()).to.equal(2002);
  });

  it('sealed, it names the first number never given and gives no more', () => {
    const s = new Sequence(10);
    s.next();
    s.next();
    expect(s.sealed).to.equal(undefined);
    expect(s.seal()).to.equal(12);
    expect(s.sealed).to.equal(12);
    expect(() => s.next()).to.throw(SequenceSealedError, /sealed at 12/);
    expect(s.seal()).to.equal(12);
    expect(s.last).to.equal(11);
  });

  it('sealed before any number: the first it would have given', () => {
    expect(new Sequence().seal()).to.equal(1);
    expect(new Sequence(65537).seal()).to.equal(65537);
  });
});
