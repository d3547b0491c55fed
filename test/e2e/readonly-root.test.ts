// The daemon on a read-only root, as deploy/daemonset.yaml runs it
// (readOnlyRootFilesystem): in a private mount namespace where every mount
// is read-only except a tmpfs for the socket's directory, it starts,
// serves GetInfo and a watch, writes nothing but its socket, and exits 0.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, DAEMON, followDaemon, getInfo, runChild, tempDir, WatchStream, type Client } from '../fixtures/harness';

const REPO = path.resolve(__dirname, '..', '..', '..');

/**
 * Runs as `sh -c SETUP sh SOCKDIR CMD...` in the new namespace: the tmpfs,
 * then every other mount read-only, then a check of that premise (exit 97
 * if anything the daemon might write to is writable), then the daemon.
 */
const SETUP = `
set -eu
sockdir=$1; shift
mount -t tmpfs -o size=1m,mode=0755 fanotifyd-ro-test "$sockdir"
findmnt -rn -o TARGET | while read -r m; do
  [ "$m" = "$sockdir" ] && continue
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
for d in / /tmp /run /dev/shm "$(dirname "$sockdir")" "${REPO}" "$HOME"; do
  [ -d "$d" ] || continue
  if touch "$d/.fanotifyd-ro-check" 2>/dev/null; then rm -f "$d/.fanotifyd-ro-check"; echo "still writable: $d" >&2; exit 97; fi
done
exec "$@"
`;

/** Why this test cannot run here, or undefined. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for a mount namespace';
  for (const tool of ['unshare', 'findmnt']) {
    if (spawnSync(tool, ['--version']).error) return `${tool} (util-linux) is not installed`;
  }
  return undefined;
}

describe('e2e: read-only root', function () {
  this.timeout(60_000);

  it('starts, serves GetInfo and a watch, and stops with 0 when only the socket directory is writable', async function () {
    const why = cannotRun();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    // The mount point, on the real root; the tmpfs over it exists only in the daemon's namespace.
    const sockDir = tempDir('fanotifyd-ro-');
    const sock = path.join(sockDir, 'run', 'fanotifyd.sock');
    const proc: ChildProcess = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', SETUP, 'sh', sockDir, process.execPath, DAEMON, '--listen', `unix:${sock}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const d = followDaemon(proc, 20_000);
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
