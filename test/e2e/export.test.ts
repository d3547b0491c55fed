// fanotify-export against a real nats-server with JetStream (loopback, temp
// store) and a stand-in daemon that speaks the named-watch contract (Attach,
// Event.sequence, Gap): exactly once by sequence through an exporter
// SIGKILL, a nats-server kill, and one gap record with the exact range when
// the daemon's buffer overflowed while the exporter was away.
import { expect } from 'chai';
import { CanonicalJson } from '../../src/client';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { fanctlLines } from '../fixtures/export-stream';
import { FAKE_BOOT_ID, FakeWatchDaemon } from '../fixtures/fake-watch-daemon';
import { natsServerMissing, readStream, startNats, streamCount, type NatsServer, type StoredMessage } from '../fixtures/nats';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

/** Sequences of the event records, with how often each was stored; the gap records apart. */
function bySequence(messages: StoredMessage[]): { counts: Map<string, number>; gaps: string[] } {
  const counts = new Map<string, number>();
  const gaps: string[] = [];
  for (const m of messages) {
    if (m.headers['Fanotify-Record'] === 'gap') gaps.push(m.headers['Fanotify-Sequence']);
    else counts.set(m.headers['Fanotify-Sequence'], (counts.get(m.headers['Fanotify-Sequence']) ?? 0) + 1);
  }
  return { counts, gaps };
}

/** Every sequence in from..to stored exactly once, nothing else. */
function expectExactlyOnce(counts: Map<string, number>, from: number, to: number): void {
  const wrong: string[] = [];
  for (let s = from; s <= to; s++) if (counts.get(String(s)) !== 1) wrong.push(`${s}x${counts.get(String(s)) ?? 0}`);
  expect(wrong.slice(0, 10), `${wrong.length} sequences not stored exactly once`).to.deep.equal([]);
  expect(counts.size).to.equal(to - from + 1);
}

