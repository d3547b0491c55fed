// FAN_FS_ERROR on a small ext4 filesystem this test makes and mounts on a
// loop device; the error is raised through ext4's own trigger_fs_error
// knob, as LTP's fanotify22 does, so no data is ever really damaged.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, getInfo, startDaemon, tempDir, WatchStream } from '../fixtures/harness';

function can(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('e2e: filesystem errors', function () {
  this.timeout(60_000);
  it('reports FS_ERROR with the error number and count', async function () {
    const reasons: string[] = [];
    if (!fs.existsSync('/dev/loop-control')) reasons.push('no /dev/loop-control');
    if (!can('mkfs.ext4', ['-V'])) reasons.push('no mkfs.ext4');
    if (reasons.length) {
      console.log(`      skipped: ${reasons.join(', ')}`);
      this.skip();
    }
    const base = tempDir('fanotifyd-ext4-');
    const img = path.join(base, 'fs.img');
    const mnt = path.join(base, 'mnt');
    fs.mkdirSync(mnt);
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 16 * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
    execFileSync('mount', ['-o', 'loop,errors=continue', img, mnt]);
    const daemon = await startDaemon();
    const client = connect(daemon.address);
    try {
      const info = await getInfo(client);
      if (!info.event_types.includes('EVENT_TYPE_FS_ERROR')) {
        console.log(`      skipped: kernel ${info.kernel_release} has no FAN_FS_ERROR (5.16+)`);
        this.skip();
      }
      const dev = path.basename(execFileSync('findmnt', ['-n', '-o', 'SOURCE', mnt], { encoding: 'utf8' }).trim());
      const trigger = `/sys/fs/ext4/${dev}/trigger_fs_error`;
      if (!fs.existsSync(trigger)) {
        console.log(`      skipped: ${trigger} is missing`);
        this.skip();
      }
      const s = new WatchStream(client, { marks: [{ path: mnt, scope: 'MARK_SCOPE_FILESYSTEM', events: ['EVENT_TYPE_FS_ERROR'] }] });
      const sub = await s.subscribed();
      expect(sub.report_mode).to.equal('REPORT_MODE_DFID_NAME');
      fs.writeFileSync(trigger, 'fanotifyd test error');
      const ev = await s.until(() => s.events.find((e) => e.types.includes('EVENT_TYPE_FS_ERROR')), 10_000, 'FS_ERROR');
      // ext4_error reports EFSCORRUPTED, which is EUCLEAN (117) on Linux.
      expect(ev.fs_error.error).to.equal(117);
      expect(ev.fs_error.count).to.be.greaterThan(0);
      s.cancel();
    } finally {
      client.close();
      expect(await daemon.stop()).to.equal(0);
      execFileSync('umount', [mnt]);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
