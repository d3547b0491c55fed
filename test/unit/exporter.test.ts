// The exporter against an in-memory broker that keeps messages, drops a
// repeated msgId as JetStream does, and can be cut off from one exporter
// (a crash: what it stored stays, its acknowledgments never come). With
// batches, the same events sent again after a restart make different
// messages, so only the read-back of what was stored past the cursor
// keeps them exactly once.
import { expect } from 'chai';
import { Exporter, type ExporterOptions } from '../../src/export/exporter';
import { StoredRanges } from '../../src/export/stored-ranges';
import type { ExportItem } from '../../src/export/items';
import type { Cursor, CursorStore, OutMessage, Sink, Stored, StoredHeaders } from '../../src/export/sink';
import type { Source, SourceHandlers } from '../../src/export/source';
import { wireEvents } from '../../src/export/wire-response';
import { silentLogger as quiet } from '../../src/common/log';
import { waitFor } from '../fixtures/wait';

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** A fanotify.v1.Event holding only its sequence (field 23) and a path (field 4). */
function eventBytes(seq: number): Uint8Array {
  const path = Buffer.from(`/d/f${seq}`);
  return Uint8Array.from([0xb8, 0x01, ...varint(seq), 0x22, path.length, ...path]);
}

/** A source of events 1..last, given in chunks, from any place; gaps where asked. */
class ListSource implements Source {
  private paused = false;
  private closed = false;
  constructor(
    private readonly last: number,
    private readonly gaps: Array<[number, number]> = [],
    /** Items per delivery: a replay after a restart comes in other chunks than the live events did. */
    private readonly chunk = 100,
    /** The watch is gone (its linger ran out): a restart item, then a new watch's events from 1. */
    private readonly anew = false,
  ) {}

