// Hostile and broken requests: each gets a clear status, and the daemon
// keeps serving a healthy client the whole time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../../src/api/proto';
import { bytesClient, type Client, connect, type Daemon, getInfo, runChild, seededRandom, startDaemon, tempDir, waitForLog, WatchStream } from '../fixtures/harness';
import { waitFor, waitingForVerdict } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('e2e: hostile input', function () {
  this.timeout(120_000);
  let daemon: Daemon;
  let client: Client;
  let dir: string;
  let healthy: WatchStream;
  let WatchRequest: protobuf.Type;
  let WatchResponse: protobuf.Type;

  before(async () => {
    daemon = await startDaemon(['--max-message-bytes', '65536', '--max-marks-per-watch', '64', '--max-watches-per-identity', '4']);
    client = connect(daemon.address);
    dir = tempDir();
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    healthy = new WatchStream(client, { marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    await healthy.subscribed();
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
    root.loadSync('fanotify/v1/fanotify.proto', { keepCase: true });
    WatchRequest = root.lookupType('fanotify.v1.WatchRequest');
    WatchResponse = root.lookupType('fanotify.v1.WatchResponse');
  });

  after(async () => {
    // The healthy client was served throughout: an open now still arrives.
    const r = await runChild('cat', [path.join(dir, 'f')]).done;
    await healthy.until(() => healthy.events.find((e) => e.process.pid === r.pid), 10_000, 'an event on the healthy watch');
    healthy.cancel();
    client.close();
    expect(await daemon.stop()).to.equal(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Until the daemon has closed watch `id`: a cancelled watch counts
   * against the identity's limit (4 here) until then, and a test that opens
   * the next one must not be refused for an earlier test's leftovers.
   */
  const watchClosed = (id: string) => waitForLog(daemon, (l) => l.msg === 'watch closed' && l.watch === id, 10_000);
  const closed = (s: WatchStream) => watchClosed(s.responses.find((m) => m.subscribed).subscribed.watch_id);

  /**
   * Send raw frames on a Watch stream and half-close it; resolve with the
   * status it ends with. A frame that is a good Subscribe opens a watch,
   * which a half-close leaves running: its first response (Subscribed)
   * resolves as OK once the stream is cancelled and the watch closed.
   */
  function rawWatch(frames: Buffer[]): Promise<grpc.StatusObject> {
    const c = bytesClient(daemon.address, '/fanotify.v1.Fanotify/Watch', true);
    return new Promise((resolve) => {
      const call = c.call();
      let finished = false;
      const done = (s: grpc.StatusObject | Promise<grpc.StatusObject>) => {
        if (finished) return;
        finished = true;
        c.close();
        resolve(s);
      };
      call.on('data', (bytes: Buffer) => {
        const id: string | undefined = (WatchResponse.decode(bytes) as any).subscribed?.watch_id;
        call.cancel();
        const ok = { code: grpc.status.OK, details: 'subscribed', metadata: new grpc.Metadata() };
        done(id ? watchClosed(id).then(() => ok) : { ...ok, code: grpc.status.UNKNOWN, details: 'the first response was not Subscribed' });
      });
      call.on('status', (s: grpc.StatusObject) => done(s));
      call.on('error', () => undefined);
      for (const f of frames) call.write(f);
      call.end();
    });
  }

  const subscribeFrame = (sub: object) => Buffer.from(WatchRequest.encode(WatchRequest.fromObject({ subscribe: sub })).finish());

  it('answers random, truncated and mutated frames with INVALID_ARGUMENT or a clean end (seeded)', async () => {
    const rnd = seededRandom(0x1234567);
    const valid = subscribeFrame({ group_class: 1, marks: [{ path: dir, events: [5] }] });
    const seen = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      let frame: Buffer;
      if (i % 3 === 0) frame = Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
      else if (i % 3 === 1) frame = valid.subarray(0, Math.floor(rnd() * valid.length));
      else {
        frame = Buffer.from(valid);
        for (let k = 0; k < 3; k++) frame[Math.floor(rnd() * frame.length)] = Math.floor(rnd() * 256);
      }
      const st = await rawWatch([frame]);
      const name = grpc.status[st.code];
      seen.set(name, (seen.get(name) ?? 0) + 1);
      // A mutated frame may still be a valid Subscribe (OK: subscribed) or name
      // a missing path (NOT_FOUND); it is never an internal error.
      expect(['OK', 'INVALID_ARGUMENT', 'NOT_FOUND', 'FAILED_PRECONDITION'], `frame ${frame.toString('hex')}: ${st.details}`).to.include(name);
      if (name === 'INVALID_ARGUMENT') expect(st.details).to.match(/\S/);
    }
    expect(seen.get('INVALID_ARGUMENT')).to.be.greaterThan(10);
  });

  it('gives each hostile Subscribe a clear status', async () => {
    const loop = path.join(dir, 'loop');
    fs.symlinkSync(loop, loop);
    const cases: Array<[string, object, grpc.status, RegExp]> = [
      ['a timeout of 2^32-1', { verdict_timeout_ms: 2 ** 32 - 1, marks: [{ path: dir, events: [5] }] }, grpc.status.INVALID_ARGUMENT, /verdict_timeout_ms 4294967295 exceeds/],
      ['unknown enum values', { group_class: 77, marks: [{ path: dir, events: [5] }] }, grpc.status.INVALID_ARGUMENT, /group_class 77 is unknown/],
      ['an unknown event number', { marks: [{ path: dir, events: [999] }] }, grpc.status.INVALID_ARGUMENT, /999 is not an event type/],
      ['a NUL byte in the path', { marks: [{ path: `${dir}/a\0b`, events: [5] }] }, grpc.status.INVALID_ARGUMENT, /NUL byte/],
      ['a symlink loop', { marks: [{ path: `${loop}/x`, events: [5] }] }, grpc.status.INVALID_ARGUMENT, /ELOOP/],
      ['a permission mark on /proc', { group_class: 2, timeout_decision: 1, marks: [{ path: '/proc/self', events: [16] }] }, grpc.status.INVALID_ARGUMENT, /procfs and sysfs/],
      ['a permission mark on /sys', { group_class: 2, timeout_decision: 1, marks: [{ path: '/sys/kernel', events: [16] }] }, grpc.status.INVALID_ARGUMENT, /procfs and sysfs/],
      ['too many marks', { marks: Array.from({ length: 65 }, () => ({ path: dir, events: [5] })) }, grpc.status.RESOURCE_EXHAUSTED, /65 marks exceed the limit of 64/],
      ['a message over the size limit', { marks: [{ path: '/' + 'x'.repeat(70_000), events: [5] }] }, grpc.status.RESOURCE_EXHAUSTED, /./],
    ];
    for (const [what, sub, code, re] of cases) {
      const st = await rawWatch([subscribeFrame(sub)]);
      expect(grpc.status[st.code], what).to.equal(grpc.status[code]);
      expect(st.details, what).to.match(re);
    }
  });

  it('ignores verdicts for ids that are not pending on this watch', async () => {
    const other = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', verdict_timeout_ms: 30_000, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    const intruder = new WatchStream(client, { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] });
    try {
      await other.subscribed();
      await intruder.subscribed();
      // An opener held by the other watch: its id is pending there while the intruder's verdicts are handled.
      const cat = runChild('cat', [path.join(dir, 'f')]);
      const ev = await other.until(() => other.events.find((e) => e.process.pid === cat.pid), 10_000, "the opener's permission event");
      await waitFor(() => waitingForVerdict(cat.pid), 5000, 'the opener held for a verdict');
      // Ids are per watch: these, the other watch's pending id among them, name nothing pending on the intruder's watch.
      const ids = [ev.id, ...Array.from({ length: 1000 }, (_, i) => String(i))];
      intruder.call.write({ verdicts: { verdicts: ids.map((id) => ({ id, decision: 'DECISION_DENY' })) } });
      // A stream's requests are handled in order: the result of an AddMark
      // sent after them (the mark the watch has) says they were handled.
      intruder.call.write({ add_mark: { request_id: '1', mark: { path: dir, events: ['EVENT_TYPE_OPEN'] } } });
      const result = await intruder.until(() => intruder.responses.find((m) => m.mark_result)?.mark_result, 10_000, 'the AddMark result');
      expect(result.code, result.message).to.equal(grpc.status.OK);
      expect(intruder.status).to.equal(undefined);
      expect(waitingForVerdict(cat.pid), 'the opener is still held').to.equal(true);
      other.verdict(ev.id, 'DECISION_ALLOW');
      const r = await cat.done;
      expect(r.code).to.equal(0);
      expect(r.stdout).to.equal('x');
    } finally {
      other.cancel();
      intruder.cancel();
    }
    await Promise.all([other, intruder].map(closed));
  });

  it('limits the watches one client identity holds', async () => {
    const held: WatchStream[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = new WatchStream(client, { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] });
        held.push(s);
        await s.subscribed();
      }
      // The healthy watch plus three: the fifth is one too many.
      const over = new WatchStream(client, { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] });
      const st = await over.ended();
      expect(grpc.status[st.code]).to.equal('RESOURCE_EXHAUSTED');
      expect(st.details).to.match(/client "local" already holds 4 watches, the limit per client \(--max-watches-per-identity\)/);
    } finally {
      for (const s of held) s.cancel();
    }
    await Promise.all(held.map(closed));
  });

  it('survives 1,000 connections opened and dropped', async () => {
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const c = connect(daemon.address);
          await new Promise<void>((resolve) => c.waitForReady(Date.now() + 5000, () => resolve()));
          c.close();
        }),
      );
    }
    const info: any = await getInfo(client);
    expect(info.active_watches).to.be.greaterThan(0);
  });
});
