// A process's cgroup, from /proc/PID/cgroup, and the kernel's id of it.
//
// The file has one line per hierarchy, "ID:CONTROLLERS:PATH" (cgroups(7)):
// a v2 host has the single line "0::PATH", a v1 host one line per
// controller hierarchy, and a hybrid host (systemd's "hybrid" layout, v1
// controllers with the v2 hierarchy at /sys/fs/cgroup/unified) both. The
// path to report is the v2 one, which names the process's place in the one
// tree every runtime now uses; on a hybrid host whose runtime places
// containers in the v1 hierarchies only, the v2 line stays "/" and the v1
// paths are the informative ones.
import * as fs from 'node:fs';

export interface CgroupLine {
  /** Hierarchy id; 0 for the v2 hierarchy. */
  hierarchy: number;
  /** Controllers of a v1 hierarchy ("cpu,cpuacct", "name=systemd"); empty for v2. */
  controllers: string;
  path: string;
}

/** The lines of /proc/PID/cgroup; malformed ones are skipped. */
export function parseCgroupFile(text: string): CgroupLine[] {
  const out: CgroupLine[] = [];
  for (const line of text.split('\n')) {
    // The path is everything after the second colon: it may itself hold colons.
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const hierarchy = Number(line.slice(0, a));
    if (!Number.isInteger(hierarchy) || hierarchy < 0) continue;
    out.push({ hierarchy, controllers: line.slice(a + 1, b), path: line.slice(b + 1) });
  }
  return out;
}

const isV2 = (l: CgroupLine) => l.hierarchy === 0 && l.controllers === '';

/**
 * The path reported as the process's cgroup: the v2 line's, unless it is
 * the root on a host that also has v1 lines (hybrid, runtime in v1 only);
 * then name=systemd's, else the first v1 line's that is not the root.
 */
export function primaryCgroupPath(lines: readonly CgroupLine[]): string {
  const v2 = lines.find(isV2);
  if (v2 && (v2.path !== '/' || lines.length === 1)) return v2.path;
  const v1 = lines.filter((l) => !isV2(l) && l.path !== '/');
  return (v1.find((l) => l.controllers === 'name=systemd') ?? v1[0])?.path ?? v2?.path ?? '';
}

/** Every distinct path of the file, the primary one first: where a container id may be found. */
export function cgroupPaths(lines: readonly CgroupLine[]): string[] {
  const primary = primaryCgroupPath(lines);
  const rest = new Set(lines.map((l) => l.path));
  rest.delete(primary);
  return [primary, ...rest];
}

/** Where the v2 hierarchy is mounted in the daemon's view, found once from its mount table. */
let v2Mount: string | null | undefined;

/** The v2 hierarchy's mount point (/sys/fs/cgroup or /sys/fs/cgroup/unified), or null without one. */
export function cgroup2Mount(): string | null {
  if (v2Mount !== undefined) return v2Mount;
  v2Mount = null;
  try {
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const sep = line.indexOf(' - ');
      if (sep < 0 || !line.startsWith('cgroup2 ', sep + 3)) continue;
      // Field 4 is the root within the filesystem, 5 the mount point (proc(5)).
      const f = line.slice(0, sep).split(' ');
      if (f[3] === '/') {
        v2Mount = f[4].replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
        break;
      }
    }
  } catch {
    // No /proc/self/mountinfo: no cgroup ids.
  }
  return v2Mount;
}

/**
 * The kernel's id of a v2 cgroup: the inode number of its directory in
 * cgroupfs, which is what bpf_get_current_cgroup_id() and
 * name_to_handle_at() of the directory give (kernfs node id, 64-bit).
 * 0 when the hierarchy is not mounted here or the cgroup is gone.
 */
export function cgroupId(v2Path: string): number {
  const mount = cgroup2Mount();
  if (!mount || !v2Path.startsWith('/')) return 0;
  try {
    // A stat, not an open: nothing under a fanotify mark can make it wait.
    return fs.statSync(v2Path === '/' ? mount : mount + v2Path).ino;
  } catch {
    return 0;
  }
}

/** Raw /proc/PID/cgroup text, or undefined once the process is gone. */
export function readCgroupFile(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1');
  } catch {
    return undefined;
  }
}

/** For a test: forget the mount point found. */
export function resetCgroup2Mount(): void {
  v2Mount = undefined;
}
