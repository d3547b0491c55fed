// A process's cgroup and container, read with the rest of its /proc
// description (so at most once per process per process-cache lifetime)
// and completed by the container runtime's metadata as it becomes known.
//
// The metadata source is one per daemon, as the runtime is one per host:
// the daemon registers it at start (useContainerDirectory), and every
// watch's process cache consults it without waiting.
import { cgroupId, cgroupPaths, parseCgroupFile, readCgroupFile } from './cgroup';
import type { ContainerInfo } from './container';
import { containerFromCgroups } from './container-id';
import { isOtherNamespace, mountNamespaceOf } from './container-path';

export interface Attribution {
  cgroupId: number;
  cgroup: string;
  container?: ContainerInfo;
  /** Its mount namespace, when not the host's: its paths may differ (Event.container_path). */
  mntns?: number;
}

/**
 * Container metadata beyond the cgroup path. current() never blocks: it
 * returns what is known now (the same object while nothing changed, so an
 * event's encoded process is reused) and may start a background lookup.
 */
export interface ContainerDirectory {
  current(c: ContainerInfo): ContainerInfo;
}

let directory: ContainerDirectory | undefined;

/** Register the daemon's container runtime client (undefined: cgroup paths only). */
export function useContainerDirectory(d: ContainerDirectory | undefined): void {
  directory = d;
}

/**
 * Parsed containers by the cgroup file's text: the processes of one
 * container share one text and one object, and the parse is done once.
 * Bounded: emptied when full, as the process cache is.
 */
const parsed = new Map<string, { cgroup: string; v2: string | undefined; container?: ContainerInfo }>();
const PARSED_MAX = 4096;

/** The process's cgroup and container; undefined once it is gone. */
export function readAttribution(pid: number): Attribution | undefined {
  const text = readCgroupFile(pid);
  if (text === undefined) return undefined;
  let p = parsed.get(text);
  if (!p) {
    const lines = parseCgroupFile(text);
    const paths = cgroupPaths(lines);
    p = { cgroup: paths[0] ?? '', v2: lines.find((l) => l.hierarchy === 0 && l.controllers === '')?.path, container: containerFromCgroups(paths) };
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(text, p);
  }
  const container = p.container && directory ? directory.current(p.container) : p.container;
  const ns = mountNamespaceOf(pid);
  return { cgroupId: p.v2 === undefined ? 0 : cgroupId(p.v2), cgroup: p.cgroup, container, mntns: isOtherNamespace(ns) ? ns : undefined };
}

/**
 * The container as known now: the cached description's own object when
 * nothing was learnt since, else the runtime's newer one. One map lookup
 * per event of a process in a container with a runtime registered.
 */
export function currentContainer(c: ContainerInfo | undefined): ContainerInfo | undefined {
  return c && directory ? directory.current(c) : c;
}
