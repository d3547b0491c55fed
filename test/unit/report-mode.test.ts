// The report mode the daemon chooses when the client leaves it open, and
// what a client's own choice is held to. No kernel: chooseReportMode is pure.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { chooseReportMode, GroupSpecError, type GroupSpec } from '../../src/kernel/group';

function spec(mask: number, more: Partial<GroupSpec> = {}): GroupSpec {
  return { groupClass: 'notif', marks: [{ path: '/d', scope: 'inode', mask: mask | K.FAN_EVENT_ON_CHILD, flags: 0 }], dfidNameSupported: true, ...more };
}

describe('unit: report mode', () => {
  it('a notification watch that leaves the mode open gets dfid_name where the kernel has it, fd where it does not', () => {
    expect(chooseReportMode(spec(K.FAN_OPEN | K.FAN_CLOSE_WRITE))).to.equal('dfid_name');
    expect(chooseReportMode(spec(K.FAN_OPEN, { dfidNameSupported: false }))).to.equal('fd');
    // A GroupSpec built without the probe's answer keeps fd mode.
    expect(chooseReportMode(spec(K.FAN_OPEN, { dfidNameSupported: undefined }))).to.equal('fd');
  });

  it('fd mode when asked for, for permission watches, and with report_fd_error', () => {
    expect(chooseReportMode(spec(K.FAN_OPEN, { reportMode: 'fd' }))).to.equal('fd');
    expect(chooseReportMode(spec(K.FAN_OPEN_PERM, { groupClass: 'content' }))).to.equal('fd');
    // A notification event in a permission class is still a permission-class group: no file handles there.
    expect(chooseReportMode(spec(K.FAN_OPEN, { groupClass: 'pre_content' }))).to.equal('fd');
    expect(chooseReportMode(spec(K.FAN_OPEN, { reportFdError: true }))).to.equal('fd');
  });

  it('directory-entry events and mount events decide the mode whatever the kernel default', () => {
    for (const supported of [true, false]) {
      expect(chooseReportMode(spec(K.FAN_CREATE, { dfidNameSupported: supported }))).to.equal('dfid_name');
      const mnt: GroupSpec = { groupClass: 'notif', marks: [{ path: '/proc/self/ns/mnt', scope: 'mount_namespace', mask: K.FAN_MNT_ATTACH, flags: 0 }], dfidNameSupported: supported };
      expect(chooseReportMode(mnt)).to.equal('mnt');
    }
  });

  it('refuses what the kernel cannot report, as before', () => {
    const refused: Array<[GroupSpec, RegExp]> = [
      [spec(K.FAN_CREATE, { reportMode: 'fd' }), /not with REPORT_MODE_FD/],
      [spec(K.FAN_OPEN, { groupClass: 'content', reportMode: 'dfid_name' }), /REPORT_MODE_DFID_NAME is for GROUP_CLASS_NOTIF/],
      [spec(K.FAN_OPEN, { reportMode: 'mnt' }), /REPORT_MODE_MNT is for mount events/],
    ];
    for (const [s, re] of refused) expect(() => chooseReportMode(s), re.source).to.throw(GroupSpecError, re);
  });
});
