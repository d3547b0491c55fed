// fanotify-export across a restart of the daemon under systemd's fd-store
// protocol (test/fixtures/systemd-harness.ts plays systemd): a named,
// lingering notification watch of a directory this test made, opens of
// its files before and after the daemon is restarted (SIGTERM with the
// store kept, or kill -9) while the exporter keeps running. Every open is
// in the stream exactly once (counted by file name), nothing is stored
// twice by (node, watch, sequence), and the numbers go on: after SIGTERM
// from the exact next one, with no gap record; after kill -9 past the
// reserved block, with one gap record over the rest of it. Openers are children with a time limit; teardown always stops
// the exporter, the harness (daemon and stored fds) and nats-server.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { CanonicalJson } from '../../src/client';
import { SEQUENCE_BLOCK } from '../../src/daemon/fd-store';
import { runChild, tempDir } from '../fixtures/harness';
import { startExporter, subscribeFile, type ExporterProcess } from '../fixtures/exporter';
import { skipWithoutNats, readStream, startNats, streamCount, type NatsServer, type StoredMessage } from '../fixtures/nats';
import { SystemdHarness } from '../fixtures/systemd-harness';
import { waitFor } from '../fixtures/wait';

const STREAM = 'FANOTIFY';
const N1 = 2_000;
const N2 = 2_000;

/** A child that opens dir/f<from>..f<to-1> once each, then dir/marker<tag>. */
function opener(dir: string, from: number, to: number, tag: string) {
  const script = `const fs=require('fs');for(let i=${from};i<${to};i++)fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/f'+i,'r'));fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/marker${tag}','w'))`;
  return runChild(process.execPath, ['-e', script], 120_000);
}

interface Decoded {
  events: Array<{ key: string; sequence: number; name: string }>;
  gaps: Array<Record<string, unknown>>;
}

function decode(messages: StoredMessage[]): Decoded {
  const json = CanonicalJson.load();
  const out: Decoded = { events: [], gaps: [] };
  for (const m of messages) {
    if (m.headers['Fanotify-Record'] === 'gap') {
      out.gaps.push({ ...(json.message('fanotify.v1.Gap', m.data) as Record<string, unknown>), headers: m.headers });
      continue;
    }
    const e = json.message('fanotify.v1.Event', m.data) as { sequence: string; path: string };
    expect(e.sequence).to.equal(m.headers['Fanotify-Sequence']);
    out.events.push({ key: `${m.headers['Fanotify-Node']}/${m.headers['Fanotify-Watch']}/${e.sequence}`, sequence: Number(e.sequence), name: path.basename(e.path) });
  }
  return out;
}

