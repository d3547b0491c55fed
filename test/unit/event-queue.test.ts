// The watch's outbound queue: notification events held encoded in chunks,
// permission events held as objects and encoded when sent, notices between.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { unknownProcess } from '../../src/host/process';
import { EventQueue } from '../../src/watch/event-queue';
import type { WatchEvent } from '../../src/watch/watch';

/** An "encoding" that is its label's bytes, so batches read back as text. */
const bytes = (label: string) => Buffer.from(label);

function permission(id: number): WatchEvent {
  return { id, permission: true, needsVerdict: true, ev: { mask: K.FAN_OPEN_PERM, pid: 1, fd: K.FAN_NOFD, deleted: false, isDir: false, process: unknownProcess(1), timeMs: 0 } };
}
const encodePermission = (it: WatchEvent) => ({ bytes: bytes(`[p${it.id}${it.needsVerdict ? '?' : ''}]`) });

describe('event queue', () => {
  it('keeps the order of notifications, permission events and notices, and ends a batch at a notice', () => {
    const q = new EventQueue();
    q.pushEncoded(bytes('[n1]'));
    q.pushEvent(permission(2));
    q.pushEncoded(bytes('[n3]'));
    q.pushOverflow({ source: 'client', dropped: 4, total: 4 });
    q.pushEncoded(bytes('[n5]'));
    expect(q.length).to.equal(5);
    expect(q.takeOverflow()).to.equal(undefined);
    const first = q.takeEvents(100, Infinity, encodePermission);
    expect(first.bytes.toString()).to.equal('[n1][p2?][n3]');
    expect([first.count, first.notifications]).to.deep.equal([3, 2]);
    expect(q.takeEvents(100, Infinity, encodePermission).count).to.equal(0);
    expect(q.takeOverflow()).to.deep.equal({ source: 'client', dropped: 4, total: 4 });
    expect(q.takeEvents(100, Infinity, encodePermission).bytes.toString()).to.equal('[n5]');
    expect(q.length).to.equal(0);
  });

  it('encodes a permission event when it is sent, not when it is queued', () => {
    const q = new EventQueue();
    const p = permission(1);
    q.pushEvent(p);
    p.needsVerdict = false; // a deadline answered it while it waited
    expect(q.takeEvents(10, Infinity, encodePermission).bytes.toString()).to.equal('[p1]');
  });

  it('copies what it is given: the encoder may reuse its buffer', () => {
    const q = new EventQueue();
    const scratch = Buffer.from('[a]');
    q.pushEncoded(scratch);
    scratch.write('[b]');
    q.pushEncoded(scratch);
    expect(q.takeEvents(10, Infinity, encodePermission).bytes.toString()).to.equal('[a][b]');
  });

  it('stops a batch at maxEvents and at maxBytes, but always takes one event however large', () => {
    const q = new EventQueue();
    for (let i = 0; i < 10; i++) q.pushEncoded(bytes(`${i}`.repeat(10)));
    expect(q.takeEvents(3, Infinity, encodePermission).count).to.equal(3);
    const byBytes = q.takeEvents(100, 25, encodePermission);
    expect([byBytes.count, byBytes.bytes.length]).to.deep.equal([2, 20]);
    const one = q.takeEvents(100, 5, encodePermission);
    expect([one.count, one.bytes.toString()]).to.deep.equal([1, '5555555555']);
    expect(q.takeEvents(100, Infinity, encodePermission).count).to.equal(4);
  });

  it('holds events across many chunks and events larger than a chunk, byte for byte, and is reusable after', () => {
    const q = new EventQueue();
    const sizes = [2, 70_000, 300, 65_536, 65_535, 2, 200_000, 17];
    const sent: Buffer[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 400; i++) {
        const b = Buffer.alloc(sizes[i % sizes.length] + (i % 7), (i * 31 + round) & 0xff);
        b.writeUInt16LE(i, 0);
        sent.push(b);
        q.pushEncoded(b);
      }
      const got: Buffer[] = [];
      for (;;) {
        const batch = q.takeEvents(97, 512 * 1024, encodePermission);
        if (!batch.count) break;
        got.push(Buffer.from(batch.bytes));
      }
      expect(Buffer.compare(Buffer.concat(got), Buffer.concat(sent.splice(0)))).to.equal(0);
      expect(q.length).to.equal(0);
    }
  });

  it('takes and pushes in turn, as a watch does, in the middle of a chunk and after a notice empties it', () => {
    const q = new EventQueue();
    const want: string[] = [];
    let got = '';
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 7; i++) {
        const label = `[${round}.${i}${'x'.repeat((round * 7 + i) % 900)}]`;
        q.pushEncoded(bytes(label));
        want.push(label);
      }
      if (round % 5 === 0) q.pushOverflow({ source: 'client', dropped: round, total: round });
      got += q.takeEvents(3, Infinity, encodePermission).bytes.toString();
      if (round % 5 === 0) {
        while (q.takeOverflow() === undefined && q.length) got += q.takeEvents(100, Infinity, encodePermission).bytes.toString();
        expect(q.length).to.equal(0);
      }
    }
    for (;;) {
      const b = q.takeEvents(100, Infinity, encodePermission);
      if (!b.count) break;
      got += b.bytes.toString();
    }
    expect(got).to.equal(want.join(''));
  });

  it('puts a shared tail right after its event, counts it in maxBytes, and holds it without copying', () => {
    const q = new EventQueue();
    const tail = Buffer.alloc(16 * 1024, 0x74);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 10_000; i++) q.pushEncoded(bytes(`[n${i}]`), tail);
    // Copied, the tails alone would be 160 MiB; held, the queue is the events' own bytes.
    expect(process.memoryUsage().arrayBuffers - before).to.be.below(8 * 1024 * 1024);
    expect(q.length).to.equal(10_000);
    const two = q.takeEvents(100, 2 * (tail.length + 8), encodePermission);
    expect(two.count).to.equal(2);
    expect(two.bytes.toString('latin1')).to.equal(`[n0]${tail.toString('latin1')}[n1]${tail.toString('latin1')}`);
    q.pushEvent(permission(7));
    let rest = 0;
    for (let b = q.takeEvents(1000, Infinity, encodePermission); b.count; b = q.takeEvents(1000, Infinity, encodePermission)) rest += b.count;
    expect(rest).to.equal(9_999);
    expect(q.length).to.equal(0);
  });

  it('empties itself when a notice is the last thing taken', () => {
    const q = new EventQueue();
    q.pushEncoded(bytes('[n1]'));
    q.pushOverflow({ source: 'kernel', dropped: 0, total: 1 });
    expect(q.takeEvents(10, Infinity, encodePermission).count).to.equal(1);
    expect(q.takeOverflow()).to.deep.equal({ source: 'kernel', dropped: 0, total: 1 });
    expect(q.length).to.equal(0);
    q.pushEncoded(bytes('[n2]'));
    expect(q.takeEvents(10, Infinity, encodePermission).bytes.toString()).to.equal('[n2]');
  });

  it('forgets everything on clear()', () => {
    const q = new EventQueue();
    q.pushEncoded(bytes('[n1]'));
    q.pushEvent(permission(2));
    q.pushOverflow({ source: 'kernel', dropped: 0, total: 1 });
    q.clear();
    expect(q.length).to.equal(0);
    expect(q.takeOverflow()).to.equal(undefined);
    expect(q.takeEvents(10, Infinity, encodePermission).count).to.equal(0);
    q.pushEncoded(bytes('[n3]'));
    expect(q.takeEvents(10, Infinity, encodePermission).bytes.toString()).to.equal('[n3]');
  });
});
