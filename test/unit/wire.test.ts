// The hand-written EventBatch encoder, checked by decoding its output with
// the .proto itself (the same deserializer clients generate from it).
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { readProcess, unknownProcess, type ProcessInfo } from '../../src/host/process';
import type { FsEvent } from '../../src/host/event';
import { EVENT_TYPES } from '../../src/api/convert';
import { fanotifyService } from '../../src/api/proto';
import { encodeEvent, eventBatch, withSequence } from '../../src/api/wire';
import { EventQueue } from '../../src/watch/event-queue';
import type { WatchEvent } from '../../src/watch/watch';
import { seededRandom } from '../fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
const decode = fanotifyService().Watch.responseDeserialize as (b: Buffer) => any;

function item(ev: Partial<FsEvent>, id = 1, needsVerdict = false): WatchEvent {
  const base: FsEvent = { mask: K.FAN_OPEN, pid: 1, fd: K.FAN_NOFD, deleted: false, isDir: false, process: unknownProcess(1), timeMs: 0 };
  return { id, ev: { ...base, ...ev }, permission: needsVerdict, needsVerdict };
}

/** An event's two parts, joined. */
const whole = (e: { bytes: Uint8Array; tail?: Uint8Array }) => Buffer.concat([e.bytes, e.tail ?? new Uint8Array(0)]);

function one(it: WatchEvent): any {
  const msg = decode(eventBatch(whole(encodeEvent(it))));
  expect(msg.response).to.equal('events');
  expect(msg.events.events).to.have.length(1);
  return msg.events.events[0];
}

const handle = (type: number, bytes: number[]) => {
  const b = Buffer.alloc(8 + bytes.length);
  b.writeUInt32LE(bytes.length, 0);
  b.writeInt32LE(type, 4);
  Buffer.from(bytes).copy(b, 8);
  return b;
};

