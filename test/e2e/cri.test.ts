// Pod metadata from the container runtime: a CRI server of the test's own
// (runtime.v1.RuntimeService, the methods the daemon calls) on a unix
// socket, and openers in kubelet-style cgroups of a test cgroup. Events
// come to carry the pod's name, namespace and labels and the container's
// name and image; once the server is gone, events of a container it never
// told about still come, with what their cgroup path says, and a container
// it did tell about keeps what was learnt.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { expect } from 'chai';
import { PROTO_DIR } from '../../src/api/proto';
import { catInCgroup, removeCgroups, testCgroupRoot } from '../fixtures/cgroups';
import { tempDir, waitForLog, WatchStream, withDaemon } from '../fixtures/harness';

const ID = 'c1'.repeat(32);
const UNKNOWN = 'c2'.repeat(32);
const UID = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const U = UID.replace(/-/g, '_');

/* eslint-disable @typescript-eslint/no-explicit-any */
async function startCri(socket: string): Promise<grpc.Server> {
  const def = protoLoader.loadSync('k8s.io/cri-api/pkg/apis/runtime/v1/api.proto', { keepCase: true, defaults: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const container = { id: ID, pod_sandbox_id: 'sandbox-1', metadata: { name: 'web' }, image: { image: 'registry.example/web:1.2' }, state: 'CONTAINER_RUNNING' };
  const server = new grpc.Server();
  server.addService(pkg.runtime.v1.RuntimeService.service, {
    ListContainers: (call: any, cb: any) => cb(null, { containers: [container].filter((c) => !call.request.filter?.id || c.id === call.request.filter.id) }),
    ContainerStatus: (call: any, cb: any) =>
      call.request.container_id === ID ? cb(null, { status: { id: ID, metadata: container.metadata, image: container.image } }) : cb({ code: grpc.status.NOT_FOUND, details: 'no such container' }),
    PodSandboxStatus: (call: any, cb: any) =>
      call.request.pod_sandbox_id === 'sandbox-1'
        ? cb(null, { status: { id: 'sandbox-1', metadata: { name: 'web-0', uid: UID, namespace: 'shop' }, labels: { app: 'web', tier: 'front' } } })
        : cb({ code: grpc.status.NOT_FOUND, details: 'no such sandbox' }),
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

describe('e2e: pod metadata over the CRI', function () {
  this.timeout(90_000);

  it('events carry the pod and container the runtime names; without the runtime, cgroup ids alone and nothing waits', async function () {
    const cg = testCgroupRoot();
    if ('why' in cg) {
      console.log(`      skipped: ${cg.why}`);
      this.skip();
    }
    const criDir = tempDir();
    const socket = path.join(criDir, 'cri.sock');
    const server = await startCri(socket);
    const root = path.join(cg.mount, `fanotifyd-test-cri-${process.pid}`);
    const pod = path.join(root, 'kubepods.slice', `kubepods-pod${U}.slice`);
    try {
      await withDaemon(['--cri-endpoint', `unix://${socket}`], async ({ daemon, client, dir }) => {
        const file = path.join(dir, 'f');
        fs.writeFileSync(file, 'x');
        const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: dir, events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }] });
        s.onEvent = (ev) => s.verdict(ev.id, 'DECISION_ALLOW');
        await s.subscribed();
        // The first event may come before the runtime's answer: open again until one carries it.
        let named: any;
        for (let i = 0; i < 100 && !named; i++) {
          const r = catInCgroup(path.join(pod, `cri-containerd-${ID}.scope`), file);
          expect((await r.done).code).to.equal(0);
          named = await s.until(() => s.events.find((e) => e.process.pid === r.pid), 10_000, 'the open').then((e) => (e.process.container?.pod_name ? e : undefined));
        }
        expect(named, 'no event carried the pod name after 100 opens').to.not.equal(undefined);
        expect(named.process.container).to.deep.include({ id: ID, runtime: 'containerd', pod_uid: UID, pod_name: 'web-0', pod_namespace: 'shop', name: 'web', image: 'registry.example/web:1.2' });
        expect(named.process.container.labels).to.deep.equal({ app: 'web', tier: 'front' });

        server.forceShutdown();
        const unknown = catInCgroup(path.join(pod, `cri-containerd-${UNKNOWN}.scope`), file);
        expect((await unknown.done).code).to.equal(0);
        const bare = await s.until(() => s.events.find((e) => e.process.pid === unknown.pid), 10_000, 'the open of a container the runtime never named');
        expect(bare.process.container).to.deep.include({ id: UNKNOWN, runtime: 'containerd', pod_uid: UID, pod_name: '', pod_namespace: '' });
        await waitForLog(daemon, (l) => l.msg === 'container runtime does not answer; events carry container ids from cgroup paths only', 10_000);
        const known = catInCgroup(path.join(pod, `cri-containerd-${ID}.scope`), file);
        expect((await known.done).code).to.equal(0);
        const kept = await s.until(() => s.events.find((e) => e.process.pid === known.pid), 10_000, 'the open of the known container');
        expect(kept.process.container).to.deep.include({ pod_name: 'web-0', pod_namespace: 'shop' });
        s.cancel();
      });
    } finally {
      server.forceShutdown();
      await removeCgroups(root);
      fs.rmSync(criDir, { recursive: true, force: true });
    }
  });
});
