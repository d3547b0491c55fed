// Which container, and which Kubernetes pod, a cgroup path belongs to.
//
// Runtimes name a container's cgroup after its id, and kubelet names a
// pod's after its uid, each in the style of the cgroup driver in use:
//
//   systemd driver (dashes in a unit name are hierarchy, so the pod uid's
//   dashes become underscores):
//     /kubepods.slice/kubepods-burstable.slice/
//       kubepods-burstable-pod1b2c..._..slice/cri-containerd-<id>.scope
//     /kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope   (guaranteed)
//     /system.slice/docker-<id>.scope, /machine.slice/libpod-<id>.scope
//   cgroupfs driver:
//     /kubepods/besteffort/pod<uid>/<id>, /kubepods/pod<uid>/<id>
//     /docker/<id>, /libpod_parent/libpod-<id>
//
// The deepest segment naming a container wins: a container that made
// cgroups of its own (systemd inside, podman's "container" leaf under
// cgroup namespaces) is still that container. conmon and crio-conmon
// scopes are the runtime's monitor, not the container, and name none.
import type { ContainerInfo } from './container';

/** A runtime's prefix of a container's cgroup name, and the runtime it means. */
const PREFIXES: ReadonlyArray<[string, string]> = [
  ['cri-containerd-', 'containerd'],
  ['crio-', 'cri-o'],
  ['docker-', 'docker'],
  ['libpod-', 'podman'],
];

const HEX64 = /^[0-9a-f]{64}$/;
/** kubepods-pod<uid>.slice, kubepods-<qos>-pod<uid>.slice (systemd) or pod<uid> (cgroupfs). */
const POD = /^(?:kubepods-(?:[a-z]+-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

/** The container id and runtime a cgroup segment names, if it names one. */
function containerOf(segment: string, parent: string | undefined): { id: string; runtime: string } | undefined {
  const name = segment.endsWith('.scope') ? segment.slice(0, -'.scope'.length) : segment;
  for (const [prefix, runtime] of PREFIXES) {
    if (name.startsWith(prefix)) {
      const id = name.slice(prefix.length);
      return HEX64.test(id) ? { id, runtime } : undefined;
    }
  }
  // cgroupfs driver: the bare id. Under /docker it is docker's; under a
  // pod, containerd's or CRI-O's alike, which only the runtime can tell.
  if (HEX64.test(name)) return { id: name, runtime: parent === 'docker' ? 'docker' : '' };
  return undefined;
}

/**
 * The container and pod a cgroup path names: undefined for a process in
 * no container (nothing in the path names one, or only a pod: the pod's
 * own cgroup holds no process of a container).
 */
export function containerFromCgroup(path: string): ContainerInfo | undefined {
  const segments = path.split('/');
  let found: { id: string; runtime: string } | undefined;
  for (let i = segments.length - 1; i > 0 && !found; i--) found = containerOf(segments[i], segments[i - 1]);
  if (!found) return undefined;
  let podUid = '';
  for (const s of segments) {
    const m = POD.exec(s);
    if (m) podUid = m[1].replace(/_/g, '-');
  }
  return { id: found.id, runtime: found.runtime, podUid };
}

/** The first container named by any of the paths (the primary path first). */
export function containerFromCgroups(paths: readonly string[]): ContainerInfo | undefined {
  for (const p of paths) {
    const c = containerFromCgroup(p);
    if (c) return c;
  }
  return undefined;
}
