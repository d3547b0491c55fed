// Container and pod ids from cgroup paths as kubelet, the CRI runtimes,
// docker and podman name them, and the right line of /proc/PID/cgroup on
// v1, v2 and hybrid hosts.
import { expect } from 'chai';
import { cgroupPaths, parseCgroupFile, primaryCgroupPath } from '../../src/host/cgroup';
import { containerFromCgroup, containerFromCgroups } from '../../src/host/container-id';

const ID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const UID = '1b2c3d4e-0f1a-4b5c-8d9e-a0b1c2d3e4f5';
const U = UID.replace(/-/g, '_');

describe('unit: container ids from cgroup paths', () => {
  const cases: Array<[string, string, { id: string; runtime: string; podUid: string } | undefined]> = [
    // kubelet, systemd driver, each QoS class, containerd and CRI-O
    ['systemd guaranteed containerd', `/kubepods.slice/kubepods-pod${U}.slice/cri-containerd-${ID}.scope`, { id: ID, runtime: 'containerd', podUid: UID }],
    ['systemd burstable containerd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U}.slice/cri-containerd-${ID}.scope`, { id: ID, runtime: 'containerd', podUid: UID }],
    ['systemd besteffort containerd', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U}.slice/cri-containerd-${ID}.scope`, { id: ID, runtime: 'containerd', podUid: UID }],
    ['systemd guaranteed cri-o', `/kubepods.slice/kubepods-pod${U}.slice/crio-${ID}.scope`, { id: ID, runtime: 'cri-o', podUid: UID }],
    ['systemd burstable cri-o', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U}.slice/crio-${ID}.scope`, { id: ID, runtime: 'cri-o', podUid: UID }],
    ['systemd besteffort cri-o', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U}.slice/crio-${ID}.scope`, { id: ID, runtime: 'cri-o', podUid: UID }],
    ['systemd cri-dockerd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U}.slice/docker-${ID}.scope`, { id: ID, runtime: 'docker', podUid: UID }],
    // kubelet, cgroupfs driver: the runtime is not in the path
    ['cgroupfs guaranteed', `/kubepods/pod${UID}/${ID}`, { id: ID, runtime: '', podUid: UID }],
    ['cgroupfs burstable', `/kubepods/burstable/pod${UID}/${ID}`, { id: ID, runtime: '', podUid: UID }],
    ['cgroupfs besteffort', `/kubepods/besteffort/pod${UID}/${ID}`, { id: ID, runtime: '', podUid: UID }],
    ['cgroupfs cri-o', `/kubepods/besteffort/pod${UID}/crio-${ID}`, { id: ID, runtime: 'cri-o', podUid: UID }],
    // a process's own cgroups below its container's (systemd inside, cgroup namespaces)
    ['nested below the container', `/kubepods.slice/kubepods-pod${U}.slice/cri-containerd-${ID}.scope/init.scope`, { id: ID, runtime: 'containerd', podUid: UID }],
    // docker and podman without Kubernetes
    ['docker cgroupfs', `/docker/${ID}`, { id: ID, runtime: 'docker', podUid: '' }],
    ['docker systemd', `/system.slice/docker-${ID}.scope`, { id: ID, runtime: 'docker', podUid: '' }],
    ['podman cgroupfs', `/libpod_parent/libpod-${ID}`, { id: ID, runtime: 'podman', podUid: '' }],
    ['podman systemd', `/machine.slice/libpod-${ID}.scope`, { id: ID, runtime: 'podman', podUid: '' }],
    ['podman rootless, cgroup namespace leaf', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope/container`, { id: ID, runtime: 'podman', podUid: '' }],
    // no container
    ['the root', '/', undefined],
    ['a service', '/system.slice/ssh.service', undefined],
    ['a pod without a container (the pause process lives in one)', `/kubepods.slice/kubepods-pod${U}.slice`, undefined],
    ['conmon is the runtime, not the container', '/libpod_parent/conmon', undefined],
    ['crio-conmon is the runtime, not the container', `/kubepods.slice/kubepods-pod${U}.slice/crio-conmon-${ID}.scope`, undefined],
    ['a short id is not an id', '/docker/e3b0c44298fc', undefined],
    ['upper-case hex is not an id', `/docker/${ID.toUpperCase()}`, undefined],
  ];
  for (const [name, path, want] of cases) {
    it(name, () => {
      expect(containerFromCgroup(path)).to.deep.equal(want);
    });
  }

  it('takes the first path that names a container', () => {
    expect(containerFromCgroups(['/', `/docker/${ID}`])).to.deep.equal({ id: ID, runtime: 'docker', podUid: '' });
    expect(containerFromCgroups(['/', '/user.slice'])).to.equal(undefined);
  });
});

describe('unit: /proc/PID/cgroup on v1, v2 and hybrid hosts', () => {
  const podPath = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U}.slice/cri-containerd-${ID}.scope`;

  it('v2: the one line', () => {
    const lines = parseCgroupFile(`0::${podPath}\n`);
    expect(lines).to.deep.equal([{ hierarchy: 0, controllers: '', path: podPath }]);
    expect(primaryCgroupPath(lines)).to.equal(podPath);
    expect(containerFromCgroups(cgroupPaths(lines))?.id).to.equal(ID);
  });

  it('v1: name=systemd first, then any controller that is not at the root', () => {
    const text = ['12:pids:' + podPath, '11:cpu,cpuacct:' + podPath, '3:name=systemd:' + podPath, '1:net_cls,net_prio:/', ''].join('\n');
    const lines = parseCgroupFile(text);
    expect(lines).to.have.length(4);
    expect(lines[1]).to.deep.equal({ hierarchy: 11, controllers: 'cpu,cpuacct', path: podPath });
    expect(primaryCgroupPath(lines)).to.equal(podPath);
    expect(containerFromCgroups(cgroupPaths(lines))).to.deep.equal({ id: ID, runtime: 'containerd', podUid: UID });
  });

  it('hybrid, runtime in both: the v2 line', () => {
    const text = [`4:memory:/libpod_parent/libpod-${ID}`, `1:name=systemd:/libpod_parent/libpod-${ID}`, `0::/libpod_parent/libpod-${ID}`].join('\n');
    const lines = parseCgroupFile(text);
    expect(primaryCgroupPath(lines)).to.equal(`/libpod_parent/libpod-${ID}`);
    expect(containerFromCgroups(cgroupPaths(lines))?.runtime).to.equal('podman');
  });

  it('hybrid, runtime in v1 only (v2 line at the root): a v1 line', () => {
    const text = [`9:name=systemd:/docker/${ID}`, `4:memory:/docker/${ID}`, '0::/'].join('\n');
    const lines = parseCgroupFile(text);
    expect(primaryCgroupPath(lines)).to.equal(`/docker/${ID}`);
    expect(containerFromCgroups(cgroupPaths(lines))?.runtime).to.equal('docker');
  });

  it('hybrid, a host process: "/" and no container', () => {
    const lines = parseCgroupFile(['9:name=systemd:/', '4:memory:/process_api/6f40', '0::/'].join('\n'));
    expect(primaryCgroupPath(lines)).to.equal('/process_api/6f40');
    expect(containerFromCgroups(cgroupPaths(lines))).to.equal(undefined);
  });

  it('keeps colons in a path and skips malformed lines', () => {
    expect(parseCgroupFile('0::/a:b\nnonsense\nx:y:/z\n')).to.deep.equal([{ hierarchy: 0, controllers: '', path: '/a:b' }]);
  });
});
