// fanotify-export beside the real daemon (a child on a unix socket) and a
// real nats-server: opens of files in a directory this test made, under a
// notification mark only, arrive in the stream exactly once by sequence,
// with path, process and the node, watch and boot id headers; through an
// exporter SIGKILL (repeats dropped by Nats-Msg-Id) and a nats-server
// SIGKILL and restart on its store; with one gap record of the exact range
// when the daemon's resume buffer overflowed while the exporter was
// stopped; and from two daemons with different node names into one
// stream, read back by `fanctl watch --from`. Openers are children with a
// time limit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { startDaemon, tempDir, withKernelQueue, type Daemon } from '../fixtures/harness';
import { decodeStored as decode, expectCovered, openFiles as opener } from '../fixtures/export-stream';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { skipWithoutNats, readStream, startNats, streamCount, type NatsServer } from '../fixtures/nats';
import { fanctlLines } from '../fixtures/fanctl';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

describe('e2e: fanotify-export with the daemon', function () {
  this.timeout(300_000);
  let nats: NatsServer;
  let daemon: Daemon;
  let dir: string;
  let subscribe: string;
  const exporters: ExporterProcess[] = [];
  /** A second daemon and its directory, for the test with two nodes. */
  let other: { daemon?: Daemon; dir: string } | undefined;

  before(function () {
    skipWithoutNats(this);
  });

  beforeEach(async () => {
    dir = tempDir('fanotify-export-dir-');
    subscribe = subscribeFile(dir);
    nats = await startNats();
  });

  afterEach(async () => {
    for (const e of exporters.splice(0)) await e.kill();
    await daemon?.stop();
    await other?.daemon?.stop();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    if (other) fs.rmSync(other.dir, { recursive: true, force: true });
    other = undefined;
  });

  const exporter = async (extra: string[] = [], o: { daemon?: Daemon; subscribe?: string; node?: string } = {}) => {
    const e = await startExporter(['--daemon', (o.daemon ?? daemon).address, '--subscribe', o.subscribe ?? subscribe, '--nats', nats.url, '--node', o.node ?? 'host-1', '--watch', 'opens', '--cursor-interval-ms', '2000', ...extra]);
    exporters.push(e);
    await waitFor(() => e.logs.some((l) => l.msg === 'subscribed' || l.msg === 'attached'), 10_000, 'the exporter to subscribe or attach');
    return e;
  };
  const makeFiles = (n: number, where = dir) => {
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(where, `f${i}`), '');
  };
  const stored = () => streamCount(nats.url, STREAM);
  const markerStored = async (tag: string) => (await readStream(nats.url, STREAM)).some((m) => m.headers['Fanotify-Record'] === 'event' && decode([m]).events[0].path.endsWith(`/marker${tag}`));

  it('100,000 opens arrive in the stream exactly once each, with path, process, node, watch and boot id', async () => {
    makeFiles(100_000);
    daemon = await startDaemon();
    // A kernel queue that holds every open: on a loaded machine the daemon may fall behind the opener for a while,
    // and the kernel's default 16,384 would then drop events (an Overflow record) before the exporter is involved.
    const e = await withKernelQueue(200_000, () => exporter());
    const child = opener(dir, 0, 100_000, 'a');
    const result = await child.done;
    expect(result.code, result.stderr).to.equal(0);
    await waitFor(async () => (await stored()) >= 100_001, 180_000, '100,001 events in the stream', 250);
    expect(await e.stop()).to.equal(0);
    const messages = await readStream(nats.url, STREAM);
    const m = messages[4711];
    expect(m.subject).to.equal('fanotify.host-1.open');
    const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    expect(m.headers).to.include({ 'Fanotify-Node': 'host-1', 'Fanotify-Watch': 'opens', 'Fanotify-Boot-Id': bootId, 'Nats-Msg-Id': `host-1/opens/${m.headers['Fanotify-Sequence']}` });
    const s = decode(messages);
    expect(s.gaps).to.deep.equal([]);
    expect(expectCovered(s)).to.equal(100_001);
    const paths = new Set(s.events.map((x) => x.path));
    expect(paths.size).to.equal(100_001);
    for (const i of [0, 4711, 99_999]) expect(paths.has(path.join(dir, `f${i}`))).to.equal(true);
    expect(s.events.every((x) => x.pid === result.pid)).to.equal(true);
  });

  it('the exporter killed with SIGKILL mid-run and restarted: exactly once, no gap', async () => {
    makeFiles(40_000);
    daemon = await startDaemon();
    const first = await exporter();
    const child = opener(dir, 0, 40_000, 'k');
    await waitFor(async () => (await stored()) >= 5_000, 60_000, 'some events stored', 20);
    await first.kill();
    expect((await child.done).code).to.equal(0);
    const second = await exporter();
    await waitFor(async () => (await stored()) >= 40_001, 120_000, '40,001 events in the stream', 250);
    expect(second.logs.find((l) => l.msg === 'attached'), 'the restarted exporter attached to the lingering watch').to.not.equal(undefined);
    expect(await second.stop()).to.equal(0);
    // What was stored after the last cursor write (every 2 s) was found again: read back and skipped, or sent again
    // and dropped by the broker by Nats-Msg-Id. Without either it would have been stored twice.
    const stopped = second.logs.find((l) => l.msg === 'stopped')!;
    expect(Number(stopped.skipped) + Number(stopped.duplicates)).to.be.greaterThan(0);
    const s = decode(await readStream(nats.url, STREAM));
    expect(s.gaps).to.deep.equal([]);
    expect(expectCovered(s)).to.equal(40_001);
  });

  it('nats-server killed and restarted on its file store: the exporter waits, reconnects, nothing lost or repeated', async () => {
    makeFiles(40_000);
    daemon = await startDaemon();
    // A short ack timeout: publishes the dead server never answered are sent again soon after it is back.
    const e = await exporter(['--ack-timeout-ms', '1000']);
    // Far more opens than the exporter publishes in the time it takes to see 2,000 stored: the kill comes mid-stream, a window in flight.
    const first = opener(dir, 0, 30_000, '1');
    await waitFor(async () => (await stored()) >= 2_000, 60_000, 'some events stored', 20);
    await nats.kill();
    expect((await first.done).code).to.equal(0);
    // Opens while nats-server is down: the daemon holds them until the exporter can publish again.
    expect((await opener(dir, 30_000, 40_000, '2').done).code).to.equal(0);
    await nats.restart();
    await waitFor(async () => (await stored()) >= 40_002, 120_000, '40,002 events in the stream', 250);
    expect(await e.stop()).to.equal(0);
    const stopped = e.logs.find((l) => l.msg === 'stopped')!;
    expect(Number(stopped.retries), 'publishes sent again while the server was down').to.be.greaterThan(0);
    const s = decode(await readStream(nats.url, STREAM));
    expect(s.gaps).to.deep.equal([]);
    expect(expectCovered(s)).to.equal(40_002);
    expect(new Set(s.events.map((x) => x.path)).size).to.equal(40_002);
    // The stream may hold a publish sent again after the kill behind later ones; fanctl prints the node's events in order.
    const storedOrder = s.events.map((x) => x.sequence);
    console.log(`      stream order broken at ${storedOrder.filter((q, i) => i > 0 && q < storedOrder[i - 1]).length} place(s)`);
    const json = await fanctlLines(['watch', '--from', nats.url, '--json'], 40_002);
    expect(json.code, json.err).to.equal(0);
    const printed = json.out.map((l) => Number((JSON.parse(l) as { event: { sequence: string } }).event.sequence));
    expect(printed).to.deep.equal(Array.from({ length: 40_002 }, (_, i) => i + 1));
  });

  it("the daemon's resume buffer overflows while the exporter is stopped: one gap record with the exact range", async () => {
    makeFiles(30_000);
    daemon = await startDaemon(['--resume-buffer-bytes', String(256 * 1024)]);
    const first = await exporter();
    expect((await opener(dir, 0, 100, '1').done).code).to.equal(0);
    await waitFor(() => markerStored('1'), 30_000, 'the first marker stored', 100);
    expect(await first.stop()).to.equal(0);
    const cursor = Number(first.logs.find((l) => l.msg === 'stopped')!.cursor);
    expect(cursor).to.equal(101);
    // Far more than 256 KiB of events while nobody reads: the oldest chunks go.
    expect((await opener(dir, 100, 30_000, '2').done).code).to.equal(0);
    const second = await exporter();
    await waitFor(() => markerStored('2'), 60_000, 'the second marker stored', 250);
    expect(await second.stop()).to.equal(0);
    const messages = await readStream(nats.url, STREAM);
    const s = decode(messages);
    expect(s.gaps.length).to.equal(1);
    const gap = messages.find((m) => m.headers['Fanotify-Record'] === 'gap')!;
    expect(gap.subject).to.equal('fanotify.host-1.gap');
    expect(gap.headers['Nats-Msg-Id']).to.equal(`host-1/opens/gap/${s.gaps[0].from}-${s.gaps[0].to}`);
    // Exact: it starts right after what was exported and ends right before the first event the daemon still held.
    expect(s.gaps[0].from).to.equal(cursor + 1);
    const after = s.events.filter((x) => x.sequence > cursor).map((x) => x.sequence);
    expect(Math.min(...after)).to.equal(s.gaps[0].to + 1);
    expect(s.gaps[0].to - s.gaps[0].from + 1).to.be.greaterThan(1000);
    expect(expectCovered(s)).to.equal(30_002);
  });

  it('two daemons with different node names export into one stream; fanctl watch --from shows both, tagged, in order per node', async () => {
    const N = 1_000;
    other = { dir: tempDir('fanotify-export-dir-') };
    makeFiles(N);
    makeFiles(N, other.dir);
    daemon = await startDaemon();
    other.daemon = await startDaemon();
    await exporter([], { node: 'host-a' });
    await exporter([], { node: 'host-b', daemon: other.daemon, subscribe: subscribeFile(other.dir) });
    // Both at once, so the two nodes' events interleave in the stream.
    const openers = { 'host-a': opener(dir, 0, N, 'a'), 'host-b': opener(other.dir, 0, N, 'b') };
    const done = { 'host-a': await openers['host-a'].done, 'host-b': await openers['host-b'].done };
    for (const r of Object.values(done)) expect(r.code, r.stderr).to.equal(0);
    await waitFor(async () => (await stored()) >= 2 * N + 2, 60_000, `${2 * N + 2} events in the stream`, 50);
    for (const e of exporters) expect(await e.stop()).to.equal(0);
    expect(await stored()).to.equal(2 * N + 2);
    const nodes = { 'host-a': { dir, tag: 'a', pid: done['host-a'].pid }, 'host-b': { dir: other.dir, tag: 'b', pid: done['host-b'].pid } };
    // The files each node's opener opened, in the order it opened them.
    const opened = (node: keyof typeof nodes) => [...Array.from({ length: N }, (_, i) => path.join(nodes[node].dir, `f${i}`)), path.join(nodes[node].dir, `marker${nodes[node].tag}`)];

    const lines = await fanctlLines(['watch', '--from', nats.url], 2 * N + 2);
    expect(lines.code, lines.err).to.equal(0);
    expect(lines.out.length).to.equal(2 * N + 2);
    const stamp = '\\d\\d:\\d\\d:\\d\\d\\.\\d{3}';
    for (const node of ['host-a', 'host-b'] as const) {
      // No comm for events the daemon read after the opener had exited: the pid alone is certain then.
      const line = new RegExp(`^\\[${node}\\] ${stamp} \\S*\\(${nodes[node].pid}\\): OPEN (\\S+)$`);
      const mine = lines.out.filter((l) => l.startsWith(`[${node}] `));
      const want = opened(node);
      expect(mine.length).to.equal(N + 1);
      const wrong = mine.findIndex((l, i) => line.exec(l)?.[1] !== want[i]);
      expect(wrong, `line ${wrong} is not "${node} ... OPEN ${want[wrong]}": ${mine[wrong]}`).to.equal(-1);
    }

    const json = await fanctlLines(['watch', '--from', nats.url, '--json'], 2 * N + 2);
    expect(json.code, json.err).to.equal(0);
    const docs = json.out.map((l) => JSON.parse(l) as { target: string; event: { sequence: string; path: string; process: { pid: number } } });
    for (const node of ['host-a', 'host-b'] as const) {
      const mine = docs.filter((d) => d.target === node);
      expect(mine.map((d) => d.event.sequence)).to.deep.equal(Array.from({ length: N + 1 }, (_, i) => String(i + 1)));
      expect(mine.map((d) => d.event.path)).to.deep.equal(opened(node));
      expect(mine.every((d) => d.event.process.pid === nodes[node].pid)).to.equal(true);
    }
    expect(docs.length).to.equal(2 * N + 2);

    // --node picks one node (a filter on the server); --since 1 starts at the stream's first message.
    const one = await fanctlLines(['watch', '--from', nats.url, '--node', 'host-b', '--json', '--since', '1'], N + 1);
    expect(one.code, one.err).to.equal(0);
    const picked = one.out.map((l) => JSON.parse(l) as { target: string; event: { path: string } });
    expect(new Set(picked.map((d) => d.target))).to.deep.equal(new Set(['host-b']));
    expect(picked.map((d) => d.event.path)).to.deep.equal(opened('host-b'));
  });
});
