// sweepPending on the real kernel: permission events read by a reader
// that then lost their fds (as a killed process does) are still held by
// the group, and answering every fd number finds each of them once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { decodeEvents } from '../../src/kernel/decoder';
import * as ffi from '../../src/kernel/ffi';
import { sweepPending } from '../../src/kernel/response';
import { runChild, tempDir } from '../fixtures/harness';

describe('integration: sweepPending', function () {
  this.timeout(30_000);
  let dir: string;
  let group = -1;

  beforeEach(() => {
    dir = tempDir();
    for (const f of ['a', 'b', 'c']) fs.writeFileSync(path.join(dir, f), f);
  });
  afterEach(() => {
    // Closing the group makes the kernel allow whatever it still holds.
    if (group >= 0) ffi.closeFd(group);
    group = -1;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Read permission events until `n` have come; their event fds. */
  async function readEvents(n: number): Promise<number[]> {
    const buf = Buffer.alloc(64 * 1024);
    const fds: number[] = [];
    const deadline = Date.now() + 10_000;
    while (fds.length < n) {
      if (Date.now() > deadline) throw new Error(`read ${fds.length} of ${n} events`);
      const len = ffi.readNonblock(group, buf);
      if (len === 0) await new Promise((r) => setTimeout(r, 5));
      else for (const ev of decodeEvents(buf, len).events) fds.push(ev.fd);
    }
    return fds;
  }

  it('answers every held event of a reader whose fds are gone with the given response, and nothing twice', async () => {
    group = ffi.fanotifyInit(K.FAN_CLASS_CONTENT | K.FAN_CLOEXEC | K.FAN_NONBLOCK, ffi.O_RDONLY | ffi.O_CLOEXEC);
    ffi.fanotifyMark(group, K.FAN_MARK_ADD, K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, dir);
    const openers = ['a', 'b', 'c'].map((f) => runChild('cat', [path.join(dir, f)], 20_000));
    const fds = await readEvents(3);
    ffi.closeFds(fds);
    const { soft } = ffi.fileLimit();
    expect(sweepPending(group, Math.min(soft, 65_536), K.FAN_DENY)).to.deep.equal({ answered: 3, errors: 0 });
    for (const r of await Promise.all(openers.map((o) => o.done))) {
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/Operation not permitted/);
    }
    expect(sweepPending(group, 1024, K.FAN_DENY)).to.deep.equal({ answered: 0, errors: 0 });
  });
});
