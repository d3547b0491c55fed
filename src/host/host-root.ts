// The host's view from anywhere: the directory request paths are resolved
// beneath (--host-root). A daemon in a mount namespace of its own (systemd
// sandboxing, a container) sees copies of the host's mounts, and a mount
// mark placed through a copy watches the copy, not the host's mount: a
// host process's open through the host's mount is then never seen.
// Resolved beneath /proc/<a host pid>/root, the same path reaches the
// host's own mount, and mount marks see host processes again.
import * as fs from 'node:fs';
import * as ffi from '../kernel/ffi';
import { useMarkRoot } from '../kernel/group';
import { useHostMountTable } from './container-path';
import { useMountTable } from './mounts';

export interface HostRoot {
  /** The directory request paths are resolved beneath; "/" is the daemon's own root. */
  path: string;
  /** Why it is not what was asked for or what the default would have been; '' when it is. */
  note: string;
}

const nsOf = (pid: number | 'self') => fs.statSync(`/proc/${pid}/ns/mnt`).ino;

/**
 * The default: /proc/1/root when the daemon's mount namespace is not PID
 * 1's, else "/". Where PID 1's namespace cannot be looked at (hardened
 * hosts, some sandboxes: even root gets EACCES), "/" with a note saying so.
 */
function defaultRoot(): HostRoot {
  let other: boolean;
  try {
    other = nsOf('self') !== nsOf(1);
  } catch (err) {
    return { path: '/', note: `/proc/1/ns/mnt cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): paths are resolved in the daemon's own mount namespace; if it is not the host's, mount marks miss host processes: give --host-root /proc/<a host pid>/root` };
  }
  if (!other) return { path: '/', note: '' };
  try {
    fs.readdirSync('/proc/1/root');
    return { path: '/proc/1/root', note: '' };
  } catch (err) {
    return { path: '/', note: `the daemon runs in a mount namespace of its own and /proc/1/root cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): paths are resolved in its own namespace, where mount marks miss host processes; give --host-root /proc/<a host pid>/root` };
  }
}

/** The pid whose root a /proc/PID/root path names, for its mount table. */
function pidOf(root: string): number | undefined {
  const m = /^\/proc\/(\d+)\/root\/?$/.exec(root);
  return m ? Number(m[1]) : undefined;
}

/**
 * Choose the host root (asked: --host-root, or undefined for the default),
 * open it, and have every mark path resolved beneath it. Throws when an
 * asked root cannot be opened (a configuration error to report at start).
 */
export function setUpHostRoot(asked: string | undefined): HostRoot {
  const chosen: HostRoot = asked === undefined ? defaultRoot() : { path: asked, note: '' };
  const root = chosen.path;
  if (root === '/') return chosen;
  // O_PATH: held for the daemon's life, it opens nothing a mark could hold.
  const fd = fs.openSync(root, ffi.O_PATH | ffi.O_DIRECTORY | ffi.O_CLOEXEC);
  useMarkRoot(fd);
  const pid = pidOf(root);
  if (pid !== undefined) {
    useHostMountTable(pid);
    useMountTable(pid);
  }
  return chosen;
}
