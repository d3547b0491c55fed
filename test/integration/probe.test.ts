// The kernel probe marks an existing directory (its own module's) instead of one it
// creates. What makes that safe is checked here on a directory the test
// made: a permission mark as the probe makes it (no FAN_ONDIR, no
// FAN_EVENT_ON_CHILD) reports nothing when the directory is opened and
// listed or a file in it is read, so it can block nobody; with FAN_ONDIR
// the same open would wait for an answer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import * as ffi from '../../src/kernel/ffi';
import { runChild, sh, tempDir } from '../fixtures/harness';

const PERMISSION = K.FAN_OPEN_PERM | K.FAN_ACCESS_PERM | K.FAN_OPEN_EXEC_PERM;

function contentGroup(mask: number, dir: string): number {
  const fd = ffi.fanotifyInit(K.FAN_CLASS_CONTENT | K.FAN_CLOEXEC | K.FAN_NONBLOCK, ffi.O_RDONLY | ffi.O_CLOEXEC);
  try {
    ffi.fanotifyMark(fd, K.FAN_MARK_ADD | K.FAN_MARK_INODE, mask, dir);
  } catch (err) {
    ffi.closeFd(fd);
    throw err;
  }
  return fd;
}

describe('integration: kernel probe', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir('fanotifyd-probe-test-');
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    fs.mkdirSync(path.join(dir, 'sub'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a permission mark like the probe's reports nothing for the directory, its files or its subdirectories", async () => {
    const fd = contentGroup(PERMISSION | K.FAN_OPEN | K.FAN_ACCESS, dir);
    try {
      const r = await sh(`ls -la ${dir} ${dir}/sub >/dev/null && cat ${dir}/f >/dev/null && cd ${dir} && ls >/dev/null`, 10_000).done;
      expect(r.code, r.stderr).to.equal(0);
      expect(r.signal, 'the child was blocked until its time limit').to.equal(null);
      expect(ffi.readNonblock(fd, Buffer.alloc(4096))).to.equal(0);
    } finally {
      ffi.closeFd(fd);
    }
  });

  it('with FAN_ONDIR, opening the directory waits on the mark (the control: the test above can fail)', async () => {
    const fd = contentGroup(K.FAN_OPEN_PERM | K.FAN_ONDIR, dir);
    const opener = runChild('ls', [dir], 10_000);
    const buf = Buffer.alloc(4096);
    let n = 0;
    try {
      // Wait for the event (the child is blocked in open() until the group answers or closes).
      const deadline = Date.now() + 5000;
      while ((n = ffi.readNonblock(fd, buf)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(n, 'no permission event for the directory').to.be.above(0);
      expect(Number(buf.readBigUInt64LE(8)) & K.FAN_OPEN_PERM).to.not.equal(0);
    } finally {
      // Closing the group allows what it holds; the event's fd is ours to close.
      if (n > 0) ffi.closeFd(buf.readInt32LE(16));
      ffi.closeFd(fd);
    }
    expect((await opener.done).code).to.equal(0);
  });
});
