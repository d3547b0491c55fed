// The host's view from a mount namespace of the daemon's own, as systemd's
// sandboxing and every container give it: the daemon under `unshare -m`
// with every mount read-only (but a tmpfs for its socket), given
// --host-root /proc/<this test's pid>/root. Inode, mount and filesystem
// watches of a tmpfs this test mounted, written as host paths, see a host
// process's open with the host's path and pid. Without the host root, the
// mount mark would attach to the namespace's copy of the tmpfs's mount and
// see nothing of the host's processes. dfid_name mode, a permission mark
// and a subtree go through the host root too.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { readOnlyDaemon, readOnlyNamespaceUnusable } from '../fixtures/readonly-namespace';
import { connect, getInfo, runChild, tempDir, waitForLog, WatchStream, withDaemon, type Client } from '../fixtures/harness';

/** The daemon in its own read-only mount namespace; resolves once it serves. */
async function startInNamespace(sockDir: string, sock: string, extra: string[]) {
  const d = readOnlyDaemon(sockDir, sock, extra);
  await d.serving;
  return d;
}

describe('e2e: host root from a mount namespace of its own', function () {
  this.timeout(60_000);

  it('inode, mount and filesystem watches of host paths see a host process, with host paths and pids', async function () {
    const why = readOnlyNamespaceUnusable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const host = tempDir();
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'fanotifyd-hostroot-data', host]);
    fs.writeFileSync(path.join(host, 'f'), 'x');
    const sockDir = tempDir('fanotifyd-ro-');
    const sock = path.join(sockDir, 'fanotifyd.sock');
    const hostRoot = `/proc/${process.pid}/root`;
    let client: Client | undefined;
    let d: Awaited<ReturnType<typeof startInNamespace>> | undefined;
    try {
      d = await startInNamespace(sockDir, sock, ['--host-root', hostRoot]);
      client = connect(`unix:/proc/${d.proc.pid}/root${sock}`);
      const info = await getInfo(client);
      expect(info.host_root).to.equal(hostRoot);
      expect(info.host_root_note).to.equal('');
      const watches: Array<{ scope: string; w: WatchStream }> = (['MARK_SCOPE_INODE', 'MARK_SCOPE_MOUNT', 'MARK_SCOPE_FILESYSTEM'] as const).map((scope) => {
        const w = new WatchStream(client!, { marks: [{ path: host, scope, on_child: scope === 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'] }] });
        return { scope, w };
      });
      // The same path in dfid_name mode (the handle resolver's fd opened beneath the host root) and with a permission mark.
      const dfid = new WatchStream(client, { report_mode: 'REPORT_MODE_DFID_NAME', marks: [{ path: host, scope: 'MARK_SCOPE_FILESYSTEM', events: ['EVENT_TYPE_OPEN'] }] });
      const perm = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: host, scope: 'MARK_SCOPE_MOUNT', events: ['EVENT_TYPE_OPEN_PERM'] }] });
      perm.onEvent = (ev) => perm.verdict(ev.id, 'DECISION_ALLOW');
      // A subtree follows the host's mount table and marks through the host root as well.
      const subtree = new WatchStream(client, { marks: [{ path: host, scope: 'MARK_SCOPE_SUBTREE', events: ['EVENT_TYPE_OPEN'] }] });
      watches.push({ scope: 'MARK_SCOPE_FILESYSTEM, dfid_name', w: dfid }, { scope: 'MARK_SCOPE_MOUNT, OPEN_PERM', w: perm }, { scope: 'MARK_SCOPE_SUBTREE', w: subtree });
      for (const { w } of watches) await w.subscribed();
      const r = await runChild('/bin/cat', [path.join(host, 'f')]).done;
      expect(r.code).to.equal(0);
      for (const { scope, w } of watches) {
        const ev = await w.until(() => w.events.find((e) => e.process.pid === r.pid), 10_000, `the host open in the ${scope} watch`);
        expect(ev.path, scope).to.equal(path.join(host, 'f'));
        w.cancel();
      }
      client.close();
      client = undefined;
      d.proc.kill('SIGTERM');
      expect(await d.exited, d.stderr()).to.equal(0);
    } finally {
      client?.close();
      if (d && d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
      await d?.exited;
      spawnSync('umount', [host]);
      fs.rmSync(host, { recursive: true, force: true });
      fs.rmSync(sockDir, { recursive: true, force: true });
    }
  });

  it('by default: /proc/1/root outside PID 1\'s namespace, else /; a fallback said in the log and in GetInfo', async () => {
    const ns = (pid: number | string) => {
      try {
        return fs.statSync(`/proc/${pid}/ns/mnt`).ino;
      } catch {
        return undefined;
      }
    };
    let readable = true;
    try {
      fs.readdirSync('/proc/1/root');
    } catch {
      readable = false;
    }
    const own = ns('self');
    const init = ns(1);
    await withDaemon([], async ({ daemon, client }) => {
      const info = await getInfo(client);
      if (init !== undefined && init === own) {
        expect(info).to.deep.include({ host_root: '/', host_root_note: '' });
      } else if (init !== undefined && readable) {
        expect(info).to.deep.include({ host_root: '/proc/1/root', host_root_note: '' });
      } else {
        // This machine: PID 1 runs outside the sandbox and /proc/1/root is refused even to root.
        expect(info.host_root).to.equal('/');
        expect(info.host_root_note).to.match(/--host-root \/proc\/<a host pid>\/root$/);
        const line = await waitForLog(daemon, (l) => l.msg === 'host root' && l.level === 'warn');
        expect(line.note).to.equal(info.host_root_note);
      }
    });
  });
});
