// The built daemon as a child process, driven over its unix socket by a
// grpc-js client made from proto/. Every permission mark is on a directory
// this test created; every opener is a child with a time limit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { type Client, connect, type Daemon, fdCount, getInfo, runChild, sh, startDaemon, tempDir, waitForLog, WatchStream, withDaemon } from '../fixtures/harness';
import { metric, metricsAddress } from '../fixtures/metrics';
import { waitFor } from '../fixtures/wait';

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * A child with `args` opens dir/f0..f(n-1) while the stream reads nothing,
 * so the daemon holds all n events at once to batch; the stream reads again
 * once the daemon has read all n from the kernel (its only watch: its
 * events-read counter says so). The child sleeps on, so /proc still
 * describes it; the caller kills it.
 */
async function openWhilePaused(s: WatchStream, daemon: Daemon, dir: string, n: number, args: string[]) {
  const metrics = metricsAddress(daemon);
  s.call.pause();
  const r = runChild('sh', ['-c', `for i in $(seq 0 ${n - 1}); do : < ${dir}/f$i; done; sleep 20`, 'sh', ...args], 30_000);
  await waitFor(async () => (await metric(metrics, 'fanotifyd_events_read_total')) >= n, 10_000, `the daemon to read ${n} opens`, 50);
  s.call.resume();
  return r;
}

/** Bytes of command line carried by each EventBatch the stream got. */
const argumentBytesPerBatch = (s: WatchStream) => s.responses.filter((m) => m.events).map((m) => m.events.events.reduce((n: number, e: any) => n + e.process.cmdline.join('\0').length, 0));

