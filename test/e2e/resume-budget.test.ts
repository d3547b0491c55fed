// The daemon-wide bound on named watches' resume buffers
// (--resume-buffer-total-bytes), the daemon as a child: two named watches
// linger with no stream attached, a quiet one and a busy one, under a
// total smaller than their traffic. The total stays within the bound (but
// for the chunk each buffer is writing), the busy watch loses its oldest
// events (a stream attaching after 0 gets a Gap with the exact range, then
// the rest) and the quiet one keeps all of its own. Marks only on
// directories the test made; openers are children with a time limit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { type Client, connect, type Daemon, getInfo, runChild, startDaemon, tempDir, waitForLog, WatchStream } from '../fixtures/harness';
import { metricsAddress, scrape } from '../fixtures/metrics';

/* eslint-disable @typescript-eslint/no-explicit-any */

const MIB = 1024 * 1024;
const TOTAL = 4 * MIB;
/** What one buffer chunk counts: 64 KiB of bytes and 16 KiB of per-entry arrays. */
const CHUNK = 80 * 1024;

const watchOf = (dir: string, name: string) => ({
  group_class: 'GROUP_CLASS_NOTIF',
  marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'], on_child: true }],
  name,
  linger_ms: 60_000,
  max_batch_events: 1024,
  process_details: 'PROCESS_DETAILS_PID',
});

function makeFiles(dir: string): void {
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  for (const f of ['first', 'end']) fs.writeFileSync(path.join(dir, f), '');
}

/**
 * A child opening `count` files of dir round robin, then dir/`last`, if
 * given, whose event comes after all of them. (The kernel merges an open
 * of a file whose event is still queued: the events are fewer than the
 * opens, by a share that varies from run to run.)
 */
async function open(dir: string, count: number, last?: string): Promise<void> {
  const end = last ? `fs.closeSync(fs.openSync(${JSON.stringify(path.join(dir, last))},'r'))` : '';
  const script = `const fs=require('fs');for(let i=0;i<${count};i++)fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/f'+(i%1000),'r'));${end}`;
  const r = await runChild(process.execPath, ['-e', script], 60_000).done;
  expect(r.code, r.stderr).to.equal(0);
}

const isFile = (name: string) => (ev: any) => typeof ev.path === 'string' && ev.path.endsWith(`/${name}`);

/**
 * Attach after `after` (0: from the oldest held) until the marker: the
 * Subscribed, the gaps and event sequences in the order sent. The stream
 * is cancelled before returning.
 */
async function readAll(client: Client, name: string, last: string, after = 0): Promise<{ sub: any; order: Array<number | { from: number; to: number }> }> {
  const s = new WatchStream(client);
  s.call.write({ attach: { name, after_sequence: String(after) } });
  try {
    const sub = await s.subscribed();
    await s.until(() => s.events.some(isFile(last)), 60_000, `${name}'s open of ${last}`);
    const order: Array<number | { from: number; to: number }> = [];
    for (const r of s.responses) {
      if (r.gap) order.push({ from: Number(r.gap.from_sequence), to: Number(r.gap.to_sequence) });
      if (r.events) for (const ev of r.events.events) order.push(Number(ev.sequence));
    }
    return { sub, order };
  } finally {
    s.cancel();
  }
}

/** Sequences from..to each once, in order. */
function expectRun(seqs: Array<number | object>, from: number, to: number): void {
  expect(seqs.every((q) => typeof q === 'number'), 'a second Gap').to.equal(true);
  expect(seqs.length).to.equal(to - from + 1);
  expect(seqs[0]).to.equal(from);
  expect(seqs[seqs.length - 1]).to.equal(to);
  (seqs as number[]).forEach((q, i) => i > 0 && expect(q, `after ${seqs[i - 1]}`).to.equal((seqs[i - 1] as number) + 1));
}

/** A watch's buffer bytes, by its name. */
function bytesOf(m: Map<string, number>, name: string): number {
  for (const [k, v] of m) if (k.startsWith('fanotifyd_resume_buffer_watch_bytes{') && k.includes(`name="${name}"`)) return v;
  return 0;
}

