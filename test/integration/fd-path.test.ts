// The path of an open fd, as enrichment reads it for every fd-mode event:
// readlinkat on the daemon's held /proc/self/fd, against the real kernel.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { fdPath } from '../../src/host/fd-path';
import * as ffi from '../../src/kernel/ffi';
import { tempDir } from '../fixtures/harness';

describe('integration: fd paths', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('fanotifyd-fdpath-')));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function withOpen<T>(file: string | Buffer, f: (fd: number) => T): T {
    const fd = fs.openSync(file, 'r');
    try {
      return f(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  it('gives the exact bytes of a path, a non-UTF-8 name included', () => {
    const name = Buffer.concat([Buffer.from(path.join(dir, 'caf')), Buffer.from([0xe9, 0xff])]);
    fs.writeFileSync(name, 'x');
    const got = withOpen(name, (fd) => fdPath(fd));
    expect(got.deleted).to.equal(false);
    expect(got.path?.equals(name), `got ${got.path?.toString('hex')}`).to.equal(true);
  });

  it('returns a fresh buffer each time, not the shared read buffer', () => {
    fs.writeFileSync(path.join(dir, 'a'), '');
    fs.writeFileSync(path.join(dir, 'bb'), '');
    const a = withOpen(path.join(dir, 'a'), (fd) => ffi.fdLink(fd));
    const b = withOpen(path.join(dir, 'bb'), (fd) => ffi.fdLink(fd));
    expect(a.toString()).to.equal(path.join(dir, 'a'));
    expect(b.toString()).to.equal(path.join(dir, 'bb'));
  });

  it('says when the file was deleted, and keeps a real " (deleted)" name', () => {
    const gone = path.join(dir, 'gone');
    fs.writeFileSync(gone, 'x');
    const real = path.join(dir, 'kept (deleted)');
    fs.writeFileSync(real, 'x');
    const [g, r] = withOpen(gone, (fd) => {
      fs.unlinkSync(gone);
      return [fdPath(fd), withOpen(real, (fd2) => fdPath(fd2))];
    });
    expect(g).to.deep.include({ deleted: true });
    expect(g.path?.toString()).to.equal(gone);
    expect(r).to.deep.include({ deleted: false });
    expect(r.path?.toString()).to.equal(real);
  });

  it('throws ENOENT for an fd that is not open (no such entry in /proc/self/fd), and fdPath gives no path', () => {
    const fd = fs.openSync(dir, 'r');
    fs.closeSync(fd);
    expect(() => ffi.fdLink(fd)).to.throw(ffi.SyscallError).with.property('code', 'ENOENT');
    expect(fdPath(fd)).to.deep.equal({ deleted: false });
  });
});