describe('e2e: fanotify-export across a daemon restart under systemd (fd store)', function () {
  this.timeout(120_000);
  let nats: NatsServer | undefined;
  let sd: SystemdHarness | undefined;
  let exporter: ExporterProcess | undefined;
  let dir: string;

  before(function () {
    skipWithoutNats(this);
  });

  beforeEach(() => {
    dir = tempDir('fanotify-export-restart-');
    // Every file is made now: once the watch exists, this process opens nothing under it.
    for (let i = 0; i < N1 + N2; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  });

  afterEach(async () => {
    await exporter?.kill();
    exporter = undefined;
    await sd?.close();
    sd = undefined;
    await nats?.stop();
    nats = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The last sequence before the restart, the first after it, and the gap records' ranges. */
  async function exportsExactlyOnceAcross(restart: (h: SystemdHarness) => Promise<void>): Promise<{ lastBefore: number; firstAfter: number; gaps: number[][] }> {
    nats = await startNats();
    const url = nats.url;
    const h = (sd = new SystemdHarness());
    await h.start();
    const x = (exporter = await startExporter(['--daemon', h.address, '--subscribe', subscribeFile(dir), '--nats', url, '--node', 'host-1', '--watch', 'opens', '--cursor-interval-ms', '2000']));
    await waitFor(() => x.logs.some((l) => l.msg === 'subscribed'), 10_000, 'the exporter to subscribe');
    await h.until(() => h.storedFds === 1, 'FDSTORE of the watch');

    const first = await opener(dir, 0, N1, 'a').done;
    expect(first.code, first.stderr).to.equal(0);
    await waitFor(async () => (await streamCount(url, STREAM)) >= N1 + 1, 60_000, `${N1 + 1} events in the stream`, 100);
    const lastBefore = Math.max(...decode(await readStream(url, STREAM)).events.map((e) => e.sequence));

    await restart(h);
    expect(h.storedFds, 'the watch taken back from the store, not stored twice').to.equal(1);
    const second = await opener(dir, N1, N1 + N2, 'b').done;
    expect(second.code, second.stderr).to.equal(0);
    const markerB = async () => decode((await readStream(url, STREAM)).filter((m) => m.headers['Fanotify-Record'] !== 'gap')).events.some((e) => e.name === 'markerb');
    await waitFor(async () => (await streamCount(url, STREAM)) >= N1 + N2 + 2 && (await markerB()), 60_000, 'the second phase in the stream', 250);
    expect(await x.stop()).to.equal(0);
    exporter = undefined;

    const s = decode(await readStream(url, STREAM));
    const byKey = new Map<string, number>();
    for (const e of s.events) byKey.set(e.key, (byKey.get(e.key) ?? 0) + 1);
    expect([...byKey].filter(([, n]) => n > 1).slice(0, 10), 'stored twice by (node, watch, sequence)').to.deep.equal([]);
    const byName = new Map<string, number>();
    for (const e of s.events) byName.set(e.name, (byName.get(e.name) ?? 0) + 1);
    const expected = [...Array.from({ length: N1 + N2 }, (_, i) => `f${i}`), 'markera', 'markerb'];
    const wrong = expected.filter((n) => byName.get(n) !== 1).map((n) => `${n}:${byName.get(n) ?? 0}`);
    expect(wrong.slice(0, 20), `opens not stored exactly once (${wrong.length})`).to.deep.equal([]);
    expect(s.events.length).to.equal(expected.length);
    const after = s.events.filter((e) => e.name === 'markerb' || /^f\d+$/.test(e.name) && Number(e.name.slice(1)) >= N1).map((e) => e.sequence);
    console.log(`      sequences: phase 1 up to ${lastBefore}, phase 2 ${Math.min(...after)}..${Math.max(...after)}; gap records: ${JSON.stringify(s.gaps.map((g) => [g.fromSequence, g.toSequence]))}`);
    // A gap record may only cover numbers no stored event has.
    for (const g of s.gaps) {
      const from = Number(g.fromSequence ?? 0);
      const to = g.toSequence === undefined || g.toSequence === '0' ? Infinity : Number(g.toSequence);
      expect(s.events.filter((e) => e.sequence >= from && e.sequence <= to).map((e) => e.sequence).slice(0, 5), `events inside gap ${JSON.stringify(g)}`).to.deep.equal([]);
    }
    return { lastBefore, firstAfter: Math.min(...after), gaps: s.gaps.map((g) => [Number(g.fromSequence ?? 0), Number(g.toSequence ?? 0)]) };
  }

  it('SIGTERM with the store kept: every open exported exactly once across the restart, numbered on without a gap record', async () => {
    const r = await exportsExactlyOnceAcross(async (h) => {
      expect(await h.kill('SIGTERM')).to.equal(0);
      expect(h.storedFds).to.equal(1);
      await h.start();
    });
    // The old process wrote down the exact next number, and the exporter had everything before it.
    expect(r).to.deep.include({ firstAfter: r.lastBefore + 1, gaps: [] });
  });

  it('kill -9: every open exported exactly once across the restart; one gap record over the rest of the reserved block', async () => {
    const r = await exportsExactlyOnceAcross(async (h) => {
      await h.kill('SIGKILL');
      expect(h.storedFds).to.equal(1);
      await h.start();
    });
    // The killed process could write nothing: the restored watch starts past its block.
    expect(r).to.deep.include({ firstAfter: SEQUENCE_BLOCK + 1, gaps: [[r.lastBefore + 1, SEQUENCE_BLOCK]] });
  });
});
