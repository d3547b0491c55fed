// The mount table as the kernel writes it (proc(5)), and the byte-wise
// path test a subtree's events go through.
import { expect } from 'chai';
import { parseMountInfo } from '../../src/host/mounts';
import { isUnder } from '../../src/watch/subtree';

describe('unit: mount table', () => {
  it('reads each field, optional fields or none, and unescapes paths', () => {
    const text = [
      '22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
      '36 22 0:45 /srv/data /mnt/with\\040space rw master:2 shared:3 - tmpfs none rw,size=1024k',
      '37 36 0:46 / /mnt/with\\040space/tab\\011and\\134back rw - tmpfs none rw',
      'not a mountinfo line',
      '',
    ].join('\n');
    expect(parseMountInfo(text)).to.deep.equal([
      { id: 22, parentId: 1, dev: '253:1', root: '/', mountPoint: '/', fsType: 'ext4' },
      { id: 36, parentId: 22, dev: '0:45', root: '/srv/data', mountPoint: '/mnt/with space', fsType: 'tmpfs' },
      { id: 37, parentId: 36, dev: '0:46', root: '/', mountPoint: '/mnt/with space/tab\tand\\back', fsType: 'tmpfs' },
    ]);
  });
});

describe('unit: subtree path test', () => {
  const b = (s: string) => Buffer.from(s);
  it('takes the root and what is below it, never a sibling that shares its prefix', () => {
    expect(isUnder(b('/srv/in'), b('/srv/in'))).to.equal(true);
    expect(isUnder(b('/srv/in/a/b'), b('/srv/in'))).to.equal(true);
    expect(isUnder(b('/srv/in-sibling/f'), b('/srv/in'))).to.equal(false);
    expect(isUnder(b('/srv/i'), b('/srv/in'))).to.equal(false);
    expect(isUnder(b('/srv'), b('/srv/in'))).to.equal(false);
    expect(isUnder(b('/anything'), b('/'))).to.equal(true);
  });
});
