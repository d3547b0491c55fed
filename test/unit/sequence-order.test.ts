// fanctl watch --from's reordering: each watch's records in sequence
// order, what is ahead held until the hole before it fills, given up on
// after a while or past a count, late ones printed when they come.
import { expect } from 'chai';
import { parseSequenceRange } from '../../src/client';
import { SequenceOrder } from '../../src/cli/sequence-order';
import { waitFor } from '../fixtures/wait';

function order(holdMs = 60_000, maxHeld = 100) {
  const out: string[] = [];
  const o = new SequenceOrder<string>((x) => out.push(x), { holdMs, maxHeld });
  const push = (key: string, seq: string) => o.push(key, parseSequenceRange(seq), `${key}:${seq}`);
  return { o, out, push };
}

describe('unit: sequence order', () => {
  it('holds what comes ahead of a hole and releases it in order once the hole fills, per watch', () => {
    const { o, out, push } = order();
    for (const [k, s] of [['a', '1'], ['a', '2'], ['a', '5-7'], ['b', '10'], ['a', '8'], ['b', '11'], ['a', '3'], ['a', '4']]) push(k, s);
    expect(out).to.deep.equal(['a:1', 'a:2', 'b:10', 'b:11', 'a:3', 'a:4', 'a:5-7', 'a:8']);
    o.close();
  });

  it('passes records without a range (a gap with no end) at once, and prints a late one when it comes', () => {
    const { o, out, push } = order(60_000, 2);
    for (const s of ['1', '3', '4', '5', '9-0', '6']) push('a', s);
    // Past maxHeld 2 the hole at 2 is given up on; 2 itself, late, is printed as it comes.
    push('a', '2');
    expect(out).to.deep.equal(['a:1', 'a:3', 'a:4', 'a:5', 'a:9-0', 'a:6', 'a:2']);
    o.close();
  });

  it('gives up on a hole after holdMs, and close() prints what is still held', async () => {
    const { o, out, push } = order(40);
    push('a', '1');
    push('a', '3');
    expect(out).to.deep.equal(['a:1']);
    await waitFor(() => out.length === 2, 2_000, 'the held record given up on');
    expect(out).to.deep.equal(['a:1', 'a:3']);
    push('a', '10');
    o.close();
    expect(out).to.deep.equal(['a:1', 'a:3', 'a:10']);
  });
});
