// Kubernetes cgroup layouts, for real: cgroup directories named as kubelet
// and the runtimes name them (both drivers, every QoS class, containerd,
// CRI-O, docker, podman) made in a test cgroup of the v2 hierarchy, a child
// moved into each opening a file of its own, and the daemon's events
// carrying the ids it read from /proc/PID/cgroup and the cgroup's inode.
//
// Opens are permission events answered by the test: the opener waits in
// open() while the daemon reads /proc, so its cgroup is still the one the
// test made (a notification may be read after a short-lived opener exited).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { catInCgroup, removeCgroups, testCgroupRoot } from '../fixtures/cgroups';
import { WatchStream, withDaemon } from '../fixtures/harness';

const ID = (n: number) => n.toString(16).padStart(2, '0').repeat(32);
const UID = '1b2c3d4e-0f1a-4b5c-8d9e-a0b1c2d3e4f5';
const U = UID.replace(/-/g, '_');

/** [name, cgroup path below the test cgroup, the container expected]. */
const LAYOUTS: Array<[string, string, { id: string; runtime: string; pod_uid: string } | null]> = [
  ['systemd guaranteed containerd', `kubepods.slice/kubepods-pod${U}.slice/cri-containerd-${ID(1)}.scope`, { id: ID(1), runtime: 'containerd', pod_uid: UID }],
  ['systemd burstable cri-o', `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U}.slice/crio-${ID(2)}.scope`, { id: ID(2), runtime: 'cri-o', pod_uid: UID }],
  ['systemd besteffort containerd', `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U}.slice/cri-containerd-${ID(3)}.scope`, { id: ID(3), runtime: 'containerd', pod_uid: UID }],
  ['cgroupfs guaranteed', `kubepods/pod${UID}/${ID(4)}`, { id: ID(4), runtime: '', pod_uid: UID }],
  ['cgroupfs burstable cri-o', `kubepods/burstable/pod${UID}/crio-${ID(5)}`, { id: ID(5), runtime: 'cri-o', pod_uid: UID }],
  ['cgroupfs besteffort', `kubepods/besteffort/pod${UID}/${ID(6)}`, { id: ID(6), runtime: '', pod_uid: UID }],
  ['docker', `docker/${ID(7)}`, { id: ID(7), runtime: 'docker', pod_uid: '' }],
  ['podman', `machine.slice/libpod-${ID(8)}.scope`, { id: ID(8), runtime: 'podman', pod_uid: '' }],
  ['no container', 'system.slice/app.service', null],
];

describe('e2e: container and pod attribution from kubelet-style cgroups', function () {
  this.timeout(60_000);
  it('attributes each opener to the container and pod its cgroup names, with the cgroup id', async function () {
    const cg = testCgroupRoot();
    if ('why' in cg) {
      console.log(`      skipped: ${cg.why}`);
      this.skip();
    }
    const mount = cg.mount;
    const root = path.join(mount, `fanotifyd-test-${process.pid}`);
    fs.mkdirSync(root);
    try {
      await withDaemon([], async ({ client, dir }) => {
        const files = LAYOUTS.map((_, i) => path.join(dir, `f${i}`));
        for (const f of files) fs.writeFileSync(f, 'x');
        const s = new WatchStream(client, {
          group_class: 'GROUP_CLASS_CONTENT',
          marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
          include: [{ paths: [`${dir}/f*`] }],
        });
        s.onEvent = (ev) => s.verdict(ev.id, 'DECISION_ALLOW');
        await s.subscribed();
        const runs = LAYOUTS.map(([, rel], i) => catInCgroup(path.join(root, rel), files[i]));
        const results = await Promise.all(runs.map((r) => r.done));
        for (const r of results) expect(r.code, r.stderr).to.equal(0);
        await s.until(() => files.every((f) => s.events.some((e) => e.path === f)), 10_000, 'an event per layout');
        LAYOUTS.forEach(([name, rel, want], i) => {
          const ev = s.events.find((e) => e.path === files[i]);
          const dir = path.join(root, rel);
          expect(ev.process.pid, name).to.equal(runs[i].pid);
          expect(ev.process.cgroup, name).to.equal(dir.slice(mount.length));
          expect(ev.process.cgroup_id, name).to.equal(String(fs.statSync(dir).ino));
          if (want === null) expect(ev.process.container, name).to.equal(null);
          else expect(ev.process.container, name).to.deep.include(want);
        });
        s.cancel();
      });
    } finally {
      await removeCgroups(root);
    }
  });
});
