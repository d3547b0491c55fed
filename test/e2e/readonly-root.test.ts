// The daemon on a read-only root, as deploy/daemonset.yaml runs it
// (readOnlyRootFilesystem): in a private mount namespace where every mount
// is read-only except a tmpfs for the socket's directory, it starts,
// serves GetInfo and a watch, writes nothing but its socket, and exits 0.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { readOnlyDaemon, readOnlyNamespaceUnusable } from '../fixtures/readonly-namespace';
import { connect, getInfo, runChild, tempDir, WatchStream, type Client } from '../fixtures/harness';

describe('e2e: read-only root', function () {
  this.timeout(60_000);

  it('starts, serves GetInfo and a watch, and stops with 0 when only the socket directory is writable', async function () {
    const why = readOnlyNamespaceUnusable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    // The mount point, on the real root; the tmpfs over it exists only in the daemon's namespace.
    const sockDir = tempDir('fanotifyd-ro-');
    const sock = path.join(sockDir, 'run', 'fanotifyd.sock');
    const d = readOnlyDaemon(sockDir, sock);
    const proc = d.proc;
    const exited = d.exited;
    let client: Client | undefined;
    try {
      // unshare and sh exec, so this pid is the daemon's; its namespace is reached through /proc/PID/root.
      const inside = (p: string) => `/proc/${proc.pid}/root${p}`;
      await d.serving;
      client = connect(`unix:${inside(sock)}`);
      const info = await getInfo(client);
      expect(info.group_classes).to.include('GROUP_CLASS_CONTENT');
      // A watch: a mark on the tmpfs, and an event from a file opened there.
      fs.writeFileSync(inside(path.join(sockDir, 'f')), 'x');
      const w = new WatchStream(client, { marks: [{ path: sockDir, on_child: true, events: ['EVENT_TYPE_OPEN'] }] });
      await w.subscribed();
      const r = await runChild('cat', [inside(path.join(sockDir, 'f'))]).done;
      await w.until(() => w.events.find((e) => e.process.pid === r.pid), 10_000, 'the open of f');
      w.cancel();
      // Nothing but the socket (and the test's own file) was written where writing was possible.
      expect(fs.readdirSync(inside(sockDir)).sort()).to.deep.equal(['f', 'run']);
      expect(fs.readdirSync(inside(path.dirname(sock)))).to.deep.equal(['fanotifyd.sock']);
      client.close();
      client = undefined;
      proc.kill('SIGTERM');
      expect(await exited, d.stderr()).to.equal(0);
    } finally {
      client?.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      // The namespace, and its mounts, ended with its last process.
      fs.rmSync(sockDir, { recursive: true, force: true });
    }
  });
});
