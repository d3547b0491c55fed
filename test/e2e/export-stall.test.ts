// A JetStream that stalls (nats-server stopped with SIGSTOP, its
// connections left open) beside the real daemon: the daemon goes on
// serving its other clients at once, its named watch's resume buffer
// fills and drops its oldest events at its limit, and once the server
// runs again the exporter publishes gap records with the exact ranges and
// every other event exactly once. Openers are children with a time
// limit; notification marks only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, startDaemon, tempDir, WatchStream, withKernelQueue, type Client, type Daemon } from '../fixtures/harness';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { decodeStored, expectCovered, lastStoredSequence, openFiles as opener } from '../fixtures/export-stream';
import { skipWithoutNats, readStream, startNats, type NatsServer } from '../fixtures/nats';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

describe('e2e: fanotify-export when JetStream stalls', function () {
  this.timeout(300_000);
  let nats: NatsServer | undefined;
  let daemon: Daemon | undefined;
  let client: Client | undefined;
  let watch: WatchStream | undefined;
  let exporter: ExporterProcess | undefined;
  let dir: string;

  before(function () {
    skipWithoutNats(this);
  });

  afterEach(async () => {
    if (nats) process.kill(nats.pid, 'SIGCONT');
    watch?.cancel();
    client?.close();
    await exporter?.kill();
    await daemon?.stop();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the daemon's other clients get every event at once, its buffer drops at its limit, and the exporter then publishes exact gap records", async () => {
    const n = 30_000;
    dir = tempDir('fanotify-export-stall-');
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
    nats = await startNats();
    // A client queue that holds them all too: this test's own client decodes every event into objects, slower than the opener.
    daemon = await startDaemon(['--resume-buffer-bytes', String(256 * 1024), '--queue-capacity', '100000']);
    // Kernel queues that hold every open: an Overflow from the kernel is not what this test is about.
    exporter = await withKernelQueue(100_000, async () => {
      const e = await startExporter(['--daemon', daemon!.address, '--subscribe', subscribeFile(dir), '--nats', nats!.url, '--node', 'host-1', '--watch', 'opens', '--ack-timeout-ms', '1000']);
      await waitFor(() => e.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
      return e;
    });
    expect((await opener(dir, 0, 100).done).code).to.equal(0);
    await waitFor(async () => (await lastStoredSequence(nats!.url, STREAM, 'fanotify.host-1.>')) >= 100, 30_000, 'the first 100 stored', 100);

    process.kill(nats.pid, 'SIGSTOP');
    client = connect(daemon.address);
    await withKernelQueue(100_000, async () => {
      watch = new WatchStream(client!, { max_batch_events: 4096, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
      await watch.subscribed();
    });
    const done = await opener(dir, 100, n).done;
    expect(done.code, done.stderr).to.equal(0);
    // While JetStream answers nothing, the daemon serves its other stream every event.
    await watch!.until(() => watch!.events.length >= n - 100, 60_000, `${n - 100} events on the other stream`);
    expect(watch!.responses.filter((r) => r.overflow)).to.deep.equal([]);
    expect(exporter.logs.some((l) => l.msg === 'publish not acknowledged; sending it again'), 'the exporter saw the stall').to.equal(true);

    process.kill(nats.pid, 'SIGCONT');
    await waitFor(async () => (await lastStoredSequence(nats!.url, STREAM, 'fanotify.host-1.>')) >= n, 120_000, `sequence ${n} stored`, 250);
    const s = decodeStored(await readStream(nats.url, STREAM));
    // 256 KiB holds a few hundred of these events: most of the 29,900 went at the buffer's limit. Gap records, each
    // exact (HTTP/2 flow control lets a little through now and then during the stall, so there may be several), and
    // every other sequence stored once: nothing lost without a record, nothing twice.
    expect(s.gaps.length).to.be.greaterThan(0);
    expect(s.gaps.reduce((sum, g) => sum + g.to - g.from + 1, 0)).to.be.greaterThan(10_000);
    expect(expectCovered(s)).to.equal(n);
    const lastGap = Math.max(...s.gaps.map((g) => g.to));
    expect(s.events.filter((e) => e.sequence > lastGap).length, 'what the buffer held at its limit, exported after the last gap').to.be.greaterThan(0);
  });
});
