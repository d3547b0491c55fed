// fanotify-export --batch beside the real daemon and a real nats-server:
// events of a busy watch go out as EventBatch records, each event exactly
// once, through an exporter SIGKILL (the restarted one reads back what was
// stored past its cursor instead of sending it again in other batches),
// and fanctl watch --from prints the events inside them as a live watch
// does. Openers are children with a time limit; notification marks only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { startDaemon, tempDir, withKernelQueue, type Daemon } from '../fixtures/harness';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { decodeStored, expectCovered, lastStoredSequence, openFiles as opener } from '../fixtures/export-stream';
import { skipWithoutNats, readStream, startNats, type NatsServer } from '../fixtures/nats';
import { fanctlLines } from '../fixtures/fanctl';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

describe('e2e: fanotify-export --batch with the daemon', function () {
  this.timeout(300_000);
  let nats: NatsServer;
  let daemon: Daemon | undefined;
  let dir: string;
  const exporters: ExporterProcess[] = [];

  before(function () {
    skipWithoutNats(this);
  });

  beforeEach(async () => {
    dir = tempDir('fanotify-export-batch-');
    nats = await startNats();
  });

  afterEach(async () => {
    for (const e of exporters.splice(0)) await e.kill();
    await daemon?.stop();
    daemon = undefined;
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const exporter = async (extra: string[] = []) => {
    const e = await startExporter(['--daemon', daemon!.address, '--subscribe', subscribeFile(dir), '--nats', nats.url, '--node', 'host-1', '--watch', 'opens', '--batch', '64', ...extra]);
    exporters.push(e);
    return e;
  };
  const stored = () => lastStoredSequence(nats.url, STREAM, 'fanotify.host-1.>');

  it('the exporter killed with SIGKILL mid-run and restarted: every event once, in batches, what was stored past the cursor read back', async () => {
    const n = 40_000;
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
    daemon = await startDaemon();
    // The cursor is written every 2 s: what the first exporter stored after its last write is stored past the cursor.
    const first = await withKernelQueue(100_000, () => exporter(['--cursor-interval-ms', '2000']));
    await waitFor(() => first.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
    const child = opener(dir, 0, n);
    await waitFor(async () => (await stored()) >= 5_000, 60_000, 'some events stored', 20);
    await first.kill();
    const done = await child.done;
    expect(done.code, done.stderr).to.equal(0);
    const second = await exporter();
    await waitFor(async () => (await stored()) >= n, 120_000, `${n} events in the stream`, 250);
    const readBack = second.logs.find((l) => l.msg === 'read back what was stored past the cursor');
    expect(Number(readBack?.sequences), 'the restarted exporter found events stored past its cursor').to.be.greaterThan(0);
    expect(await second.stop()).to.equal(0);
    const s = decodeStored(await readStream(nats.url, STREAM));
    expect(s.gaps).to.deep.equal([]);
    expect(expectCovered(s)).to.equal(n);
    expect(new Set(s.events.map((e) => e.path)).size).to.equal(n);
    expect(s.events.every((e) => e.pid === done.pid)).to.equal(true);
    // Batches formed while the broker was the bottleneck; how full depends on the machine, so only that some held several.
    expect(s.batches.length).to.be.greaterThan(0);
    expect(Math.max(...s.batches)).to.be.greaterThan(1);
  });

  it('with --format json: fanctl watch --from prints every event inside the batch records, in order, as lines and as JSON', async () => {
    const n = 2_000;
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
    daemon = await startDaemon();
    const e = await exporter(['--format', 'json']);
    await waitFor(() => e.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
    expect((await opener(dir, 0, n).done).code).to.equal(0);
    await waitFor(async () => (await stored()) >= n, 60_000, `${n} events in the stream`, 100);
    const messages = await readStream(nats.url, STREAM);
    expect(messages.some((m) => m.headers['Fanotify-Record'] === 'batch' && m.data[0] === 0x7b), 'a JSON batch record').to.equal(true);
    const lines = await fanctlLines(['watch', '--from', nats.url], n);
    expect(lines.code, lines.err).to.equal(0);
    const files = lines.out.map((l) => /^\[host-1\] .* OPEN .*\/f(\d+)$/.exec(l)?.[1]);
    expect(files).to.deep.equal(Array.from({ length: n }, (_, i) => String(i)));
    const json = await fanctlLines(['watch', '--from', nats.url, '--json'], n);
    const docs = json.out.map((l) => JSON.parse(l) as { target: string; event: { sequence: string } });
    expect(docs.map((d) => `${d.target}:${d.event.sequence}`)).to.deep.equal(Array.from({ length: n }, (_, i) => `host-1:${i + 1}`));
  });
});
