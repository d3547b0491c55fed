// closeFds on the real kernel: runs of consecutive fds go in one
// close_range(2), and no fd outside the list is touched.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { expect } from 'chai';
import * as ffi from '../../src/kernel/ffi';

const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).to.equal('EBADF');
    return false;
  }
};

describe('integration: closeFds', () => {
  it('closes every listed fd, in runs or alone, sorted or not, and leaves the fds between them open', () => {
    // Each open takes the lowest free number: the first may fill holes
    // below, the last 12 are above every fd in use, so consecutive.
    const opened = Array.from({ length: 64 }, () => fs.openSync('/dev/null', 'r'));
    const fds = opened.slice(-12);
    for (const fd of opened.slice(0, -12)) fs.closeSync(fd);
    expect(fds.every((fd, i) => i === 0 || fd === fds[i - 1] + 1), `fds ${fds}`).to.equal(true);
    // Kept open: in the middle of a run, so a range over its neighbours would close it.
    const keep = [fds[3], fds[8]];
    const close = fds.filter((fd) => !keep.includes(fd));
    const list = [...close].reverse();
    // Three runs (0-2, 4-7, 9-11): three close_range calls, or one close
    // each where the call is missing (Linux before 5.9, glibc before 2.34).
    const ranges = ffi.closeRangeInUse();
    expect(ffi.closeFds(list)).to.equal(ranges ? 3 : close.length);
    // Where the kernel and glibc have it, the ranges were really taken.
    const atLeast = (v: string | undefined, major: number, minor: number) => {
      const [a, b] = (v ?? '0.0').split('.').map(Number);
      return a > major || (a === major && b >= minor);
    };
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
    if (atLeast(os.release(), 5, 9) && atLeast(glibc, 2, 34)) expect(ranges, `close_range on Linux ${os.release()}, glibc ${glibc}`).to.equal(true);
    for (const fd of close) expect(isOpen(fd), `fd ${fd}`).to.equal(false);
    for (const fd of keep) expect(isOpen(fd), `fd ${fd}`).to.equal(true);
    for (const fd of keep) fs.closeSync(fd);
  });

  it('closes only the first n of the list', () => {
    const fds = Array.from({ length: 4 }, () => fs.openSync('/dev/null', 'r'));
    expect(ffi.closeFds(fds, 2)).to.be.within(1, 2);
    expect(fds.map(isOpen)).to.deep.equal([false, false, true, true]);
    for (const fd of fds.slice(2)) fs.closeSync(fd);
  });
});
