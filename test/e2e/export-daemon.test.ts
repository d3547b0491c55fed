// fanotify-export beside the real daemon (a child on a unix socket) and a
// real nats-server: opens of files in a directory this test made, under a
// notification mark only, arrive in the stream exactly once by sequence,
// with path and process; through an exporter SIGKILL; and with one gap
// record of the exact range when the daemon's resume buffer overflowed
// while the exporter was stopped. Openers are children with a time limit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { CanonicalJson } from '../../src/client';
import { runChild, startDaemon, tempDir, withKernelQueue, type Daemon } from '../fixtures/harness';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { natsServerMissing, readStream, startNats, streamCount, type NatsServer, type StoredMessage } from '../fixtures/nats';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';

/** A child that opens dir/f<from>..f<to-1> once each, then dir/marker<tag>. */
function opener(dir: string, from: number, to: number, tag: string) {
  const script = `const fs=require('fs');for(let i=${from};i<${to};i++)fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/f'+i,'r'));fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/marker${tag}','w'))`;
  return runChild(process.execPath, ['-e', script], 120_000);
}

interface Stored {
  events: Array<{ sequence: number; path: string; pid: number }>;
  gaps: Array<{ from: number; to: number }>;
}

function decode(messages: StoredMessage[]): Stored {
  const json = CanonicalJson.load();
  const out: Stored = { events: [], gaps: [] };
  for (const m of messages) {
    if (m.headers['Fanotify-Record'] === 'gap') {
      const g = json.message('fanotify.v1.Gap', m.data) as { fromSequence: string; toSequence: string };
      out.gaps.push({ from: Number(g.fromSequence), to: Number(g.toSequence) });
      continue;
    }
    const e = json.message('fanotify.v1.Event', m.data) as { sequence: string; path: string; process?: { pid: number } };
    expect(e.sequence).to.equal(m.headers['Fanotify-Sequence']);
    out.events.push({ sequence: Number(e.sequence), path: e.path, pid: e.process?.pid ?? 0 });
  }
  return out;
}

/** Sequences 1..last each once: as an event or inside a gap record, never both, never twice. */
function expectCovered(s: Stored): number {
  const last = Math.max(...s.events.map((e) => e.sequence), ...s.gaps.map((g) => g.to));
  const seen = new Uint8Array(last + 1);
  const twice: number[] = [];
  const mark = (q: number) => (seen[q]++ ? twice.push(q) : undefined);
  for (const e of s.events) mark(e.sequence);
  for (const g of s.gaps) for (let q = g.from; q <= g.to; q++) mark(q);
  const missing: number[] = [];
  for (let q = 1; q <= last; q++) if (!seen[q]) missing.push(q);
  expect({ twice: twice.slice(0, 10), missing: missing.slice(0, 10) }).to.deep.equal({ twice: [], missing: [] });
  return last;
}

describe('e2e: fanotify-export with the daemon', function () {
  this.timeout(300_000);
  let nats: NatsServer;
  let daemon: Daemon;
  let dir: string;
  let subscribe: string;
  const exporters: ExporterProcess[] = [];

  before(function () {
    const missing = natsServerMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
  });

  beforeEach(async () => {
    dir = tempDir('fanotify-export-dir-');
    subscribe = subscribeFile(dir);
    nats = await startNats();
  });

  afterEach(async () => {
    for (const e of exporters.splice(0)) await e.kill();
    await daemon?.stop();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const exporter = async () => {
    const e = await startExporter(['--daemon', daemon.address, '--subscribe', subscribe, '--nats', nats.url, '--node', 'host-1', '--watch', 'opens', '--cursor-interval-ms', '2000']);
    exporters.push(e);
    return e;
  };
  const makeFiles = (n: number) => {
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  };
  const stored = () => streamCount(nats.url, STREAM);
  const markerStored = async (tag: string) => (await readStream(nats.url, STREAM)).some((m) => m.headers['Fanotify-Record'] === 'event' && decode([m]).events[0].path.endsWith(`/marker${tag}`));

  it('100,000 opens arrive in the stream exactly once each, with path and process', async () => {
    makeFiles(100_000);
    daemon = await startDaemon();
    // A kernel queue that holds every open: on a loaded machine the daemon may fall behind the opener for a while,
    // and the kernel's default 16,384 would then drop events (an Overflow record) before the exporter is involved.
    const e = await withKernelQueue(200_000, async () => {
      const x = await exporter();
      await waitFor(() => x.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
      return x;
    });
    const child = opener(dir, 0, 100_000, 'a');
    const result = await child.done;
    expect(result.code, result.stderr).to.equal(0);
    await waitFor(async () => (await stored()) >= 100_001, 180_000, '100,001 events in the stream', 250);
    expect(await e.stop()).to.equal(0);
    const s = decode(await readStream(nats.url, STREAM));
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
    await waitFor(() => first.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
    const child = opener(dir, 0, 40_000, 'k');
    await waitFor(async () => (await stored()) >= 5_000, 60_000, 'some events stored', 20);
    await first.kill();
    expect((await child.done).code).to.equal(0);
    const second = await exporter();
    await waitFor(async () => (await stored()) >= 40_001, 120_000, '40,001 events in the stream', 250);
    expect(second.logs.find((l) => l.msg === 'attached'), 'the restarted exporter attached to the lingering watch').to.not.equal(undefined);
    expect(await second.stop()).to.equal(0);
    const s = decode(await readStream(nats.url, STREAM));
    expect(s.gaps).to.deep.equal([]);
    expect(expectCovered(s)).to.equal(40_001);
  });

  it("the daemon's resume buffer overflows while the exporter is stopped: one gap record with the exact range", async () => {
    makeFiles(30_000);
    daemon = await startDaemon(['--resume-buffer-bytes', String(256 * 1024)]);
    const first = await exporter();
    await waitFor(() => first.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
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
    const s = decode(await readStream(nats.url, STREAM));
    expect(s.gaps.length).to.equal(1);
    // Exact: it starts right after what was exported and ends right before the first event the daemon still held.
    expect(s.gaps[0].from).to.equal(cursor + 1);
    const after = s.events.filter((x) => x.sequence > cursor).map((x) => x.sequence);
    expect(Math.min(...after)).to.equal(s.gaps[0].to + 1);
    expect(s.gaps[0].to - s.gaps[0].from + 1).to.be.greaterThan(1000);
    expect(expectCovered(s)).to.equal(30_002);
  });
});