describe('e2e: Watch over a unix socket', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let client: Client;
  let dir: string;
  const streams: WatchStream[] = [];

  const watch = (subscribe: any) => {
    const s = new WatchStream(client, subscribe);
    streams.push(s);
    return s;
  };

  before(async () => {
    daemon = await startDaemon(['--verdict-timeout-ms', '5000']);
    client = connect(daemon.address);
  });
  after(async () => {
    client?.close();
    const code = await daemon?.stop();
    expect(code).to.equal(0);
  });
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports open, modify, close-write, close-nowrite and access with path, pid and comm', async () => {
    const file = path.join(dir, 'f.txt');
    fs.writeFileSync(file, 'hello\n');
    const s = watch({
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_MODIFY', 'EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_CLOSE_NOWRITE', 'EVENT_TYPE_ACCESS'] }],
    });
    const sub = await s.subscribed();
    // Left to the daemon, a notification watch is reported by directory handle and name where the kernel can.
    const kernelHasNames = (await getInfo(client)).init_flags.includes('FAN_REPORT_NAME');
    expect(sub.report_mode).to.equal(kernelHasNames ? 'REPORT_MODE_DFID_NAME' : 'REPORT_MODE_FD');
    // The openers stay alive until their events are seen: /proc describes
    // only live processes, and a notification may be read after a short-lived
    // process is gone (then the pid alone is reported).
    const reader = sh(`while read l; do :; done < ${file}; sleep 20`, 30_000);
    const writer = sh(`echo more >> ${file}; sleep 20`, 30_000);
    try {
      const seen = (pid: number, type: string) => s.events.find((e) => e.process.pid === pid && e.types.includes(type));
      for (const [pid, t] of [
        [reader.pid, 'EVENT_TYPE_OPEN'],
        [reader.pid, 'EVENT_TYPE_ACCESS'],
        [reader.pid, 'EVENT_TYPE_CLOSE_NOWRITE'],
        [writer.pid, 'EVENT_TYPE_MODIFY'],
        [writer.pid, 'EVENT_TYPE_CLOSE_WRITE'],
      ] as Array<[number, string]>) {
        const ev = await s.until(() => seen(pid, t), 5000, t);
        expect(ev.path).to.equal(file);
        expect(ev.needs_verdict).to.equal(false);
        expect(ev.process.details).to.equal(true);
        expect(ev.process.comm).to.equal('sh');
        expect(ev.process.ppid).to.equal(process.pid);
        expect(ev.process.cmdline[0]).to.equal('/bin/sh');
        expect(ev.process.exe).to.match(/sh$/);
      }
    } finally {
      reader.kill();
      writer.kill();
    }
    const ids = s.events.map((e) => BigInt(e.id));
    expect(ids).to.deep.equal([...ids].sort((a, b) => (a < b ? -1 : 1)), 'ids increase in kernel order');
  });

  it('keeps a non-UTF-8 file name exact in path_bytes', async () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]); // "f\xff\xfe.bin"
    const full = Buffer.concat([Buffer.from(dir + '/'), name]);
    fs.writeFileSync(full, 'x');
    const s = watch({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    await s.subscribed();
    const r = await sh(`exec cat ${dir}/f*.bin`).done;
    expect(r.code).to.equal(0);
    const ev = await s.until(() => s.events.find((e) => e.process.pid === r.pid));
    expect(Buffer.compare(ev.path_bytes, full)).to.equal(0);
    expect(ev.path).to.include('\ufffd');
  });

  it('says when the file was deleted (REPORT_MODE_FD)', async () => {
    const file = path.join(dir, 'gone');
    fs.writeFileSync(file, 'x');
    const s = watch({ report_mode: 'REPORT_MODE_FD', marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    expect((await s.subscribed()).report_mode).to.equal('REPORT_MODE_FD');
    const r = await sh(`exec 3<${file}; rm ${file}; exec 3<&-`).done;
    expect(r.code).to.equal(0);
    const ev = await s.until(() => s.events.find((e) => e.process.pid === r.pid));
    expect(ev.deleted).to.equal(true);
    expect(ev.path).to.equal(file);
  });

  it('in the default mode names a deleted file by its directory and name, without deleted', async function () {
    const file = path.join(dir, 'gone');
    fs.writeFileSync(file, 'x');
    const s = watch({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    const sub = await s.subscribed();
    if (sub.report_mode !== 'REPORT_MODE_DFID_NAME') {
      console.log(`      skipped: this kernel has no FAN_REPORT_DFID_NAME, so the default is ${sub.report_mode}`);
      this.skip();
    }
    const r = await sh(`exec 3<${file}; rm ${file}; exec 3<&-`).done;
    expect(r.code).to.equal(0);
    const ev = await s.until(() => s.events.find((e) => e.process.pid === r.pid));
    // No event fd, so nothing says the file is gone: the kernel reports the name it was opened by.
    expect(ev.deleted).to.equal(false);
    expect(ev.path).to.equal(file);
    expect(ev.entry).to.deep.include({ dir, name: 'gone', unresolved: false });
  });

  it('reports create, delete and rename with directory and name (FID mode)', async () => {
    const s = watch({
      marks: [{ path: dir, events: ['EVENT_TYPE_CREATE', 'EVENT_TYPE_DELETE', 'EVENT_TYPE_RENAME', 'EVENT_TYPE_MOVED_FROM', 'EVENT_TYPE_MOVED_TO'] }],
    });
    const sub = await s.subscribed();
    expect(sub.report_mode).to.equal('REPORT_MODE_DFID_NAME');
    expect(sub.init_flag_names).to.include.members(['FAN_REPORT_FID', 'FAN_REPORT_DIR_FID', 'FAN_REPORT_NAME']);
    const r = await sh(`touch ${dir}/a && mv ${dir}/a ${dir}/b && rm ${dir}/b`).done;
    expect(r.code).to.equal(0);
    const byType = (t: string) => s.events.find((e) => e.types.includes(t));
    const created = await s.until(() => byType('EVENT_TYPE_CREATE'), 5000, 'CREATE');
    expect(created.entry.dir).to.equal(dir);
    expect(created.entry.name).to.equal('a');
    expect(created.path).to.equal(path.join(dir, 'a'));
    expect(created.process.pid).to.be.greaterThan(0);
    const renamed = await s.until(() => byType('EVENT_TYPE_RENAME'), 5000, 'RENAME');
    expect(renamed.old_entry.name).to.equal('a');
    expect(renamed.new_entry.name).to.equal('b');
    expect(renamed.old_entry.dir).to.equal(dir);
    expect(renamed.new_entry.dir).to.equal(dir);
    const deleted = await s.until(() => byType('EVENT_TYPE_DELETE'), 5000, 'DELETE');
    expect(deleted.entry.name).to.equal('b');
    expect(deleted.entry.handle.length).to.be.greaterThan(0);
    expect(deleted.entry.fsid.length).to.equal(8);
  });

  it('reports opens by directory handle and name when asked for REPORT_MODE_DFID_NAME', async () => {
    fs.mkdirSync(path.join(dir, 'sub'));
    for (const f of ['a', 'b', 'sub/c']) fs.writeFileSync(path.join(dir, f), f);
    const s = watch({ report_mode: 'REPORT_MODE_DFID_NAME', marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }, { path: path.join(dir, 'sub'), on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    const sub = await s.subscribed();
    expect(sub.report_mode).to.equal('REPORT_MODE_DFID_NAME');
    expect(sub.init_flag_names).to.not.include('FAN_REPORT_FD_ERROR');
    // Distinct files: the kernel merges a repeated open still in its queue into the first.
    const r = sh(`cat ${dir}/a ${dir}/b ${dir}/sub/c > /dev/null; sleep 20`, 30_000);
    try {
      // cat may be gone before its /proc is read, so the events are picked by path, not by parent.
      const mine = () => s.events.filter((e) => e.path.startsWith(dir + '/'));
      await s.until(() => mine().length >= 3, 5000, 'three opens');
      expect(mine().map((e) => e.path)).to.deep.equal(['a', 'b', 'sub/c'].map((f) => path.join(dir, f)));
      for (const e of mine()) {
        expect(e.types).to.deep.equal(['EVENT_TYPE_OPEN']);
        expect(e.entry.unresolved).to.equal(false);
        expect(path.join(e.entry.dir, e.entry.name)).to.equal(e.path);
        expect(e.process.pid).to.be.greaterThan(0);
        if (e.process.details) expect(e.process.comm).to.equal('cat');
      }
    } finally {
      r.kill();
    }
  });

  it('asks the kernel for no pidfd with skip_pid_verification, and still describes the process', async function () {
    const info = await getInfo(client);
    if (!info.init_flags?.includes('FAN_REPORT_PIDFD')) {
      console.log(`      skipped: this kernel (${info.kernel_release}) has no FAN_REPORT_PIDFD, so there is nothing to skip`);
      this.skip();
    }
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const plain = watch({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    const skip = watch({ skip_pid_verification: true, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    expect((await plain.subscribed()).init_flag_names).to.include('FAN_REPORT_PIDFD');
    expect((await skip.subscribed()).init_flag_names).to.not.include('FAN_REPORT_PIDFD');
    const r = sh(`: < ${dir}/f; sleep 20`, 30_000);
    try {
      const mine = (s: WatchStream) => s.events.find((e) => e.process.pid === r.pid);
      await plain.until(() => mine(plain), 5000, 'the open, with a pidfd');
      await skip.until(() => mine(skip), 5000, 'the open, without one');
      expect(mine(plain).process).to.deep.include({ details: true, pid_verified: true, comm: 'sh' });
      expect(mine(skip).process).to.deep.include({ details: true, pid_verified: false, comm: 'sh' });
    } finally {
      r.kill();
    }
  });

  it('caps a huge command line and keeps every message under the client limit', async () => {
    // A process with about 1.5 MiB of arguments opens 300 files. Its events
    // carry the arguments that fit in 16 KiB (here the first four and one
    // of 10 KiB), and however they are batched, every message fits grpc's
    // default 4 MiB receive limit.
    await withDaemon(['--metrics', '127.0.0.1:0'], async ({ daemon: own, client: c, dir: d }) => {
      for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
      const s = new WatchStream(c, { max_batch_events: 4096, marks: [{ path: d, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
      await s.subscribed();
      const big = Array.from({ length: 150 }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(10 * 1024));
      const r = await openWhilePaused(s, own, d, 300, big);
      try {
        await s.until(() => s.events.filter((e) => e.process.pid === r.pid).length >= 300, 10_000, '300 opens');
        const mine = s.events.filter((e) => e.process.pid === r.pid);
        expect(new Set(mine.map((e) => e.path)).size).to.equal(300);
        for (const e of mine.filter((x) => x.process.details)) {
          expect(e.process.cmdline_truncated).to.equal(true);
          expect(e.process.cmdline.join('\0').length).to.be.at.most(16 * 1024);
          expect(e.process.cmdline.slice(0, 3)).to.deep.equal(['sh', '-c', e.process.cmdline[2]]);
        }
        expect(s.status).to.equal(undefined);
        // Each event carries about 10 KiB of arguments, 3 MiB in all: the daemon splits them into messages of at most 1 MiB.
        const batchBytes = argumentBytesPerBatch(s);
        expect(batchBytes.length).to.be.above(2);
        expect(Math.max(...batchBytes)).to.be.at.most(1024 * 1024);
      } finally {
        r.kill();
        s.cancel();
      }
    });
  });

  it('keeps event batches within a --max-message-bytes below 1 MiB', async () => {
    const limit = 64 * 1024;
    await withDaemon(['--max-message-bytes', String(limit), '--metrics', '127.0.0.1:0'], async ({ daemon: own, client, dir: d }) => {
      for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
      const s = new WatchStream(client, { max_batch_events: 4096, marks: [{ path: d, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
      await s.subscribed();
      // About 10 KiB of arguments in each event, 500 KiB in all.
      const r = await openWhilePaused(s, own, d, 50, ['x'.repeat(10 * 1024)]);
      try {
        await s.until(() => s.events.filter((e) => e.process.pid === r.pid).length >= 50, 10_000, '50 opens');
        expect(s.status).to.equal(undefined);
        const batchBytes = argumentBytesPerBatch(s);
        expect(batchBytes.length).to.be.above(5);
        expect(Math.max(...batchBytes)).to.be.below(limit);
      } finally {
        r.kill();
        s.cancel();
      }
    });
  });

  it('denies one file with EPERM and allows the others', async () => {
    fs.writeFileSync(path.join(dir, 'secret'), 's');
    fs.writeFileSync(path.join(dir, 'public'), 'p');
    const s = watch({ group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    s.onEvent = (ev) => {
      if (ev.needs_verdict) s.verdict(ev.id, ev.path.endsWith('/secret') ? 'DECISION_DENY' : 'DECISION_ALLOW');
    };
    const sub = await s.subscribed();
    const denied = await runChild('cat', [`${dir}/secret`]).done;
    const allowed = await runChild('cat', [`${dir}/public`]).done;
    expect(denied.code).to.not.equal(0);
    expect(denied.stderr).to.match(/Operation not permitted/);
    expect(allowed.code).to.equal(0);
    expect(allowed.stdout).to.equal('p');
    const ev = s.events.find((e) => e.path.endsWith('/secret'));
    expect(ev.needs_verdict).to.equal(true);
    expect(ev.types).to.deep.equal(['EVENT_TYPE_OPEN_PERM']);
    expect(ev.process.pid).to.equal(denied.pid);
    // The opener waits in the kernel, so /proc still describes it; with a
    // pidfd (5.15+) the daemon confirms the pid was not reused meanwhile.
    expect(ev.process.comm).to.equal('cat');
    expect(ev.process.pid_verified).to.equal(sub.init_flag_names.includes('FAN_REPORT_PIDFD'));
  });

  it('applies timeout_decision when no verdict comes in time', async () => {
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const s = watch({
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: 300,
      timeout_decision: 'DECISION_DENY',
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    const sub = await s.subscribed();
    expect(sub.verdict_timeout_ms).to.equal(300);
    const r = await sh(`cat ${dir}/f`).done;
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Operation not permitted/);
    expect(r.ms).to.be.within(250, 4000);
    // A late verdict for the answered id is ignored, not fatal: the stream
    // goes on and the next event is answered by the client as usual.
    const first = s.events[0].id;
    s.verdict(first, 'DECISION_ALLOW');
    s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_ALLOW');
    const again = await sh(`cat ${dir}/f`).done;
    expect(again.code).to.equal(0); // timeout_decision is DENY: only the verdict can allow it
    expect(s.status).to.equal(undefined);
    expect(s.events.length).to.equal(2);
  });

  it('releases every pending opener at once when the client cancels', async () => {
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `f${i}`), 'x');
    const s = watch({
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: 30_000,
      timeout_decision: 'DECISION_ALLOW',
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    await s.subscribed();
    const openers = [0, 1, 2, 3, 4].map((i) => sh(`cat ${dir}/f${i}`, 20_000));
    await s.until(() => s.events.length >= 5, 10_000, '5 permission events');
    const t0 = Date.now();
    s.cancel();
    const results = await Promise.all(openers.map((o) => o.done));
    for (const r of results) expect(r.code).to.equal(0);
    expect(Date.now() - t0).to.be.below(3000);
  });

  it('ends the stream with a clear status for bad requests and keeps serving others', async () => {
    const healthy = watch({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    await healthy.subscribed();
    const cases: Array<[any, grpc.status, RegExp]> = [
      [{ verdicts: { verdicts: [{ id: '1', decision: 'DECISION_ALLOW' }] } }, grpc.status.FAILED_PRECONDITION, /before Subscribe/],
      [{ subscribe: { marks: [] } }, grpc.status.INVALID_ARGUMENT, /marks is empty/],
      [{ subscribe: { marks: [{ path: 'rel/x', events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.INVALID_ARGUMENT, /relative/],
      [{ subscribe: { marks: [{ path: dir, events: [] }] } }, grpc.status.INVALID_ARGUMENT, /events is empty/],
      [{ subscribe: { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'] }] } }, grpc.status.INVALID_ARGUMENT, /permission event/],
      // A missing path reads the same in every class: the errno name and what it means, no runtime's own wording.
      [{ subscribe: { marks: [{ path: `${dir}/missing`, events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.NOT_FOUND, /^\w+ \/.*\/missing: ENOENT: the path does not exist$/],
      [
        { subscribe: { group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_DENY', marks: [{ path: `${dir}/missing`, events: ['EVENT_TYPE_OPEN_PERM'] }] } },
        grpc.status.NOT_FOUND,
        /^\w+ \/.*\/missing: ENOENT: the path does not exist$/,
      ],
      [
        { subscribe: { group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'] }] } },
        grpc.status.INVALID_ARGUMENT,
        /^Subscribe\.timeout_decision is required for permission classes: DECISION_ALLOW \(fail open\) or DECISION_DENY \(fail closed\)$/,
      ],
      [{ subscribe: { group_class: 7, marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.INVALID_ARGUMENT, /group_class/],
      [{}, grpc.status.INVALID_ARGUMENT, /none of subscribe, verdicts, add_mark, remove_mark, flush_marks, replace_rules, get_stats set/],
      [{ subscribe: { report_mode: 'REPORT_MODE_FD', marks: [{ path: dir, events: ['EVENT_TYPE_CREATE'] }] } }, grpc.status.INVALID_ARGUMENT, /not with REPORT_MODE_FD/],
      [{ subscribe: { report_mode: 'REPORT_MODE_DFID_NAME', group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_ALLOW', marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'] }] } }, grpc.status.INVALID_ARGUMENT, /REPORT_MODE_DFID_NAME is for GROUP_CLASS_NOTIF/],
      [{ subscribe: { report_mode: 'REPORT_MODE_DFID_NAME', group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_ALLOW', marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.INVALID_ARGUMENT, /REPORT_MODE_DFID_NAME is for GROUP_CLASS_NOTIF/],
      [{ subscribe: { report_mode: 'REPORT_MODE_MNT', marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.INVALID_ARGUMENT, /REPORT_MODE_MNT is for mount events/],
      [{ subscribe: { report_mode: 9, marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] } }, grpc.status.INVALID_ARGUMENT, /report_mode 9 is unknown/],
    ];
    for (const [req, code, msg] of cases) {
      const s = new WatchStream(client);
      streams.push(s);
      s.call.write(req);
      const st = await s.ended();
      expect(grpc.status[st.code], JSON.stringify(req)).to.equal(grpc.status[code]);
      expect(st.details).to.match(msg);
    }
    const twice = watch({ marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] });
    await twice.subscribed();
    twice.call.write({ subscribe: { marks: [{ path: dir, events: ['EVENT_TYPE_OPEN'] }] } });
    expect((await twice.ended()).code).to.equal(grpc.status.FAILED_PRECONDITION);

    fs.writeFileSync(path.join(dir, 'ok'), 'x');
    const r = await runChild('cat', [`${dir}/ok`]).done;
    const ev = await healthy.until(() => healthy.events.find((e) => e.process.pid === r.pid), 5000, 'event on the healthy watch');
    expect(ev.path).to.equal(path.join(dir, 'ok'));
  });

  it('keeps the watch after the client half-closes, and ends it when the client cancels', async () => {
    // As grpcurl -d does: send Subscribe, close the request side, read on.
    const s = watch({ marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    s.close();
    const sub = await s.subscribed();
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const r = await runChild('cat', [path.join(dir, 'f')]).done;
    await s.until(() => s.events.find((e) => e.process.pid === r.pid), 10_000, 'an event after the half-close');
    expect(s.status).to.equal(undefined);
    s.cancel();
    await waitForLog(daemon, (l) => l.msg === 'watch closed' && l.watch === sub.watch_id);
  });

  it('reports a refused Subscribe at once when the client half-closes after it', async () => {
    const s = new WatchStream(client);
    streams.push(s);
    s.call.write({ subscribe: { marks: [{ path: `${dir}/missing`, events: ['EVENT_TYPE_OPEN'] }] } });
    s.call.end();
    const st = await s.ended();
    expect(grpc.status[st.code]).to.equal('NOT_FOUND');
  });

  it('answers GetInfo with the probed kernel features', async () => {
    const info: any = await getInfo(client);
    expect(info.kernel_release).to.equal(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    expect(info.group_classes).to.include('GROUP_CLASS_NOTIF');
    expect(info.event_types).to.include('EVENT_TYPE_OPEN');
    expect(Number(info.kernel_limits.max_user_groups)).to.equal(Number(fs.readFileSync('/proc/sys/fs/fanotify/max_user_groups', 'utf8')));
    expect(info.limits.default_verdict_timeout_ms).to.equal(5000);
  });

  it('closes every event fd: no leak after 10,000 events', async () => {
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const s = watch({
      group_class: 'GROUP_CLASS_CONTENT',
      // Permission events only: the kernel never merges them, so the count is exact.
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    let answered = 0;
    s.onEvent = (ev) => {
      if (ev.needs_verdict) {
        answered++;
        s.verdict(ev.id, 'DECISION_ALLOW');
      }
    };
    await s.subscribed();
    const before = fdCount(daemon.proc.pid!);
    const r = await sh(`i=0; while [ $i -lt 10000 ]; do : < ${dir}/f; i=$((i+1)); done`, 60_000).done;
    expect(r.code).to.equal(0);
    await s.until(() => s.events.length >= 10_000, 20_000, '10,000 events');
    expect(answered).to.equal(10_000);
    // The daemon closes each event's fd when it writes the verdict; an fd
    // it opens for a moment of its own (a /proc read) may still be open
    // when we look, so wait for the count to come back, then name whatever stayed.
    const pid = daemon.proc.pid!;
    await waitFor(() => fdCount(pid) === before, 5000, "the daemon's fd count to come back").catch(() => undefined);
    const open = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '(closed)';
      }
    });
    expect(open.length, `daemon fds: ${open.join(', ')}`).to.equal(before);
  });
});

describe('e2e: limits under concurrent Subscribes (dfid_name mode, which awaits before opening its group)', function () {
  this.timeout(60_000);
  const limits: Array<[string, string[]]> = [
    ['--max-watches', ['--max-watches', '2']],
    ['--max-watches-per-identity', ['--max-watches-per-identity', '2']],
  ];
  for (const [what, args] of limits) {
    it(`lets no more than 2 of 20 concurrent Subscribes through ${what} 2`, async () => {
      await withDaemon(args, async ({ client, dir }) => {
        const streams = Array.from({ length: 20 }, () => new WatchStream(client, { report_mode: 'REPORT_MODE_DFID_NAME', marks: [{ path: dir, events: ['EVENT_TYPE_CREATE'] }] }));
        try {
          const subscribed = (s: WatchStream) => s.responses.some((r) => r.subscribed);
          await Promise.all(streams.map((s) => s.until(() => subscribed(s) || s.status, 20_000, 'Subscribed or a status')));
          const refused = streams.filter((s) => s.status);
          expect(streams.filter(subscribed).length, 'watches opened').to.equal(2);
          expect(refused.map((s) => grpc.status[s.status!.code])).to.deep.equal(Array(18).fill('RESOURCE_EXHAUSTED'));
          expect(refused[0].status!.details).to.include(what);
          expect((await getInfo(client)).active_watches).to.equal(2);
        } finally {
          for (const s of streams) s.cancel();
        }
      });
    });
  }
});

