// The event pump on the real kernel, in this process: no polling when idle,
// a clean stop, and the event loop serving many groups.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import { EventPump } from '../../src/kernel/pump';
import { silentLogger } from '../../src/daemon/log';
import { Watch, type WatchEvent } from '../../src/watch/watch';
import { fanotifyFdCount, sh, sleep, tempDir } from '../fixtures/harness';

const OPTIONS = { verdictTimeoutMs: 5000, timeoutDecision: 'allow' as const, maxBatchEvents: 256, queueCapacity: 1024 };

function openWatch(pump: EventPump, dir: string, mask: number, groupClass: 'notif' | 'content' = 'notif') {
  const events: WatchEvent[] = [];
  const w = new Watch(`t-${path.basename(dir)}`, { groupClass, marks: [{ path: dir, scope: 'inode', mask: mask | K.FAN_EVENT_ON_CHILD, flags: 0 }] }, { reportPidfd: true, evictable: true }, OPTIONS, pump, silentLogger);
  w.attach({
    sendEvents: (batch) => {
      events.push(...batch);
      for (const e of batch) if (e.needsVerdict) w.verdict(e.id, 'allow');
      return true;
    },
    sendOverflow: () => true,
  });
  return { w, events };
}

describe('integration: event pump', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const mkdir = () => {
    const d = tempDir();
    dirs.push(d);
    fs.writeFileSync(path.join(d, 'f'), 'x');
    return d;
  };

  it('uses no CPU and never wakes while its groups are idle', async () => {
    const pump = new EventPump();
    const watches = [mkdir(), mkdir(), mkdir()].map((d) => openWatch(pump, d, K.FAN_OPEN_PERM, 'content'));
    await sleep(100);
    const wakeups = pump.wakeups;
    const before = process.cpuUsage();
    await sleep(1000);
    const used = process.cpuUsage(before);
    // A poll loop would burn most of the second; an idle wait burns nothing.
    expect(pump.wakeups).to.equal(wakeups);
    expect((used.user + used.system) / 1000).to.be.below(50);
    for (const { w } of watches) w.close('disconnect');
    await pump.close();
  });

  it('serves many groups from the event loop, then stops cleanly and leaks no fd', async () => {
    const fdsBefore = fanotifyFdCount();
    const pump = new EventPump();
    const ds = Array.from({ length: 20 }, () => mkdir());
    const watches = ds.map((d) => openWatch(pump, d, K.FAN_OPEN_PERM | K.FAN_CLOSE_NOWRITE, 'content'));
    const r = await sh(ds.map((d) => `: < ${d}/f`).join('; '), 20_000).done;
    expect(r.code).to.equal(0);
    const deadline = Date.now() + 5000;
    while (watches.some((x) => x.events.length < 2) && Date.now() < deadline) await sleep(20);
    watches.forEach(({ events }, i) => {
      expect(events.map((e) => K.FAN_OPEN_PERM & e.ev.mask ? 'perm' : 'close')).to.deep.equal(['perm', 'close']);
      expect(events[0].ev.path?.toString()).to.equal(path.join(ds[i], 'f'));
    });
    for (const { w } of watches) w.close('disconnect');
    expect(pump.size).to.equal(0);
    await pump.close();
    expect(fanotifyFdCount()).to.equal(fdsBefore);
  });
});
