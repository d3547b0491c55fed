// Match.container_ids, pod_uids, pod_namespaces and host_only: parsed from
// Subscribe (bad values named with what to write), then decided on a
// process's container as the cgroup path and the runtime describe it.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { parseSubscribe } from '../../src/api/convert';
import { ApiError } from '../../src/api/errors';
import type { Subscribe } from '../../src/api/gen/fanotify/v1/Subscribe';
import { unknownProcess, type ProcessInfo } from '../../src/host/process';
import { DELIVER, FILTERED, Selection } from '../../src/watch/selection';
import type { MatchSpec } from '../../src/watch/types';
import { fakeKernel } from '../fixtures/fake-watches';
import { subscribeMessage } from '../fixtures/messages';

const LIMITS = { defaultVerdictTimeoutMs: 5000, maxVerdictTimeoutMs: 60000, defaultMaxBatchEvents: 256, maxBatchEvents: 4096, maxMarksPerWatch: 4, maxLingerMs: 600000 };
const ID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const OTHER = '9cbffad870945ec47c3e34c950b930e30753366fbc56639664e56db0cbda4a79';
const UID = '1b2c3d4e-0f1a-4b5c-8d9e-a0b1c2d3e4f5';

const subscribe = (include: object[]) =>
  parseSubscribe(subscribeMessage({ group_class: 'GROUP_CLASS_NOTIF', marks: [{ path: '/tmp/x', events: ['EVENT_TYPE_OPEN'] }], include } as Subscribe), LIMITS, fakeKernel());

function refused(include: object[], msg: RegExp): void {
  try {
    subscribe(include);
  } catch (err) {
    expect(err).to.be.instanceOf(ApiError);
    expect((err as ApiError).status).to.equal(grpc.status.INVALID_ARGUMENT);
    expect((err as Error).message).to.match(msg);
    return;
  }
  expect.fail(`expected INVALID_ARGUMENT matching ${msg}`);
}

const proc = (container?: ProcessInfo['container']): ProcessInfo => ({ ...unknownProcess(7), details: true, comm: 'cat', container });
const inPod = proc({ id: ID, runtime: 'containerd', podUid: UID, podName: 'web-0', podNamespace: 'shop' });
const inPodman = proc({ id: OTHER, runtime: 'podman', podUid: '' });
const onHost = proc();
const gone = unknownProcess(8);

function delivered(m: Partial<MatchSpec>, p: ProcessInfo): boolean {
  const sel = new Selection({ include: [{ paths: [], exes: [], comms: [], uids: [], gids: [], events: 0, ...m }], exclude: [], rules: [] });
  const d = sel.decide({ mask: 1, process: () => p, pathName: () => 'f', pathWhole: () => '/f' }, false);
  expect(d === DELIVER || d === FILTERED).to.equal(true);
  return d === DELIVER;
}

describe('unit: workload matches (containers and pods)', () => {
  it('parses the workload fields, and leaves them out of a Match without them', () => {
    const r = subscribe([{ container_ids: [ID.slice(0, 12), OTHER], pod_uids: [UID], pod_namespaces: ['shop'] }, { host_only: true }, { comms: ['cat'] }]);
    expect(r.selection!.include[0]).to.deep.include({ containerIds: [ID.slice(0, 12), OTHER], podUids: [UID], podNamespaces: ['shop'] });
    expect(r.selection!.include[1]).to.deep.include({ hostOnly: true });
    expect(r.selection!.include[2]).to.not.have.any.keys('containerIds', 'podUids', 'podNamespaces', 'hostOnly');
  });

  it('refuses what cannot be an id, a uid or a namespace, saying what to write', () => {
    refused([{ container_ids: ['e3b0c442'] }], /^Subscribe\.include\[0\]\.container_ids\[0\]: "e3b0c442" is not a container id: write 12 to 64 lowercase hex digits/);
    refused([{ container_ids: [ID.toUpperCase()] }], /container_ids\[0\]/);
    refused([{ pod_uids: ['web-0'] }], /^Subscribe\.include\[0\]\.pod_uids\[0\]: "web-0" is not a pod uid/);
    refused([{}, { pod_namespaces: ['Shop'] }], /^Subscribe\.include\[1\]\.pod_namespaces\[0\]: "Shop" is not a namespace name/);
    refused([{ host_only: true, container_ids: [ID] }], /^Subscribe\.include\[0\]\.host_only: .* put host_only in a Match of its own$/);
  });

  it('selects by container id, whole or by a prefix', () => {
    expect(delivered({ containerIds: [ID] }, inPod)).to.equal(true);
    expect(delivered({ containerIds: [ID.slice(0, 12)] }, inPod)).to.equal(true);
    expect(delivered({ containerIds: [ID.slice(0, 12)] }, inPodman)).to.equal(false);
    expect(delivered({ containerIds: [ID, OTHER] }, inPodman)).to.equal(true);
    expect(delivered({ containerIds: [ID] }, onHost)).to.equal(false);
  });

  it('selects by pod uid and namespace; a namespace not yet known matches nothing', () => {
    expect(delivered({ podUids: [UID] }, inPod)).to.equal(true);
    expect(delivered({ podUids: [UID] }, inPodman)).to.equal(false);
    expect(delivered({ podNamespaces: ['shop'] }, inPod)).to.equal(true);
    expect(delivered({ podNamespaces: ['kube-system'] }, inPod)).to.equal(false);
    expect(delivered({ podNamespaces: ['shop'] }, proc({ id: ID, runtime: 'containerd', podUid: UID }))).to.equal(false);
  });

  it('host_only: processes in no container; a process gone before it was read matches nothing', () => {
    expect(delivered({ hostOnly: true }, onHost)).to.equal(true);
    expect(delivered({ hostOnly: true }, inPod)).to.equal(false);
    expect(delivered({ hostOnly: true }, inPodman)).to.equal(false);
    expect(delivered({ hostOnly: true }, gone)).to.equal(false);
    expect(delivered({ containerIds: [ID] }, gone)).to.equal(false);
  });
});
