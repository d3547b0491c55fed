// What names a process for the cache, against the real kernel: the pidfs
// inode of the pidfds fanotify hands out (one per process, kept after it
// exits), and the start time in /proc/PID/stat.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { decodeEvents, type RawEvent } from '../../src/kernel/decoder';
import * as ffi from '../../src/kernel/ffi';
import { openGroup } from '../../src/kernel/group';
import { pidfdInode, readStartTime } from '../../src/host/process';
import { sh, tempDir } from '../fixtures/harness';

/** Read the group until it has given n events (the kernel makes a pidfd only for a process still there at the read). */
async function readEvents(groupFd: number, n: number): Promise<RawEvent[]> {
  const buf = Buffer.alloc(64 * 1024);
  const events: RawEvent[] = [];
  const deadline = Date.now() + 10_000;
  while (events.length < n) {
    if (Date.now() > deadline) throw new Error(`${events.length} of ${n} events after 10 s`);
    const len = ffi.readNonblock(groupFd, buf);
    if (len > 0) events.push(...decodeEvents(buf, len).events);
    else await new Promise((r) => setTimeout(r, 5));
  }
  return events;
}

describe('integration: process identity', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('fanotifyd-identity-')));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives each process its own pidfd inode, the same for all its events, and keeps it after the process exits', async function () {
    for (const f of ['f', 'g']) fs.writeFileSync(path.join(dir, f), 'x');
    const group = openGroup({ groupClass: 'notif', reportMode: 'fd', marks: [{ path: dir, scope: 'inode', mask: K.FAN_OPEN | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true });
    const fds: number[] = [];
    // A subshell opens f; the shell opens f and g (two files: the kernel
    // merges equal events). Both then exec sleep: same processes, still there when read.
    const child = sh(`(read z < ${dir}/f; exec sleep 30) & read x < ${dir}/f; read y < ${dir}/g; exec sleep 30`, 20_000);
    let sub: number | undefined;
    try {
      const events = await readEvents(group.fd, 3);
      for (const e of events) fds.push(e.fd, e.pidfd ?? -1);
      const mine = events.filter((e) => e.pid === child.pid);
      const other = events.filter((e) => e.pid !== child.pid);
      expect([mine.length, other.length]).to.deep.equal([2, 1]);
      sub = other[0].pid;
      const [ia, ib, ic] = [...mine, ...other].map((e) => pidfdInode(e.pidfd!));
      if (ia === undefined) {
        console.log('      (pidfds are not on pidfs on this kernel: the cache checks start times instead)');
        this.skip();
      }
      expect(ib).to.equal(ia);
      expect(ic).to.be.a('number').and.not.equal(ia);
      expect(readStartTime(child.pid)).to.be.a('number');
      process.kill(sub, 'SIGKILL');
      sub = undefined;
      child.kill();
      await child.done;
      // Gone from /proc; the pidfds still tell the two apart.
      expect(readStartTime(child.pid)).to.equal(undefined);
      expect([mine[0], other[0]].map((e) => pidfdInode(e.pidfd!))).to.deep.equal([ia, ic]);
    } finally {
      // The sleeping subshell is known only from the events: killed by pid if the test stopped before.
      if (sub !== undefined) process.kill(sub, 'SIGKILL');
      child.kill();
      ffi.closeFds(fds.filter((fd) => fd >= 0).sort((x, y) => x - y));
      ffi.closeFd(group.fd);
    }
  });
});
