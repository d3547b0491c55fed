// The fanotify surface beyond Subscribe: marks changed on a live stream,
// ignore marks, verdicts cached in the kernel, and extended responses.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { type Client, connect, type Daemon, getInfo, runChild, sh, startDaemon, tempDir, waitForLog, WatchStream, withDaemon } from '../fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('e2e: marks and responses', function () {
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
  const result = (s: WatchStream, id: string) => s.until(() => s.responses.find((m) => m.mark_result?.request_id === id)?.mark_result, 10_000, `MarkResult ${id}`);
  const catFile = async (p: string) => (await runChild('cat', [p]).done).code;

  before(async () => {
    daemon = await startDaemon();
    client = connect(daemon.address);
  });
  after(async () => {
    client.close();
    expect(await daemon.stop()).to.equal(0);
  });
  beforeEach(() => {
    dir = tempDir();
    for (const sub of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, sub));
      fs.writeFileSync(path.join(dir, sub, 'f'), 'x');
    }
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.cancel();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('adds, removes and flushes marks on a live stream, each answered by a MarkResult', async () => {
    const s = watch({ marks: [{ path: path.join(dir, 'a'), on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] }] });
    await s.subscribed();
    const seen = (sub: string) => s.events.filter((e) => e.path === path.join(dir, sub, 'f')).length;

    s.call.write({ add_mark: { request_id: '1', mark: { path: path.join(dir, 'b'), on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] } } });
    expect(await result(s, '1')).to.include({ code: grpc.status.OK, message: '', errno: '' });
    await catFile(path.join(dir, 'b', 'f'));
    await s.until(() => seen('b') === 1, 5000, 'event under the added mark');

    s.call.write({ remove_mark: { request_id: '2', mark: { path: path.join(dir, 'b'), on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] } } });
    expect((await result(s, '2')).code).to.equal(grpc.status.OK);
    s.call.write({ flush_marks: { request_id: '3', scope: 'MARK_SCOPE_INODE' } });
    expect((await result(s, '3')).code).to.equal(grpc.status.OK);
    await catFile(path.join(dir, 'b', 'f'));
    await catFile(path.join(dir, 'a', 'f'));
    // A marker after the flush: a fresh mark on a third directory proves
    // the stream still delivers, and that nothing came from a and b.
    fs.mkdirSync(path.join(dir, 'c'));
    fs.writeFileSync(path.join(dir, 'c', 'f'), 'x');
    s.call.write({ add_mark: { request_id: '4', mark: { path: path.join(dir, 'c'), on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] } } });
    expect((await result(s, '4')).code).to.equal(grpc.status.OK);
    await catFile(path.join(dir, 'c', 'f'));
    await s.until(() => seen('c') === 1, 5000, 'event under the new mark');
    expect([seen('a'), seen('b')]).to.deep.equal([0, 1]);
  });

  it('reports a failed mark request in its MarkResult and keeps the stream', async () => {
    const s = watch({ report_mode: 'REPORT_MODE_FD', marks: [{ path: path.join(dir, 'a'), events: ['EVENT_TYPE_OPEN'] }] });
    await s.subscribed();
    s.call.write({ add_mark: { request_id: '7', mark: { path: path.join(dir, 'missing'), events: ['EVENT_TYPE_OPEN'] } } });
    const r = await result(s, '7');
    expect(r.code).to.equal(grpc.status.NOT_FOUND);
    expect(r.errno).to.equal('ENOENT');
    s.call.write({ add_mark: { request_id: '8', mark: { path: path.join(dir, 'a', 'f'), only_dir: true, events: ['EVENT_TYPE_OPEN'] } } });
    const r8 = await result(s, '8');
    expect(r8.errno).to.equal('ENOTDIR');
    s.call.write({ add_mark: { request_id: '9', mark: { path: path.join(dir, 'b'), events: ['EVENT_TYPE_CREATE'] } } });
    const r9 = await result(s, '9');
    expect(r9.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(r9.message).to.match(/report mode/);
    s.call.write({ add_mark: { request_id: '10', mark: { path: 'relative', events: ['EVENT_TYPE_OPEN'] } } });
    expect((await result(s, '10')).message).to.match(/AddMark\.mark: path "relative" is relative/);
    expect(s.status).to.equal(undefined);
  });

  it('ignores events under an ignore mark (FAN_MARK_IGNORE)', async () => {
    const s = watch({
      marks: [
        { path: dir, scope: 'MARK_SCOPE_FILESYSTEM', events: ['EVENT_TYPE_CLOSE_NOWRITE'] },
        { path: path.join(dir, 'b'), ignore: true, on_child: true, events: ['EVENT_TYPE_CLOSE_NOWRITE'] },
      ],
    });
    await s.subscribed();
    const r = await sh(`exec 3<${dir}/b/f; exec 3<&-; exec 3<${dir}/a/f; exec 3<&-`).done;
    expect(r.code).to.equal(0);
    await s.until(() => s.events.some((e) => e.path === path.join(dir, 'a', 'f')), 5000, 'event outside the ignored directory');
    expect(s.events.filter((e) => e.path.startsWith(path.join(dir, 'b')))).to.deep.equal([]);
  });

  it('caches an ALLOW in the kernel until the file is modified', async () => {
    const file = path.join(dir, 'a', 'f');
    const s = watch({ group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: path.join(dir, 'a'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    s.onEvent = (ev) => ev.needs_verdict && s.call.write({ verdicts: { verdicts: [{ id: ev.id, decision: 'DECISION_ALLOW', cache: true }] } });
    await s.subscribed();
    const opensOfFile = () => s.events.filter((e) => e.path === file).length;
    expect(await catFile(file)).to.equal(0);
    expect(opensOfFile()).to.equal(1);
    // Unchanged: the kernel does not ask again.
    expect(await catFile(file)).to.equal(0);
    expect(await catFile(file)).to.equal(0);
    // The append's open is still covered by the cache; its write clears it,
    // so the next open is asked about again.
    expect((await sh(`echo more >> ${file}`).done).code).to.equal(0);
    expect(opensOfFile()).to.equal(1);
    expect(await catFile(file)).to.equal(0);
    expect(opensOfFile()).to.equal(2);
  });

  it('denies with a chosen errno in a pre-content watch, and refuses an errno the kernel does not take', async () => {
    const file = path.join(dir, 'a', 'f');
    const s = watch({ group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [{ path: path.join(dir, 'a'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    s.onEvent = (ev) => ev.needs_verdict && s.call.write({ verdicts: { verdicts: [{ id: ev.id, decision: 'DECISION_DENY', errno: 16 }] } });
    await s.subscribed();
    const r = await runChild('cat', [file]).done;
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/Device or resource busy/);

    const bad = watch({ group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [{ path: path.join(dir, 'b'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    bad.onEvent = (ev) => ev.needs_verdict && bad.call.write({ verdicts: { verdicts: [{ id: ev.id, decision: 'DECISION_DENY', errno: 2 }] } });
    await bad.subscribed();
    const opener = runChild('cat', [path.join(dir, 'b', 'f')]);
    const st = await bad.ended();
    expect(st.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(st.details).to.match(/errno 2 \(ENOENT\) is not one the kernel accepts/);
    // The stream ended: its pending event got the timeout decision (ALLOW).
    expect((await opener.done).code).to.equal(0);
  });
});

describe('e2e: pre-content events', function () {
  this.timeout(30_000);
  it('reports the byte range of a FAN_PRE_ACCESS read and lets the client deny it', async function () {
    await withDaemon([], async ({ client, dir }) => {
      const info: any = await getInfo(client);
      if (!info.event_types.includes('EVENT_TYPE_PRE_ACCESS')) {
        console.log(`      skipped: kernel ${info.kernel_release} has no FAN_PRE_ACCESS on ${dir}'s filesystem`);
        this.skip();
      }
      const file = path.join(dir, 'data');
      fs.writeFileSync(file, Buffer.alloc(8192, 0x61));
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_PRE_ACCESS'] }] });
      s.onEvent = (ev) => ev.needs_verdict && s.call.write({ verdicts: { verdicts: [{ id: ev.id, decision: 'DECISION_DENY', errno: 5 }] } });
      await s.subscribed();
      const r = await runChild('dd', [`if=${file}`, 'of=/dev/null', 'bs=4096', 'skip=1', 'count=1']).done;
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/Input\/output error/);
      const ev = s.events.find((e) => e.types.includes('EVENT_TYPE_PRE_ACCESS'));
      expect(ev.path).to.equal(file);
      expect(Number(ev.range.offset)).to.equal(4096);
      expect(Number(ev.range.count)).to.be.greaterThan(0);
      s.cancel();
    });
  });
});

describe('e2e: pre-content support by filesystem', function () {
  this.timeout(30_000);
  it('refuses FAN_PRE_ACCESS on tmpfs (EOPNOTSUPP) with FAILED_PRECONDITION', async () => {
    await withDaemon([], async ({ client, dir }) => {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'fanotifyd-test', dir]);
      try {
        const s = new WatchStream(client, { group_class: 'GROUP_CLASS_PRE_CONTENT', marks: [{ path: dir, events: ['EVENT_TYPE_PRE_ACCESS'] }] });
        const st = await s.ended();
        expect(grpc.status[st.code]).to.equal('FAILED_PRECONDITION');
        expect(st.details).to.match(/EOPNOTSUPP: this filesystem does not support the requested events/);
      } finally {
        execFileSync('umount', [dir]);
      }
    });
  });
});

describe('e2e: directory handles', function () {
  this.timeout(30_000);
  it('reports a handle it cannot resolve (the directory is gone) with fsid, handle and name, flagged unresolved', async () => {
    await withDaemon([], async ({ daemon, client, dir }) => {
      const sub = path.join(dir, 'sub');
      fs.mkdirSync(sub);
      fs.writeFileSync(path.join(sub, 'f'), 'x');
      const s = new WatchStream(client, { marks: [{ path: sub, events: ['EVENT_TYPE_DELETE', 'EVENT_TYPE_DELETE_SELF'], on_dir: true }] });
      await s.subscribed();
      // Stop the daemon from reading until the directory is gone, so its
      // handle is stale by the time the event is resolved.
      daemon.proc.kill('SIGSTOP');
      const r = await sh(`rm -r ${sub}`).done;
      daemon.proc.kill('SIGCONT');
      expect(r.code).to.equal(0);
      const del = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_DELETE')), 5000, 'DELETE');
      expect(del.entry.unresolved).to.equal(true);
      expect(del.entry.dir).to.equal('');
      expect(del.entry.name).to.equal('f');
      expect(del.entry.fsid.length).to.equal(8);
      expect(del.entry.handle.length).to.be.greaterThan(0);
      expect(del.path).to.equal('');
      const self = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_DELETE_SELF')), 5000, 'DELETE_SELF');
      expect(self.is_dir).to.equal(true);
      expect(self.entry.unresolved).to.equal(true);
      s.cancel();
    });
  });
});

describe('e2e: mount events', function () {
  this.timeout(30_000);
  it('reports MNT_ATTACH and MNT_DETACH with the mount id, in a fresh mount namespace', async function () {
    const daemon = await startDaemon();
    const client = connect(daemon.address);
    const dir = tempDir();
    // A shell in its own mount namespace that mounts a tmpfs when told to.
    const child = spawn('timeout', ['20', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', `echo ready; read x; mount -t tmpfs fanotifyd-test ${dir}; umount ${dir}; echo done`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const info: any = await getInfo(client);
      if (!info.mark_scopes.includes('MARK_SCOPE_MOUNT_NAMESPACE')) {
        console.log(`      skipped: kernel ${info.kernel_release} has no FAN_MARK_MNTNS (6.14+)`);
        this.skip();
      }
      await new Promise((r) => child.stdout.once('data', r));
      // timeout(1) forks: the shell is its child, in the new namespace.
      const shPid = Number(execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim());
      const s = new WatchStream(client, { marks: [{ path: `/proc/${shPid}/ns/mnt`, scope: 'MARK_SCOPE_MOUNT_NAMESPACE', events: ['EVENT_TYPE_MNT_ATTACH', 'EVENT_TYPE_MNT_DETACH'] }] });
      const sub = await s.subscribed();
      expect(sub.report_mode).to.equal('REPORT_MODE_MNT');
      child.stdin.write('go\n');
      const attach = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_MNT_ATTACH')), 10_000, 'MNT_ATTACH');
      const detach = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_MNT_DETACH')), 10_000, 'MNT_DETACH');
      expect(Number(attach.mnt_id), JSON.stringify(attach)).to.be.greaterThan(0);
      expect(detach.mnt_id).to.equal(attach.mnt_id);
      s.cancel();
    } finally {
      child.kill('SIGKILL');
      client.close();
      expect(await daemon.stop()).to.equal(0);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('e2e: thread ids', function () {
  this.timeout(30_000);
  it('with report_tid names the thread that opened the file and its process', async () => {
    await withDaemon([], async ({ client, dir }) => {
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, 'x');
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', report_tid: true, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
      s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_ALLOW');
      const sub = await s.subscribed();
      expect(sub.init_flag_names).to.include('FAN_REPORT_TID');
      const script = `import threading\ndef f():\n    print(threading.get_native_id())\n    open(${JSON.stringify(file)}).read()\nt = threading.Thread(target=f)\nt.start()\nt.join()\n`;
      const r = await runChild('python3', ['-c', script]).done;
      expect(r.code).to.equal(0);
      const tid = Number(r.stdout.trim());
      const ev = s.events.find((e) => e.path === file);
      expect(ev.process.tid).to.equal(tid);
      expect(ev.process.pid).to.equal(r.pid);
      expect(tid).to.not.equal(r.pid);
      expect(ev.process.comm).to.equal('python3');
      s.cancel();
    });
  });
});

describe('e2e: report flags', function () {
  this.timeout(30_000);
  let daemon: Daemon;
  let client: Client;
  let dir: string;
  before(async () => {
    daemon = await startDaemon();
    client = connect(daemon.address);
  });
  after(async () => {
    client.close();
    expect(await daemon.stop()).to.equal(0);
  });
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('report_target_fid gives directory-entry events the entry\'s own handle', async () => {
    const s = new WatchStream(client, { report_target_fid: true, marks: [{ path: dir, events: ['EVENT_TYPE_CREATE'] }] });
    const sub = await s.subscribed();
    expect(sub.init_flag_names).to.include('FAN_REPORT_TARGET_FID');
    expect((await sh(`touch ${dir}/new`).done).code).to.equal(0);
    const ev = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_CREATE')), 5000, 'CREATE');
    expect(ev.target.handle.length).to.be.greaterThan(0);
    expect(Buffer.compare(ev.target.handle, ev.entry.handle)).to.not.equal(0);
    expect(Buffer.compare(ev.target.fsid, ev.entry.fsid)).to.equal(0);
    s.cancel();
  });

  it('report_fd_error is taken for notification watches and refused for permission ones', async () => {
    const s = new WatchStream(client, { report_fd_error: true, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
    const sub = await s.subscribed();
    expect(sub.init_flag_names).to.include('FAN_REPORT_FD_ERROR');
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const r = await runChild('cat', [path.join(dir, 'f')]).done;
    const ev = await s.until(() => s.events.find((e) => e.process.pid === r.pid), 5000, 'OPEN');
    expect(ev.fd_error).to.equal(0);
    expect(ev.path).to.equal(path.join(dir, 'f'));
    s.cancel();
    const perm = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', report_fd_error: true, marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    const st = await perm.ended();
    expect(grpc.status[st.code]).to.equal('INVALID_ARGUMENT');
    expect(st.details).to.match(/report_fd_error is for notification watches/);
  });
});

describe('e2e: FAN_AUDIT responses', function () {
  this.timeout(30_000);
  it('writes FAN_AUDIT and FAN_INFO audit-rule responses, and the kernel takes them as they are (no plain fallback)', async () => {
    await withDaemon([], async ({ daemon, client, dir }) => {
      fs.writeFileSync(path.join(dir, 'f'), 'x');
      fs.writeFileSync(path.join(dir, 'g'), 'x');
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', enable_audit: true, marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
      // f: DENY|FAN_AUDIT; g: ALLOW|FAN_AUDIT|FAN_INFO with audit rule 7.
      s.onEvent = (ev) =>
        ev.needs_verdict &&
        s.call.write({
          verdicts: { verdicts: [ev.path.endsWith('/f') ? { id: ev.id, decision: 'DECISION_DENY', audit: true } : { id: ev.id, decision: 'DECISION_ALLOW', audit: true, audit_rule: 7 }] },
        });
      const sub = await s.subscribed();
      expect(sub.init_flag_names).to.include('FAN_ENABLE_AUDIT');
      const r = await runChild('cat', [path.join(dir, 'f')]).done;
      expect(r.stderr).to.match(/Operation not permitted/);
      expect((await runChild('cat', [path.join(dir, 'g')]).done).code).to.equal(0);
      s.cancel();
      const stats = (await waitForLog(daemon, (l) => l.msg === 'watch closed' && l.watch === sub.watch_id)).stats;
      // A kernel that refused FAN_AUDIT would have been answered plainly and counted here.
      expect(stats.responseFallbacks).to.equal(0);
      expect(stats.responseErrors).to.equal(0);
      expect(stats.denied).to.equal(1);
      expect(stats.allowed).to.equal(1);
    });
  });
});