describe('e2e: the resume buffers of all named watches share one bound', function () {
  this.timeout(180_000);
  let daemon: Daemon;
  const dirs: string[] = [];
  const streams: WatchStream[] = [];
  let client: Client;

  before(async () => {
    daemon = await startDaemon(['--metrics', '127.0.0.1:0', '--resume-buffer-bytes', String(TOTAL), '--resume-buffer-total-bytes', String(TOTAL)]);
    client = connect(daemon.address);
  });
  after(async () => {
    for (const s of streams) s.cancel();
    client?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    expect(await daemon?.stop()).to.equal(0);
  });

  it('the busy watch loses its oldest events to the total, the quiet one keeps its own, and the total stays within the bound', async () => {
    const quietDir = tempDir();
    const busyDir = tempDir();
    dirs.push(quietDir, busyDir);
    makeFiles(quietDir);
    makeFiles(busyDir);
    for (const [dir, name] of [
      [quietDir, 'quiet'],
      [busyDir, 'busy'],
    ]) {
      const s = new WatchStream(client, watchOf(dir, name));
      streams.push(s);
      await s.subscribed();
      // No stream from now on: the watch lingers and reads into its buffer.
      s.cancel();
    }
    const address = metricsAddress(daemon);

    // Some hundreds of KiB (an event is some 250 bytes), less than half the total.
    for (let round = 0; round < 10 && bytesOf(await scrape(address), 'quiet') < 300 * 1024; round++) await open(quietDir, 500);
    await open(quietDir, 0, 'end');
    const quiet = await readAll(client, 'quiet', 'end');
    expect(quiet.order[0]).to.equal(1);
    const quietLast = quiet.order[quiet.order.length - 1] as number;
    expectRun(quiet.order, 1, quietLast);
    const quietBytes = bytesOf(await scrape(address), 'quiet');
    // Less than half the total: the busy watch, once past it, is always the one holding the most.
    expect(quietBytes).to.be.above(0).and.below(TOTAL / 2 - CHUNK);

    // A stream of the busy watch that had its first event, and went away.
    await open(busyDir, 0, 'first');
    const had = await readAll(client, 'busy', 'first');
    expect(had.order).to.deep.equal([1]);
    // Load until the total has taken chunks from the busy watch, and one round more.
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) most = Math.max(most, (await scrape(address)).get('fanotifyd_resume_buffer_bytes') ?? 0);
    })();
    try {
      for (let round = 0; round < 30 && !((await scrape(address)).get('fanotifyd_resume_buffer_forced_drops_total')! > 0); round++) await open(busyDir, 5_000);
      await open(busyDir, 5_000, 'end');
    } finally {
      sampling = false;
      await sampler;
    }
    const busy = await readAll(client, 'busy', 'end', 1);
    const m = await scrape(address);
    const slack = 2 * CHUNK;
    most = Math.max(most, m.get('fanotifyd_resume_buffer_bytes')!);
    expect(most, 'the total, at most').to.be.at.most(TOTAL + slack);
    expect(m.get('fanotifyd_resume_buffer_limit_bytes')).to.equal(TOTAL);
    expect(m.get('fanotifyd_resume_buffer_forced_drops_total')).to.be.above(0);

    // The busy watch: after its first event, one Gap to just before the oldest it holds, then every event to its marker.
    const gap = busy.order[0] as { from: number; to: number };
    expect(gap).to.be.an('object');
    expect(gap.from).to.equal(2);
    expect(gap.to).to.equal(Number(busy.sub.first_sequence) - 1);
    const busyLast = busy.order[busy.order.length - 1] as number;
    expectRun(busy.order.slice(1), gap.to + 1, busyLast);
    // From the oldest held (after_sequence 0, no Gap by the contract): the same events.
    const oldest = await readAll(client, 'busy', 'end');
    expect(oldest.order[0]).to.be.at.most(gap.to + 1);
    expectRun(oldest.order, oldest.order[0] as number, busyLast);

    // The quiet watch still holds every event it had, as many bytes as before.
    const again = await readAll(client, 'quiet', 'end');
    expect(again.order).to.deep.equal(quiet.order);
    expect(bytesOf(m, 'quiet')).to.equal(quietBytes);

    const info = await getInfo(client);
    expect(Number(info.limits.resume_buffer_total_bytes)).to.equal(TOTAL);
    expect(Number(info.resume_buffer_used_bytes)).to.be.above(0).and.at.most(TOTAL + slack);
    const line = await waitForLog(daemon, (l) => typeof l.msg === 'string' && l.msg.startsWith('resume buffers past --resume-buffer-total-bytes'));
    expect(line).to.include({ name: 'busy' });
  });

  it('refuses to start with a total below one watch\'s buffer, naming both flags', async () => {
    const r = await runChild(process.execPath, [path.resolve(__dirname, '..', '..', 'src', 'daemon', 'main.js'), '--resume-buffer-total-bytes', String(MIB)], 20_000).done;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--resume-buffer-total-bytes: 1048576 is below --resume-buffer-bytes \(67108864\)/);
  });
});
