// Named watches that outlive their streams (the daemon as a child): a
// collector that goes away and attaches again gets every event exactly
// once, or one Gap with the exact range when the resume buffer no longer
// holds what it missed; two collectors on one watch each get everything at
// their own pace; two policy engines share a permission watch and one
// takes over the other's events when it goes. Every permission mark is on
// a directory the test made; every opener is a child with a time limit.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { fanotifyClientConstructor } from '../../src/api/proto';
import { type Client, type Daemon, getInfo, runChild, startDaemon, tempDir, WatchStream } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** A client on a connection of its own: pausing one collector's stream must not hold up another's connection. */
function ownClient(address: string): Client {
  const Ctor = fanotifyClientConstructor();
  return new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as Client;
}

function attach(client: Client, attachMsg: any): WatchStream {
  const s = new WatchStream(client);
  s.call.write({ attach: attachMsg });
  return s;
}

const seqOf = (ev: any) => Number(ev.sequence);

const ENGINE = path.resolve(__dirname, '..', 'fixtures', 'engine.js');

/** test/fixtures/engine.ts as a child: it holds every event it is sent; `lines` grows as it says what it got. */
function engineChild(address: string, first: object) {
  const proc = spawn(process.execPath, [ENGINE, address, JSON.stringify(first)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: any[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  // A test that fails before its kill must not leave the engine behind.
  const limit = setTimeout(() => proc.kill('SIGKILL'), 60_000);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('close', (_code, signal) => (clearTimeout(limit), resolve(signal))));
  return { proc, lines, exited };
}

/**
 * A child that opens `count` files of dir (f0..f999, round robin), then
 * dir/marker: its event comes after every other one, so a stream that has
 * the marker has had everything the child caused.
 */
function opener(dir: string, count: number, restMsPer1000 = 0) {
  const rest = restMsPer1000 ? `if(i%1000===999)Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,${restMsPer1000});` : '';
  const script = `const fs=require('fs');for(let i=0;i<${count};i++){fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/f'+(i%1000),'r'));${rest}}fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/marker','r'))`;
  return runChild(process.execPath, ['-e', script], 60_000);
}

function makeFiles(dir: string): void {
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  fs.writeFileSync(path.join(dir, 'marker'), '');
}

const isMarker = (ev: any) => typeof ev.path === 'string' && ev.path.endsWith('/marker');

/** What a stream was told, in order: event sequences and gaps. */
function told(s: WatchStream): { seqs: number[]; gaps: Array<{ from: number; to: number }>; order: Array<number | { from: number; to: number }> } {
  const seqs: number[] = [];
  const gaps: Array<{ from: number; to: number }> = [];
  const order: Array<number | { from: number; to: number }> = [];
  for (const r of s.responses) {
    if (r.gap) {
      const g = { from: Number(r.gap.from_sequence), to: Number(r.gap.to_sequence) };
      gaps.push(g);
      order.push(g);
    }
    if (r.events) for (const ev of r.events.events) (seqs.push(seqOf(ev)), order.push(seqOf(ev)));
  }
  return { seqs, gaps, order };
}

/** Every sequence from 1 to last exactly once, counting gap ranges as had. */
function coversExactlyOnce(parts: Array<number | { from: number; to: number }>, last: number): void {
  const seen = new Uint8Array(last + 1);
  for (const p of parts) {
    if (typeof p === 'number') {
      expect(seen[p], `sequence ${p} twice`).to.equal(0);
      seen[p] = 1;
    } else {
      for (let q = p.from; q <= p.to; q++) {
        expect(seen[q], `sequence ${q} both sent and in a gap`).to.equal(0);
        seen[q] = 1;
      }
    }
  }
  const missing = [];
  for (let q = 1; q <= last; q++) if (!seen[q]) missing.push(q);
  expect(missing.slice(0, 10), `${missing.length} sequences missing`).to.deep.equal([]);
}

const notifyWatch = (dir: string, name: string) => ({
  group_class: 'GROUP_CLASS_NOTIF',
  marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'], on_child: true }],
  name,
  linger_ms: 30_000,
  max_batch_events: 1024,
  process_details: 'PROCESS_DETAILS_PID',
});

describe('e2e: named watches: resume, fan-out, shared permission watches', function () {
  this.timeout(180_000);
  let dir: string;
  const streams: WatchStream[] = [];
  const clients: Client[] = [];
  const client = (d: Daemon) => {
    const c = ownClient(d.address);
    clients.push(c);
    return c;
  };
  const track = (s: WatchStream) => (streams.push(s), s);

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
    for (const c of clients.splice(0)) c.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('with the default resume buffer', () => {
    let daemon: Daemon;
    before(async () => {
      daemon = await startDaemon();
    });
    after(async () => {
      expect(await daemon?.stop()).to.equal(0);
    });

    it('a collector cancelled mid-stream and attached again gets every event exactly once, over 100,000 events', async () => {
      makeFiles(dir);
      const first = track(new WatchStream(client(daemon), notifyWatch(dir, 'collector')));
      const sub = await first.subscribed();
      expect(sub).to.include({ name: 'collector', attached: false, linger_ms: 30_000 });
      expect(sub.boot_id).to.match(/^[0-9a-f-]{36}$/);
      // Runs until stopped: the kernel merges opens of a file still queued, so the count of events is not the count of opens.
      // Paced (20 ms per 1,000 opens) so this collector, which decodes every event in this process, stays within the buffer.
      const load = opener(dir, 10_000_000, 20);
      await first.until(() => first.events.length >= 20_000, 60_000, '20,000 events');
      first.cancel();
      const had = told(first);
      const after = Math.max(...had.seqs);
      // Events keep coming while no stream is attached; the watch lingers and keeps them.
      const second = track(attach(client(daemon), { name: 'collector', after_sequence: String(after) }));
      const again = await second.subscribed();
      expect(again).to.include({ name: 'collector', attached: true });
      expect(Number(again.last_sequence)).to.be.at.least(after);
      await second.until(() => second.events.length && seqOf(second.events[second.events.length - 1]) > 101_000, 120_000, 'sequence 101,000');
      load.kill();
      await load.done;
      const marker = await runChild('/bin/cat', [path.join(dir, 'marker')]).done;
      expect(marker.code).to.equal(0);
      await second.until(() => second.events.some(isMarker), 60_000, 'the marker');
      const resumed = told(second);
      expect(resumed.gaps).to.deep.equal([]);
      expect(resumed.seqs[0]).to.equal(after + 1);
      const last = seqOf(second.events.find(isMarker));
      expect(had.seqs.length + resumed.seqs.length).to.equal(last);
      expect(last).to.be.at.least(100_000);
      coversExactlyOnce([...had.seqs, ...resumed.seqs], last);
      expect(second.responses.some((r) => r.overflow)).to.equal(false);
    });

    it('refuses a second watch of the same name, a linger above --max-linger-ms, and an Attach to an unknown name', async () => {
      const c = client(daemon);
      const a = track(new WatchStream(c, notifyWatch(dir, 'twice')));
      await a.subscribed();
      const b = track(new WatchStream(c, notifyWatch(dir, 'twice')));
      const st = await b.ended();
      expect(st.code).to.equal(grpc.status.ALREADY_EXISTS);
      expect(st.details).to.match(/Attach/);
      const long = track(new WatchStream(c, { ...notifyWatch(dir, 'long'), linger_ms: 700_000 }));
      const st2 = await long.ended();
      expect(st2.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(st2.details).to.match(/--max-linger-ms/);
      const none = track(attach(c, { name: 'nobody' }));
      expect((await none.ended()).code).to.equal(grpc.status.NOT_FOUND);
    });
  });

  describe('with a 1 MiB resume buffer', () => {
    let daemon: Daemon;
    before(async () => {
      daemon = await startDaemon(['--resume-buffer-bytes', String(1024 * 1024)]);
    });
    after(async () => {
      expect(await daemon?.stop()).to.equal(0);
    });

    it('a collector attaching after the buffer moved past it gets one Gap with the exact range, then the rest', async () => {
      makeFiles(dir);
      const first = track(new WatchStream(client(daemon), notifyWatch(dir, 'behind')));
      await first.subscribed();
      fs.closeSync(fs.openSync(path.join(dir, 'f1'), 'r'));
      await first.until(() => first.events.length >= 1, 10_000, 'the first event');
      const after = seqOf(first.events[first.events.length - 1]);
      first.cancel();
      const r = await opener(dir, 30_000).done;
      expect(r.code, r.stderr).to.equal(0);
      const second = track(attach(client(daemon), { name: 'behind', after_sequence: String(after) }));
      const sub = await second.subscribed();
      await second.until(() => second.events.some(isMarker), 60_000, 'the marker');
      const { gaps, order } = told(second);
      expect(gaps).to.have.length(1);
      expect(order[0]).to.deep.equal(gaps[0]);
      expect(gaps[0].from).to.equal(after + 1);
      const firstHeld = Number(sub.first_sequence);
      expect(gaps[0].to).to.be.at.least(firstHeld - 1);
      const seqs = order.slice(1) as number[];
      expect(seqs[0]).to.equal(gaps[0].to + 1);
      seqs.forEach((q, i) => i > 0 && expect(q).to.equal(seqs[i - 1] + 1));
      coversExactlyOnce([...first.events.map(seqOf), ...order], seqs[seqs.length - 1]);
    });
  });

  describe('with a 4 MiB resume buffer', () => {
    let daemon: Daemon;
    before(async () => {
      daemon = await startDaemon(['--resume-buffer-bytes', String(4 * 1024 * 1024)]);
    });
    after(async () => {
      expect(await daemon?.stop()).to.equal(0);
    });

    it('two collectors both get everything; the paused one gets a Gap and the other is not held up', async () => {
      makeFiles(dir);
      const a = track(new WatchStream(client(daemon), notifyWatch(dir, 'pair')));
      await a.subscribed();
      const b = track(attach(client(daemon), { name: 'pair', live_only: true }));
      await b.subscribed();
      b.call.pause();
      // Paced (a rest of 40 ms per 1,000 opens) so the collector that reads, which decodes every event in this process, keeps up.
      const r = await opener(dir, 60_000, 40).done;
      expect(r.code, r.stderr).to.equal(0);
      await a.until(() => a.events.some(isMarker), 60_000, 'the marker on the collector that reads');
      const last = seqOf(a.events.find(isMarker));
      const ta = told(a);
      expect(ta.gaps).to.deep.equal([]);
      coversExactlyOnce(ta.seqs, last);
      b.call.resume();
      await b.until(() => b.events.some(isMarker), 60_000, 'the marker on the paused collector');
      const tb = told(b);
      expect(tb.gaps.length).to.be.at.least(1);
      coversExactlyOnce(tb.order, last);
    });
  });

  describe('a shared DENY-by-default permission watch', () => {
    let daemon: Daemon;
    before(async () => {
      daemon = await startDaemon();
    });
    after(async () => {
      expect(await daemon?.stop()).to.equal(0);
    });

    it('moves the events of an engine killed with SIGKILL to the other engine, whose verdicts answer every opener', async () => {
      const files = Array.from({ length: 8 }, (_, i) => path.join(dir, `p${i}`));
      for (const f of files) fs.writeFileSync(f, 'x');
      const guard = {
        group_class: 'GROUP_CLASS_CONTENT',
        marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
        timeout_decision: 'DECISION_DENY',
        verdict_timeout_ms: 60_000,
        name: 'guard',
        linger_ms: 30_000,
      };
      // The first engine, a process of its own, opens the watch and never answers.
      const one = engineChild(daemon.address, { subscribe: guard });
      await waitFor(() => one.lines.some((l) => l.subscribed === 'guard'), 20_000, 'the first engine subscribed');
      const two = track(attach(client(daemon), { name: 'guard' }));
      await two.subscribed();
      const heldByOne = () => one.lines.filter((l) => l.id !== undefined).map((l) => l.id);
      const openers = files.map((f) => runChild('/bin/cat', [f], 60_000));
      await waitFor(() => heldByOne().length + two.events.length >= files.length, 20_000, 'every open delivered to one engine or the other');
      const held = heldByOne();
      expect(held.length, 'the first engine holds some').to.be.above(0);
      expect(two.events.length, 'the second engine holds some').to.be.above(0);
      // The second engine was not sent these: its verdict is refused and the opener stays blocked.
      two.verdict(held[0], 'DECISION_ALLOW');
      two.call.write({ get_stats: { request_id: '1' } });
      const stats = await two.until(() => two.responses.find((r) => r.stats)?.stats, 10_000, 'stats');
      expect(Number(stats.verdicts_refused)).to.equal(1);
      expect(stats.consumers).to.equal(2);
      one.proc.kill('SIGKILL');
      expect(await one.exited).to.equal('SIGKILL');
      await two.until(() => held.every((id) => two.events.some((e) => e.id === id)), 20_000, "the first engine's events resent to the second");
      for (const e of two.events) two.verdict(e.id, 'DECISION_ALLOW');
      const results = await Promise.all(openers.map((o) => o.done));
      for (const res of results) expect(res.code, res.stderr).to.equal(0);
      two.call.write({ get_stats: { request_id: '2' } });
      const end = await two.until(() => two.responses.find((r) => r.stats?.request_id === '2')?.stats, 10_000, 'stats');
      expect(Number(end.decided_by_client)).to.equal(files.length);
      expect(Number(end.decided_by_timeout)).to.equal(0);
      expect(Number(end.reassigned)).to.equal(held.length);
    });

    it('a lingering watch answers opens with its timeout decision at once, and closes when its linger ends', async () => {
      const file = path.join(dir, 'held');
      fs.writeFileSync(file, 'x');
      const c = client(daemon);
      // The watch of the test before may still linger (30 s): count from here.
      const before = (await getInfo(c)).named_watches;
      const s = track(
        new WatchStream(c, {
          group_class: 'GROUP_CLASS_CONTENT',
          marks: [{ path: dir, scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
          timeout_decision: 'DECISION_DENY',
          verdict_timeout_ms: 60_000,
          name: 'brief',
          linger_ms: 1500,
        }),
      );
      await s.subscribed();
      expect((await getInfo(c)).named_watches).to.equal(before + 1);
      s.cancel();
      // Whether the open comes before or after the daemon sees the stream end, no stream is left to answer it.
      const denied = await runChild('/bin/cat', [file], 15_000).done;
      expect(denied.code).to.equal(1);
      expect(denied.stderr).to.match(/Operation not permitted|Permission denied/);
      await waitFor(async () => (await getInfo(c)).named_watches === before, 20_000, 'the linger to end');
      const late = track(attach(c, { name: 'brief' }));
      expect((await late.ended()).code).to.equal(grpc.status.NOT_FOUND);
      const after = await runChild('/bin/cat', [file], 15_000).done;
      expect(after.code, 'the group is gone: nothing holds the open').to.equal(0);
    });
  });
});
