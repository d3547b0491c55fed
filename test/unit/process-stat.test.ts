// A process's start time from /proc/PID/stat (field 22), which with the pid
// names one process for the whole boot.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { parseStartTime, pidfdInode, readProcess, readStartTime } from '../../src/host/process';

/** A stat line with the given comm and starttime (the other fields as a shell's). */
function statLine(comm: string, start: number): string {
  const after = ['S', '1', '2', '2', '0', '-1', '4194560', '100', '0', '0', '0', '0', '0', '0', '0', '20', '0', '1', '0', String(start), '9000', '100'];
  return `4242 (${comm}) ${after.join(' ')} 18446744073709551615 1 1 0 0 0 0 65536 4 65536 1 0 0 17 1 0 0 0 0 0\n`;
}

describe('unit: process start time', () => {
  it('counts fields from the last parenthesis, whatever comm holds', () => {
    expect(parseStartTime(statLine('cat', 987654))).to.equal(987654);
    expect(parseStartTime(statLine('a b', 5))).to.equal(5);
    expect(parseStartTime(statLine('x) 1 2 3 (y', 77))).to.equal(77);
    expect(parseStartTime(statLine(') ) )', 78))).to.equal(78);
  });

  it('gives nothing for a line it cannot read', () => {
    expect(parseStartTime('')).to.equal(undefined);
    expect(parseStartTime('4242 (cat) S 1 2')).to.equal(undefined);
    expect(parseStartTime(statLine('cat', 1).replace(' 1 9000 ', ' x 9000 '))).to.equal(undefined);
  });

  it('reads a live process, a later one as no earlier, and nothing for one that is gone', async () => {
    const mine = readStartTime(process.pid);
    expect(mine).to.be.a('number');
    const ticks = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString());
    const uptimeTicks = Number(fs.readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * ticks;
    expect(mine).to.be.at.most(uptimeTicks);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const pid = child.pid!;
    try {
      expect(readStartTime(pid)).to.be.at.least(mine!);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    expect(readStartTime(pid)).to.equal(undefined);
    expect(readStartTime(0)).to.equal(undefined);
  });

  it('describes a process with the comm and start time of its stat line', () => {
    const me = readProcess(process.pid);
    expect(me.details).to.equal(true);
    expect(me.comm).to.equal(fs.readFileSync('/proc/self/comm', 'utf8').trim());
    expect(me.ppid).to.equal(process.ppid);
    expect(me.startTime).to.equal(readStartTime(process.pid));
  });

  it('reads a comm that is not ASCII as /proc/PID/comm gives it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-comm-'));
    const exe = path.join(dir, 'slé€p');
    fs.copyFileSync('/bin/sleep', exe);
    fs.chmodSync(exe, 0o755);
    const child = spawn(exe, ['30'], { stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      expect(readProcess(child.pid!).comm).to.equal(fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim()).and.equal('slé€p');
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives no pidfd inode for an fd that is not a pidfd on pidfs', () => {
    const fd = fs.openSync('/proc/self/stat', 'r');
    try {
      // procfs: another filesystem, so no inode (and the answer is not kept for pidfds).
      expect(pidfdInode(fd)).to.equal(undefined);
    } finally {
      fs.closeSync(fd);
    }
  });
});
