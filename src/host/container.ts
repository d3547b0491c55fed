// What is known of the container a process runs in: the id, runtime and
// pod uid from its cgroup path at once, the rest when the container runtime
// has answered (src/host/cri.ts), never waited for.

export interface ContainerInfo {
  /** The runtime's container id, 64 hex digits. */
  id: string;
  /** "containerd", "cri-o", "docker", "podman", or "" when the path does not say. */
  runtime: string;
  /** The Kubernetes pod's uid, from the kubepods cgroup path; "" outside Kubernetes. */
  podUid: string;
  podName?: string;
  podNamespace?: string;
  /** The container's name in its pod. */
  name?: string;
  image?: string;
  labels?: Readonly<Record<string, string>>;
}
