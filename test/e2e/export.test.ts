// fanotify-export against a real nats-server with JetStream (loopback, temp
// store) and a stand-in daemon that speaks the named-watch contract (Attach,
// Event.sequence, Gap), for what the real daemon does not readily produce:
// a watch that closed and was opened anew, numbered from 1 again. Exactly
// once through exporter and nats-server kills, gap records, and two nodes
// read back by fanctl are tested with the real daemon in
// export-daemon.test.ts.
import { expect } from 'chai';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { FakeWatchDaemon } from '../fixtures/fake-watch-daemon';
import { skipWithoutNats, readStream, startNats, streamCount, type NatsServer } from '../fixtures/nats';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

describe('e2e: fanotify-export to NATS JetStream', function () {
  this.timeout(180_000);
  let nats: NatsServer;
  let daemon: FakeWatchDaemon;
  const exporters: ExporterProcess[] = [];
  const subscribe = subscribeFile('/fake');

  before(function () {
    skipWithoutNats(this);
  });

  beforeEach(async () => {
    nats = await startNats();
  });

  afterEach(async () => {
    for (const e of exporters.splice(0)) await e.kill();
    await daemon?.stop();
    await nats?.stop();
  });

  const exporter = async () => {
    const e = await startExporter(['--daemon', daemon.address, '--subscribe', subscribe, '--nats', nats.url, '--node', 'node-a', '--watch', 'fleet']);
    exporters.push(e);
    return e;
  };

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
});