describe('wire: EventBatch encoding', () => {
  it('encodes a permission event: lossy UTF-8 path, exact bytes, time, process', () => {
    const bytes = Buffer.from([0x2f, 0x61, 0xff]);
    const proc: ProcessInfo = { pid: 5, ppid: 1, uid: 1000, gid: 100, comm: 'cat', exe: '/usr/bin/cat', cmdline: ['cat', '', 'é'], details: true, verified: true };
    const e = one(item({ mask: K.FAN_OPEN_PERM, pid: 5, path: bytes, process: proc, timeMs: 1_700_000_000_123 }, 9, true));
    expect(e.id).to.equal('9');
    expect(e.path).to.equal('/a\ufffd');
    expect(Buffer.compare(e.path_bytes, bytes)).to.equal(0);
    expect(e.types).to.deep.equal(['EVENT_TYPE_OPEN_PERM']);
    expect(e.mask).to.equal(String(K.FAN_OPEN_PERM));
    expect(e.needs_verdict).to.equal(true);
    expect(e.time).to.deep.equal({ seconds: '1700000000', nanos: 123_000_000 });
    expect(e.process).to.deep.include({ pid: 5, ppid: 1, uid: 1000, gid: 100, comm: 'cat', exe: '/usr/bin/cat', details: true, pid_verified: true, tid: 0 });
    expect(e.process.cmdline).to.deep.equal(['cat', '', 'é']);
    expect(e.entry).to.equal(null);
    expect(e.range).to.equal(null);
  });

  it('encodes every event type bit to its enum name', () => {
    for (const [name, bit] of EVENT_TYPES) expect(one(item({ mask: bit })).types, name).to.deep.equal([name]);
    const all = EVENT_TYPES.reduce((m, [, bit]) => m | bit, 0);
    expect(one(item({ mask: all })).types).to.deep.equal(EVENT_TYPES.map(([n]) => n));
  });

  it('encodes directory entries, rename pairs, handles and the rarer records', () => {
    const fsid = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const id = { fsid, handleType: 0x81, fileHandle: handle(0x81, [9, 9, 9, 9]), name: Buffer.from('new') };
    const e = one(
      item({
        mask: K.FAN_RENAME | K.FAN_ONDIR,
        isDir: true,
        path: Buffer.from('/d/new'),
        entry: { dir: Buffer.from('/d'), name: Buffer.from('new'), id },
        oldEntry: { name: Buffer.from([0x6f, 0xfe]), id: { ...id, name: undefined } },
        newEntry: { dir: Buffer.from('/d'), name: Buffer.from('new'), id },
        range: { offset: 2n ** 40n, count: 4096n },
        error: { error: -117, count: 3 },
        mntId: 2n ** 63n + 5n,
        target: { fsid, handleType: -1, fileHandle: handle(-1, [7]) },
        fdError: 13,
        malformed: 'info record too short',
        deleted: true,
        process: { ...unknownProcess(-1), tid: 77 },
      }),
    );
    expect(e.is_dir).to.equal(true);
    expect(e.deleted).to.equal(true);
    expect(e.entry).to.deep.include({ dir: '/d', name: 'new', unresolved: false, handle_type: 0x81 });
    expect(Buffer.compare(e.entry.fsid, fsid)).to.equal(0);
    expect([...e.entry.handle]).to.deep.equal([9, 9, 9, 9]);
    expect(e.old_entry).to.deep.include({ dir: '', name: 'o\ufffd', unresolved: true });
    expect([...e.old_entry.name_bytes]).to.deep.equal([0x6f, 0xfe]);
    expect(e.new_entry.dir).to.equal('/d');
    expect(e.range).to.deep.equal({ offset: String(2 ** 40), count: '4096' });
    expect(e.fs_error).to.deep.equal({ error: 117, count: 3 });
    expect(e.mnt_id).to.equal((2n ** 63n + 5n).toString());
    expect(e.target.handle_type).to.equal(-1);
    expect([...e.target.handle]).to.deep.equal([7]);
    expect(e.fd_error).to.equal(13);
    expect(e.malformed).to.equal('info record too short');
    expect(e.process).to.deep.include({ pid: -1, tid: 77, details: false });
  });

  it('encodes a coalesced event\'s count, and leaves it out for a single event', () => {
    expect(one({ ...item({ path: Buffer.from('/x') }), count: 17 }).count).to.equal(17);
    for (const count of [undefined, 1]) {
      const b = whole(encodeEvent({ ...item({ path: Buffer.from('/x') }), count }));
      expect(b.length, `count ${count}`).to.equal(whole(encodeEvent(item({ path: Buffer.from('/x') }))).length);
      expect(decode(eventBatch(b)).events.events[0].count).to.equal(0);
    }
  });

  it('encodes the sequence, and adds one to an event encoded without it, at any length', () => {
    expect(one({ ...item({ path: Buffer.from('/s') }), seq: 2 ** 40 + 3 }).sequence).to.equal(String(2 ** 40 + 3));
    expect(one(item({ path: Buffer.from('/s') })).sequence).to.equal('0');
    // An event long enough that its length takes two bytes, and one that needs three after the sequence.
    for (const len of [10, 120, 16_370]) {
      const it = item({ path: Buffer.alloc(len, 0x61), process: { ...unknownProcess(7), comm: 'x' } }, 4);
      const plain = encodeEvent(it);
      const bytes = Buffer.from(plain.bytes);
      for (const seq of [1, 127, 128, 2 ** 35, 2 ** 52]) {
        const msg = decode(eventBatch(whole(withSequence({ bytes, tail: plain.tail }, seq))));
        expect(msg.events.events).to.have.length(1);
        const e = msg.events.events[0];
        expect(e.sequence).to.equal(String(seq));
        expect(e.id).to.equal('4');
        expect(e.path.length).to.equal(len);
        expect(e.process.comm).to.equal('x');
      }
    }
  });

  it('encodes the decision and index of the rule that decided a reported event', () => {
    const ruled = (decision: 'allow' | 'deny', index: number) => one({ ...item({ mask: K.FAN_OPEN_PERM, path: Buffer.from('/k.key') }, 4, false), permission: true, ruleDecision: { decision, index } });
    expect(ruled('deny', 3)).to.deep.include({ decision: 'DECISION_DENY', rule: 3, needs_verdict: false, path: '/k.key' });
    // Rule 0 is a rule: the decision says so even though 0 is not written.
    expect(ruled('allow', 0)).to.deep.include({ decision: 'DECISION_ALLOW', rule: 0 });
    expect(ruled('allow', 300).rule).to.equal(300);
    expect(one(item({ mask: K.FAN_OPEN_PERM }, 5, true))).to.deep.include({ decision: 'DECISION_UNSPECIFIED', rule: 0, count: 0 });
  });

  it('encodes a command line larger than the encoder buffer', () => {
    // Three 100 KiB arguments: more than the 64 KiB the writers start with.
    const cmdline = ['sh', ...Array.from({ length: 3 }, (_, i) => String(i).repeat(100 * 1024))];
    const proc: ProcessInfo = { ...unknownProcess(9), comm: 'sh', cmdline, details: true };
    const e = one(item({ pid: 9, path: Buffer.from('/x'), process: proc }));
    expect(e.process.cmdline).to.deep.equal(cmdline);
    expect(e.path).to.equal('/x');
  });

  it('gives the events of one process the same process message, not a copy each', () => {
    const me = readProcess(process.pid);
    const a = encodeEvent(item({ process: me }, 1)).tail;
    const b = encodeEvent(item({ process: me }, 2)).tail;
    expect(a).to.not.equal(undefined);
    expect(a).to.equal(b);
    expect(encodeEvent(item({ process: unknownProcess(3) }, 3)).tail).to.not.equal(a);
  });

  it('keeps a batch in order through the queue, across its chunks and past its first buffer', () => {
    const rnd = seededRandom(7);
    const me = readProcess(process.pid);
    const batch = Array.from({ length: 3000 }, (_, i) =>
      item({ path: Buffer.from(`/x/${'y'.repeat(Math.floor(rnd() * 300))}/${i}`), process: i % 2 ? me : unknownProcess(i), timeMs: i }, i + 1),
    );
    const q = new EventQueue();
    for (const it of batch) {
      const e = encodeEvent(it);
      q.pushEncoded(e.bytes, e.tail);
    }
    const taken = q.takeEvents(batch.length, Infinity, encodeEvent);
    expect(taken.count).to.equal(batch.length);
    expect(taken.bytes.length).to.be.above(256 * 1024);
    const events = decode(eventBatch(taken.bytes)).events.events;
    expect(events.map((e: any) => Number(e.id))).to.deep.equal(batch.map((b) => b.id));
    expect(events.map((e: any) => e.path)).to.deep.equal(batch.map((b) => b.ev.path!.toString()));
    expect(events[1].process.comm).to.equal(me.comm);
    expect(events[1].process.cmdline).to.deep.equal(me.cmdline);
    expect(events[2].process).to.deep.include({ pid: 2, details: false });
  });
});