describe('e2e: fanotify-export to NATS JetStream', function () {
  this.timeout(180_000);
  let nats: NatsServer;
  let daemon: FakeWatchDaemon;
  const exporters: ExporterProcess[] = [];
  const subscribe = subscribeFile('/fake');

  before(function () {
    const missing = natsServerMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
  });

  beforeEach(async () => {
    nats = await startNats();
  });

  afterEach(async () => {
    for (const e of exporters.splice(0)) await e.kill();
    await daemon?.stop();
    await nats?.stop();
  });

  const exporter = async (extra: string[] = []) => {
    const e = await startExporter(['--daemon', daemon.address, '--subscribe', subscribe, '--nats', nats.url, '--node', 'node-a', '--watch', 'fleet', ...extra]);
    exporters.push(e);
    return e;
  };

  it('100,000 events arrive exactly once each, with path, process, node, watch and boot id', async () => {
    daemon = await new FakeWatchDaemon().start();
    const e = await exporter();
    const watch = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe');
    for (let i = 0; i < 100; i++) watch.emit(1000);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 100_000, 120_000, '100,000 messages in the stream', 200);
    expect(await e.stop()).to.equal(0);
    const messages = await readStream(nats.url, STREAM);
    const { counts, gaps } = bySequence(messages);
    expect(gaps).to.deep.equal([]);
    expectExactlyOnce(counts, 1, 100_000);
    const json = CanonicalJson.load();
    const m = messages[4711];
    const event = json.message('fanotify.v1.Event', m.data) as { sequence: string; path: string; process: { pid: number; comm: string } };
    expect(m.subject).to.equal('fanotify.node-a.open');
    expect(event.sequence).to.equal(m.headers['Fanotify-Sequence']);
    expect(event.path).to.equal(`/fake/fleet/file-${event.sequence}`);
    expect(event.process.comm).to.equal('opener');
    expect(m.headers).to.include({ 'Fanotify-Node': 'node-a', 'Fanotify-Watch': 'fleet', 'Fanotify-Boot-Id': FAKE_BOOT_ID, 'Nats-Msg-Id': `node-a/fleet/${event.sequence}` });
  });

  it('an exporter killed with SIGKILL mid-run and restarted: exactly once, no gap', async () => {
    daemon = await new FakeWatchDaemon().start();
    // A long cursor interval: the restart surely sends again what was acknowledged after the last cursor write.
    const first = await exporter(['--cursor-interval-ms', '3000']);
    const watch = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe');
    for (let i = 0; i < 30; i++) watch.emit(1000);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 10_000, 60_000, 'some messages stored', 50);
    await first.kill();
    for (let i = 0; i < 30; i++) watch.emit(1000);
    const second = await exporter(['--cursor-interval-ms', '3000']);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 60_000, 120_000, '60,000 messages in the stream', 200);
    expect(await second.stop()).to.equal(0);
    const stopped = second.logs.find((l) => l.msg === 'stopped')!;
    // The broker dropped repeats: without Nats-Msg-Id they would have been stored twice.
    expect(Number(stopped.duplicates)).to.be.greaterThan(0);
    const { counts, gaps } = bySequence(await readStream(nats.url, STREAM));
    expect(gaps).to.deep.equal([]);
    expectExactlyOnce(counts, 1, 60_000);
  });

  it('nats-server killed and restarted on its file store: the exporter waits, reconnects, nothing lost or repeated', async () => {
    daemon = await new FakeWatchDaemon().start();
    const e = await exporter(['--ack-timeout-ms', '1000']);
    const watch = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe');
    for (let i = 0; i < 20; i++) watch.emit(1000);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 5_000, 60_000, 'some messages stored', 50);
    await nats.kill();
    for (let i = 0; i < 20; i++) watch.emit(1000);
    await nats.restart();
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 40_000, 120_000, '40,000 messages in the stream', 200);
    expect(await e.stop()).to.equal(0);
    const stopped = e.logs.find((l) => l.msg === 'stopped')!;
    expect(Number(stopped.retries), 'publishes sent again while the server was down').to.be.greaterThan(0);
    const { counts, gaps } = bySequence(await readStream(nats.url, STREAM));
    expect(gaps).to.deep.equal([]);
    expectExactlyOnce(counts, 1, 40_000);
  });

  it("the daemon's buffer overflows while the exporter is stopped: one gap record with the exact range", async () => {
    daemon = await new FakeWatchDaemon(1_000).start();
    const first = await exporter();
    const watch = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe');
    watch.emit(500);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 500, 30_000, '500 messages stored', 50);
    expect(await first.stop()).to.equal(0);
    // 1,700 more while nobody reads: the buffer keeps the last 1,000 (1201..2200), 501..1200 are gone.
    watch.emit(1_700);
    const second = await exporter();
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 1_501, 30_000, 'the rest and the gap record stored', 50);
    expect(await second.stop()).to.equal(0);
    const messages = await readStream(nats.url, STREAM);
    const { counts, gaps } = bySequence(messages);
    expect(gaps).to.deep.equal(['501-1200']);
    const gap = messages.find((m) => m.headers['Fanotify-Record'] === 'gap')!;
    expect(gap.subject).to.equal('fanotify.node-a.gap');
    expect(CanonicalJson.load().message('fanotify.v1.Gap', gap.data)).to.deep.equal({ fromSequence: '501', toSequence: '1200' });
    const events = [...counts.keys()].map(Number);
    expect(events.filter((s) => s > 500 && s <= 1200)).to.deep.equal([]);
    expectExactlyOnce(new Map([...counts].filter(([s]) => Number(s) <= 500)), 1, 500);
    expectExactlyOnce(new Map([...counts].filter(([s]) => Number(s) > 1200)), 1201, 2200);
  });

  it('a watch that closed and is opened anew: a gap record with no end, and the new numbering in new msgIds, none dropped as repeats', async () => {
    daemon = await new FakeWatchDaemon().start();
    const first = await exporter();
    (await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe')).emit(100);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 100, 30_000, '100 messages stored', 50);
    expect(await first.stop()).to.equal(0);
    daemon.close('fleet');
    const second = await exporter();
    const again = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'the exporter to subscribe again');
    again.emit(50);
    await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 151, 30_000, 'the gap record and 50 new events stored', 50);
    expect(await second.stop()).to.equal(0);
    const messages = await readStream(nats.url, STREAM);
    expect(messages.map((m) => m.headers['Nats-Msg-Id']).slice(98, 102)).to.deep.equal(['node-a/fleet/99', 'node-a/fleet/100', 'node-a/fleet/gap/101-0', 'node-a/fleet@1/1']);
    expect(messages.length).to.equal(151);
    expect(messages[150].headers).to.include({ 'Nats-Msg-Id': 'node-a/fleet@1/50', 'Fanotify-Epoch': '1' });
  });

  it('two daemons with different node names export into one stream; fanctl watch --from shows both, tagged, in order per node', async () => {
    daemon = await new FakeWatchDaemon().start();
    const other = await new FakeWatchDaemon().start();
    try {
      await exporter();
      exporters.push(await startExporter(['--daemon', other.address, '--subscribe', subscribe, '--nats', nats.url, '--node', 'node-b', '--watch', 'fleet']));
      const a = await waitFor(() => daemon.watches.get('fleet'), 10_000, 'node-a to subscribe');
      const b = await waitFor(() => other.watches.get('fleet'), 10_000, 'node-b to subscribe');
      for (let i = 0; i < 10; i++) {
        a.emit(100);
        b.emit(100);
      }
      await waitFor(async () => (await streamCount(nats.url, STREAM)) >= 2_000, 60_000, '2,000 messages in the stream', 50);
      const lines = await fanctlLines(['watch', '--from', nats.url], 2_000);
      expect(lines.code, lines.err).to.equal(0);
      for (const node of ['node-a', 'node-b']) {
        const mine = lines.out.filter((l) => l.startsWith(`[${node}] `));
        expect(mine.length).to.equal(1_000);
        expect(mine[0]).to.match(new RegExp(`^\\[${node}\\] \\d\\d:\\d\\d:\\d\\d\\.\\d{3} opener\\(\\d+\\): OPEN /fake/fleet/file-1$`));
        const order = mine.map((l) => Number(/file-(\d+)$/.exec(l)![1]));
        expect(order).to.deep.equal(Array.from({ length: 1_000 }, (_, i) => i + 1));
      }
      // --node picks one; --json wraps each event with its node, as a live watch of several targets does.
      const json = await fanctlLines(['watch', '--from', nats.url, '--node', 'node-b', '--json', '--since', '1'], 1_000);
      const docs = json.out.map((l) => JSON.parse(l) as { target: string; event: { sequence: string; path: string } });
      expect(new Set(docs.map((d) => d.target))).to.deep.equal(new Set(['node-b']));
      expect(docs.map((d) => d.event.sequence)).to.deep.equal(Array.from({ length: 1_000 }, (_, i) => String(i + 1)));
    } finally {
      await other.stop();
    }
  });
});
