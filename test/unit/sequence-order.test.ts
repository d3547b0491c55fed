// fanctl watch --from's reordering: each watch's records in sequence
// order, what is ahead held until the hole before it fills, given up on
// after a while or past a count, late ones printed when they come.
import { expect } from 'chai';
import { parseSequenceRange } from '../../src/client';
import { SequenceOrder } from '../../src/cli/sequence-order';
import { FakeClock, FakeTimers } from '../fixtures/fake-clock';

function order(holdMs = 60_000, maxHeld = 100) {
  const out: string[] = [];
  const clock = new FakeClock();
  const timers = new FakeTimers();
  const o = new SequenceOrder<string>((x) => out.push(x), { holdMs, maxHeld }, clock, timers);
  const push = (key: string, seq: string) => o.push(key, parseSequenceRange(seq), `${key}:${seq}`);
  return { o, out, push, clock, timers };
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

  it('gives up on a hole holdMs after a record began to wait, not after the last progress; close() prints what is held', () => {
    const { o, out, push, clock, timers } = order(2_000);
    push('a', '1');
    clock.advance(60_000);
    push('a', '3');
    clock.advance(1_000);
    timers.fire();
    // A quiet watch: 3 has waited 1 s of its 2, so 2 still comes before it.
    push('a', '2');
    expect(out).to.deep.equal(['a:1', 'a:2', 'a:3']);
    push('a', '5');
    clock.advance(2_000);
    timers.fire();
    expect(out).to.deep.equal(['a:1', 'a:2', 'a:3', 'a:5']);
    push('a', '10');
    o.close();
    expect(out).to.deep.equal(['a:1', 'a:2', 'a:3', 'a:5', 'a:10']);
    expect(timers.armed.size).to.equal(0);
  });
});
