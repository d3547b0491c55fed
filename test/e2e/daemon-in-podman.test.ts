// The daemon in a container configured as deploy/daemonset.yaml runs it:
// the host's pid namespace, a read-only root, all capabilities dropped but
// CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, its socket in a
// volume shared with the host. It starts, answers GetInfo over that socket,
// and inode, mount and filesystem watches of a tmpfs this test mounted on
// the host, written as host paths, see a host process's open with the
// host's path and pid. The host root is named (--host-root /proc/<this
// test's pid>/root): this host's PID 1 cannot be looked into, even by root.
// Skipped, saying why, where podman cannot start a container.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, DAEMON, followDaemon, getInfo, runChild, tempDir, WatchStream, type Client } from '../fixtures/harness';
import { PODMAN_RUN, podmanUnusable } from '../fixtures/podman';

describe('e2e: the daemon in a container, as the DaemonSet runs it', function () {
  this.timeout(180_000);

  it('starts, serves GetInfo over the shared socket, and inode, mount and filesystem watches see host processes', async function () {
    const why = podmanUnusable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const data = tempDir();
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'fanotifyd-podman-data', data]);
    fs.writeFileSync(path.join(data, 'f'), 'x');
    const run = tempDir();
    const name = `fanotifyd-test-daemon-${process.pid}`;
    const hostRoot = `/proc/${process.pid}/root`;
    const proc: ChildProcess = spawn(
      'podman',
      [
        ...PODMAN_RUN,
        '--rm',
        '--name',
        name,
        '--pid=host',
        '--read-only',
        '--cap-drop=all',
        '--cap-add=SYS_ADMIN,DAC_READ_SEARCH,SYS_PTRACE',
        '-v',
        `${run}:/run/fanotifyd`,
        '--rootfs',
        '/:O',
        process.execPath,
        DAEMON,
        '--listen',
        'unix:/run/fanotifyd/fanotifyd.sock',
        '--host-root',
        hostRoot,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const d = followDaemon(proc, 120_000, 'the container');
    const exited = d.exited;
    let client: Client | undefined;
    try {
      await d.serving;
      client = connect(`unix:${path.join(run, 'fanotifyd.sock')}`);
      const info = await getInfo(client);
      expect(info.group_classes).to.include('GROUP_CLASS_CONTENT');
      expect(info.host_root).to.equal(hostRoot);
      const watches = (['MARK_SCOPE_INODE', 'MARK_SCOPE_MOUNT', 'MARK_SCOPE_FILESYSTEM'] as const).map((scope) => ({
        scope,
        w: new WatchStream(client!, { marks: [{ path: data, scope, on_child: scope === 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'] }] }),
      }));
      for (const { w } of watches) await w.subscribed();
      const r = await runChild('/bin/cat', [path.join(data, 'f')]).done;
      expect(r.code).to.equal(0);
      for (const { scope, w } of watches) {
        const ev = await w.until(() => w.events.find((e) => e.process.pid === r.pid), 10_000, `the host open in the ${scope} watch`);
        expect(ev.path, scope).to.equal(path.join(data, 'f'));
        expect(ev.process.container, scope).to.equal(null);
        w.cancel();
      }
      client.close();
      client = undefined;
      proc.kill('SIGTERM');
      expect(await exited, d.stderr()).to.equal(0);
    } finally {
      client?.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        spawnSync('podman', ['kill', name], { timeout: 60_000 });
        proc.kill('SIGKILL');
      }
      await exited;
      spawnSync('umount', [data]);
      fs.rmSync(data, { recursive: true, force: true });
      fs.rmSync(run, { recursive: true, force: true });
    }
  });
});
