// The daemon must never wait on itself. It runs here from a copy of itself
// on a tmpfs this test mounts, while a watch holds a FILESYSTEM OPEN_PERM
// mark on that tmpfs. Any file the daemon's main thread opened from there
// after start-up (a lazily loaded module, say) would block it in open() for
// an answer only it can give. A watchdog kills it if it wedges; killing the
// daemon releases every pending event, so the machine never hangs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { bytesClient, connect, getInfo, runChild, startDaemon, tempDir, waitForLog, WatchStream, type Daemon } from '../fixtures/harness';

const ROOT = path.resolve(__dirname, '..', '..', '..');
/** Only what the daemon runs with: build-time tools stay behind. */
const SKIP_MODULES = new Set(['@bufbuild', '@typescript', 'typescript', 'mocha', '@types', 'chai']);

function withDeadline<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`daemon wedged: no answer to ${what} within ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One ServerReflectionInfo exchange asking list_services, encoded by hand (field 7, string "*"). */
function listServicesRaw(address: string): Promise<Buffer> {
  const c = bytesClient(address, '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', true);
  return new Promise((resolve, reject) => {
    const call = c.call();
    call.on('data', (b: Buffer) => {
      resolve(b);
      call.end();
      c.close();
    });
    call.on('error', reject);
    call.write(Buffer.from([0x3a, 0x01, 0x2a]));
  });
}

describe('e2e: no self-deadlock under a permission mark on the daemon\'s own files', function () {
  this.timeout(120_000);
  let mnt: string;
  let daemon: Daemon | undefined;

  before(function () {
    mnt = tempDir('fanotifyd-selfmnt-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'fanotifyd-test', mnt]);
    fs.cpSync(path.join(ROOT, 'dist'), path.join(mnt, 'dist'), { recursive: true });
    fs.cpSync(path.join(ROOT, 'package.json'), path.join(mnt, 'package.json'));
    fs.cpSync(path.join(ROOT, 'proto'), path.join(mnt, 'proto'), { recursive: true });
    fs.mkdirSync(path.join(mnt, 'sub'));
    for (const m of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
      if (SKIP_MODULES.has(m) || m.startsWith('.')) continue;
      fs.cpSync(path.join(ROOT, 'node_modules', m), path.join(mnt, 'node_modules', m), { recursive: true });
    }
  });

  after(async () => {
    await daemon?.stop();
    execFileSync('umount', ['-l', mnt]);
    fs.rmdirSync(mnt);
  });

  it('keeps serving reflection, GetInfo and new watches while its own files are permission-marked', async () => {
    daemon = await startDaemon([], { script: path.join(mnt, 'dist', 'src', 'daemon', 'main.js'), cwd: mnt });
    const d = daemon;
    const kill = () => d.proc.kill('SIGKILL');
    const client = connect(d.address);
    // report_tid: events name threads, so the daemon must recognise its own
    // pool threads (not just its pid) as itself; on_dir: its directory opens
    // are asked about too.
    const guard = new WatchStream(client, {
      group_class: 'GROUP_CLASS_CONTENT',
      report_tid: true,
      marks: [{ path: mnt, scope: 'MARK_SCOPE_FILESYSTEM', on_dir: true, events: ['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_OPEN_EXEC_PERM'] }],
    });
    guard.onEvent = (ev) => ev.needs_verdict && guard.verdict(ev.id, 'DECISION_ALLOW');
    await withDeadline(guard.subscribed(), 10_000, 'Subscribe', kill);

    // The mark is live: another process's open is asked about and allowed.
    const opener = await runChild('cat', [path.join(mnt, 'package.json')], 15_000).done;
    expect(opener.code).to.equal(0);
    expect(guard.events.some((e) => e.process.pid === opener.pid && e.path === path.join(mnt, 'package.json'))).to.equal(true);

    const reply = await withDeadline(listServicesRaw(d.address), 10_000, 'the first reflection call', kill);
    expect(reply.length).to.be.greaterThan(0);
    expect(reply.toString('latin1')).to.include('fanotify.v1.Fanotify');

    const info: any = await withDeadline(
      getInfo(client),
      10_000,
      'the first GetInfo',
      kill,
    );
    expect(info.kernel_release).to.be.a('string').and.not.equal('');

    // A directory-entry watch on the marked tmpfs makes the daemon open a
    // directory there (for open_by_handle_at): its own permission event,
    // which it must answer itself without asking the client.
    const second = new WatchStream(client, { marks: [{ path: path.join(mnt, 'sub'), events: ['EVENT_TYPE_CREATE'] }] });
    const sub = await withDeadline(second.subscribed(), 10_000, 'a second Watch', kill);
    expect(sub.report_mode).to.equal('REPORT_MODE_DFID_NAME');
    const creator = await runChild('touch', [path.join(mnt, 'sub', 'new')], 15_000).done;
    expect(creator.code).to.equal(0);
    const created = await second.until(() => second.events.find((e) => e.types.includes('EVENT_TYPE_CREATE')), 10_000, 'CREATE');
    expect(created.path).to.equal(path.join(mnt, 'sub', 'new'));
    second.cancel();
    // Nothing the daemon itself opened was sent to the client.
    expect(guard.events.filter((e) => e.process.pid === d.proc.pid)).to.deep.equal([]);
    const guardId = (await guard.subscribed()).watch_id;
    guard.cancel();
    // The daemon's own opens (the directory-entry watch's directory fd, from
    // a pool thread) were answered by the daemon itself, never by the client.
    const closed = await waitForLog(d, (l) => l.msg === 'watch closed' && l.watch === guardId);
    expect(closed.stats.decisions.self).to.be.greaterThan(0);
    client.close();
    expect(await d.stop()).to.equal(0);
    daemon = undefined;
  });
});
