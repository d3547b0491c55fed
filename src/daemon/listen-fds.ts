// The fds the service manager hands a process at start ($LISTEN_FDS from
// fd 3 on, named by $LISTEN_FDNAMES: sd_listen_fds_with_names(3)), and the
// state directory it made for it ($STATE_DIRECTORY, StateDirectory=).
import * as fs from 'node:fs';
import * as ffi from '../kernel/ffi';

/** An fd handed over at start ($LISTEN_FDS, from 3 on) and its name ($LISTEN_FDNAMES). */
export interface ListenFd {
  fd: number;
  name: string;
}

export const LISTEN_FDS_START = 3;

/**
 * sd_listen_fds_with_names: the fds this process was started with, only
 * when $LISTEN_PID is this process (an inherited variable meant for a
 * parent is ignored). Each is made close-on-exec, and the variables are
 * removed so nothing this process starts takes them for its own.
 */
export function listenFds(env: NodeJS.ProcessEnv): ListenFd[] {
  const pid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== process.pid || !Number.isSafeInteger(count) || count <= 0) return [];
  const out: ListenFd[] = [];
  for (let i = 0; i < count; i++) {
    const fd = LISTEN_FDS_START + i;
    if (!ffi.fdIsOpen(fd)) continue;
    ffi.setCloexec(fd);
    out.push({ fd, name: names[i] ?? 'unknown' });
  }
  return out;
}

/** $STATE_DIRECTORY's first entry (systemd's StateDirectory=), or undefined. */
export function stateDirectoryFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const dir = env.STATE_DIRECTORY?.split(':')[0];
  return dir && fs.existsSync(dir) ? dir : undefined;
}
