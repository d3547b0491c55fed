// A real container's file accesses, attributed: podman runs `cat` of a
// file in a directory this test made, bind-mounted into the container; the
// event names the host's path, the container's own path, podman's id and
// runtime; a container_ids filter selects it and host_only leaves it out.
// Skipped, saying why, where podman cannot start a container.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { runChild, tempDir, WatchStream, withDaemon } from '../fixtures/harness';
import { PODMAN_RUN, podmanRun, podmanUnusable } from '../fixtures/podman';

describe('e2e: a podman container attributed', function () {
  this.timeout(180_000);

  it("carries podman's container id and runtime, the container's path, and is selected by container_ids, not host_only", async function () {
    const why = podmanUnusable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const shared = tempDir();
    const cidDir = tempDir();
    const cidFile = path.join(cidDir, 'cid');
    fs.writeFileSync(path.join(shared, 'f'), 'x');
    try {
      await withDaemon([], async ({ client }) => {
        const file = path.join(shared, 'f');
        const subscribe = (extra: object) => {
          const s = new WatchStream(client, {
            group_class: 'GROUP_CLASS_CONTENT',
            marks: [{ path: shared, events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }],
            ...extra,
          });
          s.onEvent = (ev) => s.verdict(ev.id, 'DECISION_ALLOW');
          return s;
        };
        // Created first, so its id is known to the filter before it runs.
        const created = runChild('podman', [...PODMAN_RUN.map((a) => (a === 'run' ? 'create' : a)), '--cidfile', cidFile, '-v', `${shared}:/data`, '--rootfs', '/:O', 'cat', '/data/f'], 120_000);
        expect((await created.done).code).to.equal(0);
        const id = fs.readFileSync(cidFile, 'utf8').trim();
        expect(id).to.match(/^[0-9a-f]{64}$/);
        const all = subscribe({});
        const hostOnly = subscribe({ include: [{ host_only: true }] });
        const byId = subscribe({ include: [{ container_ids: [id.slice(0, 12)] }] });
        for (const s of [all, hostOnly, byId]) await s.subscribed();
        try {
          const started = await runChild('podman', ['--runtime', 'runc', 'start', '--attach', id], 120_000).done;
          expect(started.code, started.stderr).to.equal(0);
        } finally {
          await runChild('podman', ['rm', '--force', id], 60_000).done;
        }
        const other = await podmanRun(['--rm', '-v', `${shared}:/data`], ['cat', '/data/f']).done;
        expect(other.code, other.stderr).to.equal(0);
        const host = runChild('/bin/cat', [file]);
        expect((await host.done).code).to.equal(0);

        const inContainer = await all.until(() => all.events.find((e) => e.process.container?.id === id), 10_000, "the container's open");
        expect(inContainer.path).to.equal(file);
        expect(inContainer.container_path).to.equal('/data/f');
        expect(inContainer.process.container.runtime).to.equal('podman');
        expect(inContainer.process.cgroup).to.contain(`libpod-${id}`);
        expect(inContainer.process.comm).to.equal('cat');
        const inOther = await all.until(() => all.events.find((e) => e.process.container && e.process.container.id !== id), 10_000, "the other container's open");
        expect(inOther.path).to.equal(file);
        const hostEv = await all.until(() => all.events.find((e) => e.process.pid === host.pid), 10_000, 'the host open');
        expect(hostEv.path).to.equal(file);
        expect(hostEv.process.container).to.equal(null);
        expect(hostEv.container_path).to.equal('');

        await byId.until(() => byId.events.some((e) => e.process.container?.id === id), 10_000, 'the container in the container_ids watch');
        await hostOnly.until(() => hostOnly.events.some((e) => e.process.pid === host.pid), 10_000, 'the host open in the host_only watch');
        expect(byId.events.filter((e) => e.process.container?.id !== id)).to.deep.equal([]);
        expect(hostOnly.events.filter((e) => e.process.container)).to.deep.equal([]);
        for (const s of [all, hostOnly, byId]) s.cancel();
      });
    } finally {
      fs.rmSync(shared, { recursive: true, force: true });
      fs.rmSync(cidDir, { recursive: true, force: true });
    }
  });
});
