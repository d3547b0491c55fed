// The decoder on hand-built buffers: every record type, then broken ones,
// then every truncation, then seeded random mutation.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { DecodeError, decodeEvents, FidInterner } from '../../src/kernel/decoder';
import { seededRandom } from '../fixtures/harness';
import { errorInfo, fidInfo, metadata, mntInfo, pidfdInfo, rangeInfo, rawInfo } from '../fixtures/records';

describe('unit: decoder', () => {
  it('pins the ABI layout the decoder depends on', () => {
    expect(K.FAN_EVENT_METADATA_LEN).to.equal(24);
    expect([K.META_OFF_EVENT_LEN, K.META_OFF_VERS, K.META_OFF_METADATA_LEN, K.META_OFF_MASK, K.META_OFF_FD, K.META_OFF_PID]).to.deep.equal([0, 4, 6, 8, 16, 20]);
    expect([K.INFO_HDR_LEN, K.FID_OFF_FSID, K.FID_OFF_HANDLE, K.FILE_HANDLE_HEADER_LEN]).to.deep.equal([4, 4, 12, 8]);
    expect([K.PIDFD_INFO_LEN, K.ERROR_INFO_LEN, K.RANGE_INFO_LEN, K.MNT_INFO_LEN, K.FAN_RESPONSE_LEN]).to.deep.equal([8, 12, 24, 16, 8]);
    expect(K.FANOTIFY_METADATA_VERSION).to.equal(3);
    expect([K.FAN_OPEN_PERM, K.FAN_ACCESS_PERM, K.FAN_OPEN_EXEC_PERM, K.FAN_PRE_ACCESS]).to.deep.equal([0x10000, 0x20000, 0x40000, 0x100000]);
    expect([K.FAN_Q_OVERFLOW, K.FAN_ONDIR, K.FAN_EVENT_ON_CHILD, K.FAN_RENAME]).to.deep.equal([0x4000, 0x40000000, 0x08000000, 0x10000000]);
  });

  it('decodes a plain fd-mode event', () => {
    const { events, error } = decodeEvents(metadata({ mask: K.FAN_OPEN | K.FAN_ONDIR, fd: 7, pid: 42 }));
    expect(error).to.equal(undefined);
    expect(events).to.have.length(1);
    expect(events[0]).to.include({ offset: 0, mask: K.FAN_OPEN | K.FAN_ONDIR, fd: 7, pid: 42, unknownInfo: 0 });
    expect(events[0].malformed).to.equal(undefined);
  });

  it('walks several events by event_len, honouring a larger metadata_len', () => {
    const a = metadata({ mask: K.FAN_OPEN, fd: 3 });
    const b = metadata({ mask: K.FAN_CLOSE_WRITE, fd: 4, metaLen: 32 });
    const c = metadata({ mask: K.FAN_ACCESS, fd: 5 });
    const { events, error } = decodeEvents(Buffer.concat([a, b, c]));
    expect(error).to.equal(undefined);
    expect(events.map((e) => [e.offset, e.fd])).to.deep.equal([[0, 3], [24, 4], [56, 5]]);
  });

  it('lets records in a row with equal fsid and handle bytes share one copy, and copies different ones', () => {
    const rec = (handle: number[], name: string) => metadata({ mask: K.FAN_OPEN, fd: K.FAN_NOFD }, [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { handle: Buffer.from(handle), name: Buffer.from(name) })]);
    const buf = Buffer.concat([rec([1, 2, 3, 4], 'a'), rec([1, 2, 3, 4], 'b'), rec([5, 6, 7, 8], 'c')]);
    const [a, b, c] = decodeEvents(buf).events.map((e) => e.dfid!);
    expect(b.fileHandle).to.equal(a.fileHandle);
    expect(b.fsid).to.equal(a.fsid);
    expect(c.fileHandle).to.not.equal(a.fileHandle);
    expect(c.fileHandle.subarray(8)).to.deep.equal(Buffer.from([5, 6, 7, 8]));
    expect([a.name, b.name, c.name].map(String)).to.deep.equal(['a', 'b', 'c']);
    // Copies, not views of the read buffer, which the pump reuses.
    buf.fill(0);
    expect(a.fileHandle.subarray(8)).to.deep.equal(Buffer.from([1, 2, 3, 4]));
    expect(a.fsid).to.deep.equal(Buffer.from([9, 9, 9, 9, 8, 8, 8, 8]));
  });

  it('shares equal bytes across reads through one interner, and never between two', () => {
    const rec = (name: string) => metadata({ mask: K.FAN_OPEN, fd: K.FAN_NOFD }, [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { handle: Buffer.from([1, 2, 3, 4]), name: Buffer.from(name) })]);
    const mine = new FidInterner();
    const theirs = new FidInterner();
    const first = decodeEvents(rec('a'), undefined, false, mine).events[0].dfid!;
    const other = decodeEvents(rec('b'), undefined, false, theirs).events[0].dfid!;
    const again = decodeEvents(rec('c'), undefined, false, mine).events[0].dfid!;
    // One watch's next read reuses its copy; another watch's decoding does not touch it.
    expect(again.fileHandle).to.equal(first.fileHandle);
    expect(again.fsid).to.equal(first.fsid);
    expect(other.fileHandle).to.not.equal(first.fileHandle);
    expect(other.fsid).to.not.equal(first.fsid);
    expect(other.fileHandle).to.deep.equal(first.fileHandle);
    // Without an interner, nothing is remembered from one call to the next.
    const [x, y] = [decodeEvents(rec('x')), decodeEvents(rec('y'))].map((r) => r.events[0].dfid!);
    expect(y.fileHandle).to.not.equal(x.fileHandle);
  });

  it('keeps a slot for handles with a name and one for those without', () => {
    const dir = fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { handle: Buffer.from([1, 1, 1, 1]), name: Buffer.from('n') });
    const target = (h: number) => fidInfo(K.FAN_EVENT_INFO_TYPE_FID, { handle: Buffer.from([h, h, h, h]) });
    const rec = (h: number) => metadata({ mask: K.FAN_CREATE, fd: K.FAN_NOFD }, [dir, target(h)]);
    const [a, b] = decodeEvents(Buffer.concat([rec(2), rec(3)]), undefined, false, new FidInterner()).events;
    expect(b.dfid!.fileHandle).to.equal(a.dfid!.fileHandle);
    expect(b.fid!.fileHandle).to.not.equal(a.fid!.fileHandle);
  });

  it('decodes every info record type', () => {
    const name = Buffer.from([0x61, 0xff, 0x62]); // not UTF-8: kept as bytes
    const buf = metadata({ mask: K.FAN_CREATE, fd: K.FAN_NOFD }, [
      fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { name, handleType: 0x81, handle: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) }),
      fidInfo(K.FAN_EVENT_INFO_TYPE_FID, { handle: Buffer.from([7, 7, 7, 7]) }),
      pidfdInfo(11),
      errorInfo(-5, 3),
      rangeInfo(4096n, 2n ** 40n),
      mntInfo(2n ** 33n + 5n),
    ]);
    const { events, error } = decodeEvents(buf);
    expect(error).to.equal(undefined);
    const e = events[0];
    expect(e.malformed).to.equal(undefined);
    expect(e.dfid!.name).to.deep.equal(name);
    expect(e.dfid!.handleType).to.equal(0x81);
    expect(e.dfid!.fsid).to.deep.equal(Buffer.from([9, 9, 9, 9, 8, 8, 8, 8]));
    // The full struct file_handle, ready for open_by_handle_at.
    expect(e.dfid!.fileHandle.readUInt32LE(0)).to.equal(12);
    expect(e.dfid!.fileHandle.subarray(8)).to.deep.equal(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    expect(e.fid!.fileHandle.subarray(8)).to.deep.equal(Buffer.from([7, 7, 7, 7]));
    expect(e.fid!.name).to.equal(undefined);
    expect(e.pidfd).to.equal(11);
    expect(e.error).to.deep.equal({ error: -5, count: 3 });
    expect(e.range).to.deep.equal({ offset: 4096n, count: 2n ** 40n });
    expect(e.mntId).to.equal(2n ** 33n + 5n);
  });

  it('decodes RENAME with both the old and the new entry, and a DFID without name', () => {
    const buf = metadata({ mask: K.FAN_RENAME }, [
      fidInfo(K.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, { name: Buffer.from('old') }),
      fidInfo(K.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, { name: Buffer.from('new-name') }),
      fidInfo(K.FAN_EVENT_INFO_TYPE_DFID, {}),
    ]);
    const e = decodeEvents(buf).events[0];
    expect(e.oldDfid!.name!.toString()).to.equal('old');
    expect(e.newDfid!.name!.toString()).to.equal('new-name');
    expect(e.dfid!.name).to.equal(undefined);
  });

  it('reads only the pidfd with fdsOnly, and still checks every length', () => {
    const rec = metadata({ mask: K.FAN_OPEN, fd: 9, pid: 5 }, [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { name: Buffer.from('x') }), pidfdInfo(12), errorInfo(-5, 1)]);
    const [e] = decodeEvents(rec, rec.length, true).events;
    expect(e).to.include({ mask: K.FAN_OPEN, fd: 9, pid: 5, pidfd: 12 });
    expect([e.dfid, e.error, e.malformed]).to.deep.equal([undefined, undefined, undefined]);
    // An info record whose length overruns the event is flagged as in a full decode.
    const bad = Buffer.from(rec);
    bad.writeUInt16LE(0xffff, K.FAN_EVENT_METADATA_LEN + K.INFO_HDR_OFF_LEN);
    expect(decodeEvents(bad, bad.length, true).events[0].malformed).to.match(/length 65535 invalid/);
    // A broken header stops the walk as in a full decode.
    const broken = Buffer.concat([rec, metadata({ mask: K.FAN_OPEN, vers: 2 })]);
    const r = decodeEvents(broken, broken.length, true);
    expect(r.events).to.have.length(1);
    expect(r.error).to.be.instanceOf(DecodeError).with.property('offset', rec.length);
  });

  it('counts and skips info records of unknown type', () => {
    const buf = metadata({ mask: K.FAN_OPEN }, [rawInfo(99, Buffer.alloc(8)), pidfdInfo(3)]);
    const e = decodeEvents(buf).events[0];
    expect(e.unknownInfo).to.equal(1);
    expect(e.pidfd).to.equal(3);
  });

  describe('broken headers stop the walk with a DecodeError at the right offset', () => {
    const good = metadata({ mask: K.FAN_OPEN, fd: 3 });
    const cases: Array<[string, Buffer, RegExp]> = [
      ['wrong version', metadata({ mask: K.FAN_OPEN, vers: 2 }), /metadata version 2, expected 3/],
      ['metadata_len below 24', metadata({ mask: K.FAN_OPEN, metaLen: 16 }), /metadata_len 16 below 24/],
      ['event_len below metadata_len', metadata({ mask: K.FAN_OPEN }, [], 20), /event_len 20 below metadata_len 24/],
      ['event_len past the buffer', metadata({ mask: K.FAN_OPEN }, [], 400), /event_len 400 past end/],
      ['fewer bytes than a header', Buffer.alloc(10), /truncated metadata: 10 of 24/],
    ];
    for (const [what, bad, msg] of cases) {
      it(what, () => {
        const { events, error } = decodeEvents(Buffer.concat([good, bad]));
        expect(events).to.have.length(1);
        expect(events[0].fd).to.equal(3);
        expect(error).to.be.instanceOf(DecodeError);
        expect(error!.offset).to.equal(24);
        expect(error!.message).to.match(msg);
      });
    }
  });

  describe('malformed info records keep the event, flagged', () => {
    const cases: Array<[string, Buffer[], RegExp]> = [
      ['info header cut short', [Buffer.from([1, 0])], /truncated info header/],
      ['info length below its header', [rawInfo(K.FAN_EVENT_INFO_TYPE_PIDFD, Buffer.alloc(4), 2)], /length 2 invalid/],
      ['info length past the record', [rawInfo(K.FAN_EVENT_INFO_TYPE_PIDFD, Buffer.alloc(4), 64)], /length 64 invalid/],
      ['file handle overrunning its record', [fidInfo(K.FAN_EVENT_INFO_TYPE_FID, { handleBytes: 200 })], /file handle of 200 bytes overruns/],
      ['fid record too short for a handle header', [rawInfo(K.FAN_EVENT_INFO_TYPE_FID, Buffer.alloc(8))], /fid info length 12 below 20/],
      ['name without NUL', [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { name: Buffer.from('abcd'), noNul: true })], /not NUL-terminated/],
      ['short pidfd record', [rawInfo(K.FAN_EVENT_INFO_TYPE_PIDFD, Buffer.alloc(0))], /pidfd info length 4 below 8/],
      ['short error record', [rawInfo(K.FAN_EVENT_INFO_TYPE_ERROR, Buffer.alloc(4))], /error info length 8 below 12/],
      ['short range record', [rawInfo(K.FAN_EVENT_INFO_TYPE_RANGE, Buffer.alloc(8))], /range info length 12 below 24/],
      ['short mnt record', [rawInfo(K.FAN_EVENT_INFO_TYPE_MNT, Buffer.alloc(4))], /mnt info length 8 below 16/],
    ];
    for (const [what, infos, msg] of cases) {
      it(what, () => {
        const next = metadata({ mask: K.FAN_ACCESS, fd: 9 });
        const { events, error } = decodeEvents(Buffer.concat([metadata({ mask: K.FAN_OPEN_PERM, fd: 5 }, infos), next]));
        expect(error).to.equal(undefined);
        expect(events.map((e) => e.fd)).to.deep.equal([5, 9]);
        expect(events[0].malformed).to.match(msg);
      });
    }
  });

  it('decodes only the first `length` bytes', () => {
    const two = Buffer.concat([metadata({ mask: K.FAN_OPEN, fd: 1 }), metadata({ mask: K.FAN_OPEN, fd: 2 })]);
    expect(decodeEvents(two, 24).events.map((e) => e.fd)).to.deep.equal([1]);
  });

  it('never throws on any truncation, and errs exactly when a record is cut', () => {
    const recs = [
      metadata({ mask: K.FAN_CREATE }, [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { name: Buffer.from('file') }), pidfdInfo(4)]),
      metadata({ mask: K.FAN_OPEN_PERM, fd: 6 }, [rangeInfo(0n, 10n)]),
      metadata({ mask: K.FAN_RENAME }, [fidInfo(K.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, { name: Buffer.from('a') }), fidInfo(K.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, { name: Buffer.from('b') })]),
    ];
    const buf = Buffer.concat(recs);
    const ends = recs.reduce<number[]>((acc, r) => [...acc, (acc[acc.length - 1] ?? 0) + r.length], []);
    for (let n = 0; n <= buf.length; n++) {
      const { events, error } = decodeEvents(buf.subarray(0, n));
      const whole = ends.filter((e) => e <= n).length;
      expect(events, `prefix ${n}`).to.have.length(whole);
      expect(error !== undefined, `prefix ${n}`).to.equal(!ends.includes(n) && n !== 0);
      for (const e of events) expect(e.malformed, `prefix ${n}`).to.equal(undefined);
    }
  });

  it('survives 20,000 seeded random and mutated buffers', () => {
    const rnd = seededRandom(0x2545f491);
    const base = Buffer.concat([
      metadata({ mask: K.FAN_CREATE }, [fidInfo(K.FAN_EVENT_INFO_TYPE_DFID_NAME, { name: Buffer.from('x') }), errorInfo(1, 1)]),
      metadata({ mask: K.FAN_OPEN_PERM, fd: 6 }, [rangeInfo(0n, 1n), mntInfo(1n)]),
    ]);
    for (let i = 0; i < 20_000; i++) {
      let buf: Buffer;
      if (i % 4 === 0) {
        buf = Buffer.alloc(Math.floor(rnd() * 200));
        for (let j = 0; j < buf.length; j++) buf[j] = rnd() * 256;
        if (buf.length > 6 && rnd() < 0.5) buf[4] = K.FANOTIFY_METADATA_VERSION;
      } else {
        buf = Buffer.from(base);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let f = 0; f < flips; f++) buf[Math.floor(rnd() * buf.length)] = rnd() * 256;
        if (rnd() < 0.3) buf = buf.subarray(0, Math.floor(rnd() * buf.length));
      }
      const { events, error } = decodeEvents(buf);
      if (error) expect(error).to.be.instanceOf(DecodeError);
      for (const e of events) {
        expect(e.offset).to.be.within(0, buf.length - K.FAN_EVENT_METADATA_LEN);
      }
    }
  });
});
