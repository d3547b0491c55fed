// MARK_SCOPE_SUBTREE through the daemon: GetInfo lists it, a permission
// watch denies a nested file, another subtree can be added on the stream,
// and what such a watch cannot hold is refused with a message. The mount
// scope of its marks means a tmpfs this test mounts; openers are children
// with a time limit.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { type Client, connect, type Daemon, getInfo, sh, startDaemon, tempDir, WatchStream } from '../fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('e2e: subtree marks', function () {
  this.timeout(60_000);
  let daemon: Daemon;
  let client: Client;
  let mnt: string;
  const streams: WatchStream[] = [];
  const p = (...parts: string[]) => path.join(mnt, ...parts);
  const watch = (subscribe: any) => {
    const s = new WatchStream(client, subscribe);
    streams.push(s);
    return s;
  };
  const subtree = (dir: string, events = ['EVENT_TYPE_OPEN_PERM']) => ({ path: dir, scope: 'MARK_SCOPE_SUBTREE', events });
  const result = (s: WatchStream, id: string) => s.until(() => s.responses.find((m) => m.mark_result?.request_id === id)?.mark_result, 10_000, `MarkResult ${id}`);
  const cat = (...files: string[]) => sh(`cat ${files.join(' ')} >/dev/null`, 10_000).done;

  before(async () => {
    daemon = await startDaemon();
    client = connect(daemon.address);
  });
  after(async () => {
    client.close();
    expect(await daemon.stop()).to.equal(0);
  });
  beforeEach(() => {
    mnt = tempDir('fanotifyd-subtree-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'fanotifyd-subtree', mnt]);
    for (const d of ['in/a/b/c', 'out/x']) fs.mkdirSync(p(d), { recursive: true });
    for (const f of ['in/a/b/c/secret.key', 'in/a/b/c/ok', 'in/top', 'out/x/f']) fs.writeFileSync(p(f), 'x');
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.cancel();
    try {
      execFileSync('umount', ['-R', mnt], { stdio: 'ignore' });
    } catch {
      // The daemon closes a cancelled watch (and the fd it held there) a moment later.
      execFileSync('umount', ['-R', '-l', mnt]);
    }
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('is listed by GetInfo', async () => {
    expect((await getInfo(client)).mark_scopes).to.include('MARK_SCOPE_SUBTREE');
  });

  it('denies a nested file on the client\'s DENY and never sends what lies outside', async () => {
    const s = watch({ group_class: 'GROUP_CLASS_CONTENT', timeout_decision: 'DECISION_DENY', marks: [subtree(p('in'))] });
    s.onEvent = (ev) => s.verdict(ev.id, ev.path.endsWith('.key') ? 'DECISION_DENY' : 'DECISION_ALLOW');
    await s.subscribed();
    const denied = await cat(p('in/a/b/c/secret.key'));
    expect(denied.signal).to.equal(null);
    expect(denied.code).to.not.equal(0);
    expect(denied.stderr).to.match(/Operation not permitted/);
    expect((await cat(p('out/x/f'), p('in/a/b/c/ok'), p('in/top'))).code).to.equal(0);
    await s.until(() => s.events.some((e) => e.path === p('in/top')), 5000, 'the open at the top');
    expect(s.events.map((e) => e.path)).to.deep.equal([p('in/a/b/c/secret.key'), p('in/a/b/c/ok'), p('in/top')]);
  });

  it('adds another subtree on the stream, and reports what was ignored before in it', async () => {
    const s = watch({ group_class: 'GROUP_CLASS_CONTENT', marks: [subtree(p('in'))] });
    s.onEvent = (ev) => s.verdict(ev.id, 'DECISION_ALLOW');
    await s.subscribed();
    // Outside: answered by the daemon, and its directory ignored from now on.
    expect((await cat(p('out/x/f'))).code).to.equal(0);
    s.call.write({ add_mark: { request_id: '1', mark: subtree(p('out')) } });
    expect(await result(s, '1')).to.include({ code: grpc.status.OK });
    expect((await cat(p('out/x/f'))).code).to.equal(0);
    await s.until(() => s.events.some((e) => e.path === p('out/x/f')), 5000, 'the open in the added subtree');
  });

  it('refuses what a subtree watch cannot hold, saying why', async () => {
    const mixed = watch({ group_class: 'GROUP_CLASS_CONTENT', marks: [subtree(p('in')), { path: p('out'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
    let st = await mixed.ended();
    expect(st.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(st.details).to.match(/holds only MARK_SCOPE_SUBTREE marks/);

    const dirent = watch({ marks: [subtree(p('in'), ['EVENT_TYPE_CREATE'])] });
    st = await dirent.ended();
    expect(st.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(st.details).to.match(/cannot report directory-entry events/);

    const s = watch({ marks: [subtree(p('in'), ['EVENT_TYPE_OPEN'])] });
    await s.subscribed();
    s.call.write({ add_mark: { request_id: '1', mark: { path: p('out'), on_child: true, events: ['EVENT_TYPE_OPEN'] } } });
    expect((await result(s, '1')).message).to.match(/holds only MARK_SCOPE_SUBTREE marks/);
    s.call.write({ remove_mark: { request_id: '2', mark: subtree(p('in'), ['EVENT_TYPE_OPEN']) } });
    const removed = await result(s, '2');
    expect(removed.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(removed.message).to.match(/stay for the life of their watch/);
    expect(s.status).to.equal(undefined);
  });
});
