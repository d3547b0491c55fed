// closeFds on the real kernel: runs of consecutive fds go in one
// close_range(2), and no fd outside the list is touched.
import * as fs from 'node:fs';
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
    const fds = Array.from({ length: 12 }, () => fs.openSync('/dev/null', 'r'));
    // Kept open: in the middle of a run, so a range over its neighbours would close it.
    const keep = [fds[3], fds[8]];
    const close = fds.filter((fd) => !keep.includes(fd));
    const list = [...close].reverse();
    ffi.closeFds(list);
    for (const fd of close) expect(isOpen(fd), `fd ${fd}`).to.equal(false);
    for (const fd of keep) expect(isOpen(fd), `fd ${fd}`).to.equal(true);
    for (const fd of keep) fs.closeSync(fd);
  });

  it('closes only the first n of the list', () => {
    const fds = Array.from({ length: 4 }, () => fs.openSync('/dev/null', 'r'));
    ffi.closeFds(fds, 2);
    expect(fds.map(isOpen)).to.deep.equal([false, false, true, true]);
    for (const fd of fds.slice(2)) fs.closeSync(fd);
  });
});
