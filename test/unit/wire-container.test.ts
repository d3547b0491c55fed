// Process.cgroup_id, cgroup and container, and Event.container_path, as the
// hand-written encoder writes them, decoded with the .proto itself.
import { expect } from 'chai';
import * as K from '../../src/kernel/constants';
import type { FsEvent } from '../../src/host/event';
import { unknownProcess, type ProcessInfo } from '../../src/host/process';
import { fanotifyService } from '../../src/api/proto';
import { encodeEvent, eventBatch } from '../../src/api/wire';

/* eslint-disable @typescript-eslint/no-explicit-any */
const decode = fanotifyService().Watch.responseDeserialize as (b: Buffer) => any;

function one(ev: Partial<FsEvent>): any {
  const base: FsEvent = { mask: K.FAN_OPEN, pid: 1, fd: K.FAN_NOFD, deleted: false, isDir: false, process: unknownProcess(1), timeMs: 0 };
  const e = encodeEvent({ id: 1, ev: { ...base, ...ev }, permission: false, needsVerdict: false });
  return decode(eventBatch(Buffer.concat([e.bytes, e.tail ?? new Uint8Array(0)]))).events.events[0];
}

const ID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('wire: container attribution', () => {
  it('encodes the cgroup, the container with its labels, and the container path', () => {
    const process: ProcessInfo = {
      ...unknownProcess(7),
      details: true,
      cgroupId: 2 ** 40 + 5,
      cgroup: `/kubepods.slice/cri-containerd-${ID}.scope`,
      container: { id: ID, runtime: 'containerd', podUid: 'u-1', podName: 'web-0', podNamespace: 'shop', name: 'web', image: 'web:1', labels: { app: 'web', tier: '' } },
    };
    const e = one({ path: Buffer.from('/srv/data/f'), containerPath: Buffer.from('/data/f'), process });
    expect(e.path).to.equal('/srv/data/f');
    expect(e.container_path).to.equal('/data/f');
    expect(e.process.cgroup_id).to.equal(String(2 ** 40 + 5));
    expect(e.process.cgroup).to.equal(`/kubepods.slice/cri-containerd-${ID}.scope`);
    expect(e.process.container).to.deep.equal({ id: ID, runtime: 'containerd', pod_uid: 'u-1', pod_name: 'web-0', pod_namespace: 'shop', name: 'web', image: 'web:1', labels: { app: 'web', tier: '' } });
  });

  it('leaves them out for a process in no container', () => {
    const e = one({ path: Buffer.from('/f'), process: { ...unknownProcess(8), details: true, cgroupId: 1, cgroup: '/' } });
    expect(e.container_path).to.equal('');
    expect(e.process.container).to.equal(null);
    expect(e.process.cgroup).to.equal('/');
  });
});