  start(after: bigint, h: SourceHandlers): void {
    h.session({ bootId: 'boot', lastSequence: BigInt(this.last) });
    let next = Number(after) + 1;
    if (this.anew) {
      h.items([{ kind: 'restart', from: BigInt(next) }]);
      next = 1;
    }
    const step = () => {
      if (this.closed || next > this.last) return;
      if (this.paused) return void setTimeout(step, 1);
      const items: ExportItem[] = [];
      for (let n = 0; n < this.chunk && next <= this.last; n++) {
        const gap = this.gaps.find(([from]) => from === next);
        if (gap) {
          items.push({ kind: 'gap', from: BigInt(gap[0]), to: BigInt(gap[1]) });
          next = gap[1] + 1;
        } else {
          items.push({ kind: 'event', sequence: BigInt(next), type: 'open', bytes: eventBytes(next) });
          next++;
        }
      }
      h.items(items);
      setImmediate(step);
    };
    setImmediate(step);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

interface Kept {
  msg: OutMessage;
  headers: Map<string, string>;
}

class MemoryBroker {
  readonly kept: Kept[] = [];
  private readonly ids = new Map<string, number>();

  /** A connection to the broker; cut() is the exporter's crash: nothing more stored or acknowledged. */
  client(opts: { stallAfter?: number } = {}): Sink & { cut(): void } {
    let cut = false;
    const { kept, ids } = this;
    return {
      cut: () => (cut = true),
      publish(m: OutMessage): Promise<Stored> {
        if (cut) return new Promise(() => undefined);
        const seen = ids.get(m.msgId);
        if (seen !== undefined) return Promise.resolve({ duplicate: true, position: seen });
        kept.push({ msg: m, headers: new Map(m.headers) });
        const position = kept.length;
        ids.set(m.msgId, position);
        // Past stallAfter messages the broker stores but its acknowledgments are lost.
        if (opts.stallAfter !== undefined && position > opts.stallAfter) return new Promise(() => undefined);
        return new Promise((r) => setImmediate(() => r({ duplicate: false, position })));
      },
      lastPosition: async () => kept.length,
      async *readBack(position: number, filter: string): AsyncIterable<StoredHeaders> {
        const prefix = filter.replace(/>$/, '');
        for (const k of kept.slice(position)) if (k.msg.subject.startsWith(prefix)) yield k.headers;
      },
      close: async () => undefined,
    };
  }

  /** How many times each sequence of `epoch` is stored as an event. */
  counts(epoch = 0): Map<number, number> {
    const out = new Map<number, number>();
    for (const { msg, headers } of this.kept) {
      const record = headers.get('Fanotify-Record');
      if (record === 'gap' || Number(headers.get('Fanotify-Epoch') ?? 0) !== epoch) continue;
      const batch = record === 'batch' ? msg.payload : Uint8Array.from([0x0a, ...varint(msg.payload.length), ...msg.payload]);
      for (const e of wireEvents(Uint8Array.from([0x12, ...varint(batch.length), ...batch]))!) out.set(Number(e.sequence), (out.get(Number(e.sequence)) ?? 0) + 1);
    }
    return out;
  }

  gapRecords(): string[] {
    return this.kept.filter((k) => k.headers.get('Fanotify-Record') === 'gap').map((k) => k.headers.get('Fanotify-Sequence')!);
  }
}

class MemoryCursor implements CursorStore {
  value?: Cursor;
  frozen = false;
  constructor(private readonly keepPosition = true) {}
  async load(): Promise<Cursor | undefined> {
    return this.value;
  }
  async save(c: Cursor): Promise<void> {
    if (!this.frozen) this.value = this.keepPosition ? c : { ...c, position: undefined };
  }
}

function exporter(source: Source, sink: Sink, cursorStore: CursorStore, batch: number, more: Partial<ExporterOptions> = {}): Exporter {
  return new Exporter({ source, sink, cursorStore, records: { prefix: 'fanotify', node: 'n1', watch: 'w', format: 'protobuf' }, window: 8, batch, cursorIntervalMs: 10, log: quiet, ...more });
}

function expectOnce(counts: Map<number, number>, last: number, except: Set<number> = new Set()): void {
  const wrong: string[] = [];
  for (let q = 1; q <= last; q++) {
    const want = except.has(q) ? 0 : 1;
    if ((counts.get(q) ?? 0) !== want) wrong.push(`${q}x${counts.get(q) ?? 0}`);
  }
  expect(wrong.slice(0, 10)).to.deep.equal([]);
}

/** Exporter A stores some messages whose acknowledgments are lost, then crashes; B starts from the stored cursor. */
async function crashAndRestart(batch: number, keepPosition: boolean, gaps: Array<[number, number]> = [], anew = false): Promise<{ broker: MemoryBroker; b: Exporter }> {
  const broker = new MemoryBroker();
  const cursor = new MemoryCursor(keepPosition);
  const aSink = broker.client({ stallAfter: 40 });
  const a = exporter(new ListSource(20_000, gaps), aSink, cursor, batch);
  await a.start();
  await waitFor(() => broker.kept.length >= 48 && cursor.value !== undefined && cursor.value.sequence > 0n, 5_000, 'A to store and save a cursor');
  cursor.frozen = true;
  aSink.cut();
  await a.close(0);
  cursor.frozen = false;
  const b = exporter(new ListSource(20_000, gaps, 37, anew), broker.client(), cursor, batch);
  await b.start();
  await waitFor(() => b.cursor === 20_000n && (!anew || b.counters.gaps > 0), 10_000, 'B to export everything');
  await b.close();
  return { broker, b };
}

describe('unit: stored ranges', () => {
  const headers = (seq: string, extra: Record<string, string> = {}) => new Map(Object.entries({ 'Fanotify-Watch': 'w', 'Fanotify-Sequence': seq, ...extra }));
  async function* of(...h: Array<Map<string, string>>) {
    yield* h;
  }

  it("keeps only the watch's own epoch past the cursor, merged, and walks it forward", async () => {
    const found = await StoredRanges.read(of(headers('5-9'), headers('10'), headers('20-30'), headers('1-3'), headers('40', { 'Fanotify-Watch': 'x' }), headers('50', { 'Fanotify-Epoch': '1' }), headers('7-0')), 'w', 0, 6n);
    expect([found.epoch, found.cursor]).to.deep.equal([0, 6n]);
    const r = found.ranges;
    expect([r.count, r.last]).to.deep.equal([15n, 30n]);
    expect([6n, 7n, 10n, 11n, 19n, 20n, 30n, 31n].map((q) => r.has(q))).to.deep.equal([false, true, true, false, false, true, true, false]);
  });

  it("moves to the next epoch from its start when the run read back had published its watch's restart record", async () => {
    const restart = (seq: string, epoch: string) => headers(seq, { 'Fanotify-Record': 'gap', 'Fanotify-Epoch': epoch });
    const found = await StoredRanges.read(of(headers('7-9'), restart('10-0', '0'), headers('1-4', { 'Fanotify-Epoch': '1' }), headers('8', { 'Fanotify-Epoch': '1' })), 'w', 0, 6n);
    expect([found.epoch, found.cursor, found.ranges.count]).to.deep.equal([1, 0n, 5n]);
    expect([1n, 4n, 5n, 8n].map((q) => found.ranges.has(q))).to.deep.equal([true, true, false, true]);
  });

  it('gives the parts of a wider gap not stored yet', async () => {
    const { ranges: r } = await StoredRanges.read(of(headers('10-20'), headers('30-40')), 'w', 0, 0n);
    expect(r.missing(5n, 50n)).to.deep.equal([[5n, 9n], [21n, 29n], [41n, 50n]]);
    expect(r.missing(12n, 18n)).to.deep.equal([]);
  });
});

describe('unit: exporter', () => {
  it('sends what waits for the window as EventBatch messages, each event once, in order', async () => {
    const broker = new MemoryBroker();
    const e = exporter(new ListSource(5_000), broker.client(), new MemoryCursor(), 64);
    await e.start();
    await waitFor(() => e.cursor === 5_000n, 5_000, 'everything exported');
    await e.close();
    expectOnce(broker.counts(), 5_000);
    expect(broker.kept.length).to.be.below(5_000 / 4);
    const ranges = broker.kept.map((k) => k.headers.get('Fanotify-Sequence')!.split('-').map(Number));
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).to.equal(ranges[i - 1][ranges[i - 1].length - 1] + 1);
    const batch = broker.kept.find((k) => k.headers.get('Fanotify-Record') === 'batch')!;
    expect(batch.msg.subject).to.equal('fanotify.n1.batch');
    expect(batch.msg.msgId).to.equal(`n1/w/${batch.headers.get('Fanotify-Sequence')}`);
  });

  it("with --format json, a batch whose JSON outgrows the broker's largest message is cut smaller, nothing left out", async () => {
    const broker = new MemoryBroker();
    // A JSON three times the protobuf bytes, and a broker that takes 2 KiB of payload: 64 events fit as protobuf, not as JSON.
    const toJson = (_: string, bytes: Uint8Array) => ({ event: 'x'.repeat(bytes.length * 3) });
    const records = { prefix: 'fanotify', node: 'n1', watch: 'w', format: 'json' as const, toJson };
    const e = exporter(new ListSource(3_000), broker.client(), new MemoryCursor(), 64, { records, maxMessageBytes: 4096 + 2048 });
    await e.start();
    await waitFor(() => e.cursor === 3_000n, 5_000, 'everything exported');
    await e.close();
    expect(Math.max(...broker.kept.map((k) => k.msg.payload.length))).to.be.at.most(2048);
    const ranges = broker.kept.map((k) => k.headers.get('Fanotify-Sequence')!.split('-').map(Number));
    expect(ranges[0][0]).to.equal(1);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).to.equal(ranges[i - 1][ranges[i - 1].length - 1] + 1);
    expect(ranges[ranges.length - 1].at(-1)).to.equal(3_000);
    expect(ranges.some((x) => x.length === 2)).to.equal(true);
  });

  it('batches: messages stored whose acknowledgments were lost in a crash are read back and not sent again', async () => {
    const { broker, b } = await crashAndRestart(64, true);
    expectOnce(broker.counts(), 20_000);
    expect(b.counters.skipped).to.be.above(0);
  });

  it('batches without the read-back (a cursor that keeps no position): the same events go out again in other messages', async () => {
    const { broker } = await crashAndRestart(64, false);
    const twice = [...broker.counts().values()].filter((n) => n > 1).length;
    expect(twice).to.be.above(0);
  });

  it('one event per message: exactly once across the crash, repeats dropped by msgId or skipped', async () => {
    const { broker } = await crashAndRestart(1, true);
    expectOnce(broker.counts(), 20_000);
  });

  it('a watch opened anew after the crash: the new numbering is all sent, the restart record begins past what the old one stored', async () => {
    const { broker } = await crashAndRestart(64, true, [], true);
    const old = [...broker.counts(0).keys()];
    expect(old.length).to.be.greaterThan(0);
    expectOnce(broker.counts(1), 20_000);
    expect(broker.gapRecords()).to.deep.equal([`${Math.max(...old) + 1}-0`]);
  });

  it('a gap the daemon reports again after the crash is published only for what was not stored', async () => {
    const gaps: Array<[number, number]> = [[300, 399], [15_000, 15_099]];
    const { broker } = await crashAndRestart(64, true, gaps);
    const lost = new Set<number>();
    for (const [from, to] of gaps) for (let q = from; q <= to; q++) lost.add(q);
    expectOnce(broker.counts(), 20_000, lost);
    expect(broker.gapRecords().sort()).to.deep.equal(['15000-15099', '300-399']);
  });
});
