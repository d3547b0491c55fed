// The exporter's wire reader against proto-loader's encoder: every Event's
// bytes, sequence and first type found without decoding, other fields of
// any wire type skipped, and truncated input refused.
import { expect } from 'chai';
import { fanotifyService } from '../../src/api/proto';
import { AckWindow } from '../../src/export/ack-window';
import { encodeGap, wireEvents, wireField, WireError } from '../../src/export/wire-response';

const watch = fanotifyService().Watch;
const encode = (m: object) => watch.responseSerialize(m);
const decode = (b: Buffer) => watch.responseDeserialize(b) as { events?: { events: Array<{ sequence: string }> } };

describe('unit: export wire reader', () => {
  it('finds each event of a batch with its sequence and first type, whatever fields come before them', () => {
    const events = [
      // Length-delimited, fixed64 (time), varint and packed fields before sequence 23: each must be skipped by its own length.
      { id: '1', sequence: '18446744073709551615', types: ['EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_MODIFY'], path: '/a/b', process: { pid: 7, comm: 'x' }, time: { seconds: '1700000000', nanos: 5 }, mask: '10' },
      { id: '2', sequence: '42', types: ['EVENT_TYPE_OPEN'], path: 'é'.repeat(200), container_path: '/c' },
    ];
    const bytes = encode({ events: { events } });
    const found = wireEvents(bytes)!;
    expect(found.map((e) => [e.sequence, e.firstType])).to.deep.equal([
      [18446744073709551615n, 3],
      [42n, 5],
    ]);
    // The slices are the Events as encoded: re-wrapped, they decode to the same messages.
    const batch = Buffer.concat(found.flatMap((e) => [Buffer.from([0x0a, ...varint(e.bytes.length)]), Buffer.from(e.bytes)]));
    const again = decode(Buffer.concat([Buffer.from([0x12, ...varint(batch.length)]), batch]));
    expect(again.events!.events.map((e) => e.sequence)).to.deep.equal(['18446744073709551615', '42']);
  });

  it('says null for responses that are not events, and finds the Overflow inside one', () => {
    expect(wireEvents(encode({ subscribed: { watch_id: 'w', name: 'n', boot_id: 'b' } }))).to.equal(null);
    const overflow = encode({ overflow: { source: 'OVERFLOW_SOURCE_CLIENT', dropped: '3', total: '9', sequence: '77' } });
    expect(wireEvents(overflow)).to.equal(null);
    expect(Buffer.from(wireField(overflow, 3)!)).to.deep.equal(overflow.subarray(2));
  });

  it('refuses a truncated response instead of reading past it', () => {
    const bytes = encode({ events: { events: [{ sequence: '5', path: '/x' }] } });
    expect(() => wireEvents(bytes.subarray(0, bytes.length - 2))).to.throw(WireError);
  });

  it('encodes a Gap as proto-loader decodes it', () => {
    const gap = Buffer.concat([Buffer.from([0x32, encodeGap(501n, 2n ** 40n).length]), encodeGap(501n, 2n ** 40n)]);
    expect((watch.responseDeserialize(gap) as { gap: object }).gap).to.deep.equal({ from_sequence: '501', to_sequence: String(2n ** 40n) });
  });
});

describe('unit: export ack window', () => {
  it('moves the cursor only over an unbroken run of acknowledged sends', () => {
    const w = new AckWindow(10n);
    const [a, b, c] = [w.add(11n, 0), w.add(15n, 0), w.add(16n, 0)];
    expect(w.ack(b)).to.equal(false);
    expect(w.cursor).to.equal(10n);
    expect(w.ack(a)).to.equal(true);
    expect(w.cursor).to.equal(15n);
    w.ack(c);
    expect([w.cursor, w.size]).to.deep.equal([16n, 0]);
  });

  it('keeps order across its compaction', () => {
    const w = new AckWindow(0n);
    const entries = Array.from({ length: 5000 }, (_, i) => w.add(BigInt(i + 1), i));
    for (let i = 1; i < 5000; i++) w.ack(entries[i]);
    expect(w.cursor).to.equal(0n);
    w.ack(entries[0]);
    expect(w.cursor).to.equal(5000n);
  });

  it("gives the first unacknowledged send's floor, or the position known when none is out", () => {
    const w = new AckWindow(0n);
    const [a, b] = [w.add(1n, 7), w.add(2n, 9)];
    expect(w.floor(12)).to.equal(7);
    w.ack(b);
    expect(w.floor(12)).to.equal(7);
    w.ack(a);
    expect(w.floor(12)).to.equal(12);
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
