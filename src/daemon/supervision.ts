// What the daemon takes from its service manager at start: the
// notification socket (READY=1, the watchdog, STOPPING=1), and, unless
// $FDSTORE says the unit has no file descriptor store, with a state
// directory, the store for watches that outlive the process. Without $NOTIFY_SOCKET: nothing, and the daemon is as it
// always was.
import type { Logger } from '../common/log';
import * as ffi from '../kernel/ffi';
import type { Config } from './config';
import { FD_LIMIT_WITH_STORE } from './fd-store';
import { listenFds, stateDirectoryFromEnv, type ListenFd } from './listen-fds';
import { SdNotify } from './sd-notify';
import { WatchStore } from './watch-store';

export interface Supervision {
  sd?: SdNotify;
  /** Set when groups can be kept in the fd store. */
  store?: WatchStore;
  /** Fds handed back at this start (only with a store). */
  fds: ListenFd[];
}

export function supervisionFromEnv(cfg: Config, env: NodeJS.ProcessEnv, log: Logger): Supervision {
  const sd = SdNotify.fromEnv(env, log);
  if (!sd) return { fds: [] };
  // systemd sets $FDSTORE to FileDescriptorStoreMax= from version 254 on;
  // an older one says nothing, and ignores FDSTORE=1 (with a warning of
  // its own) when the unit has no store, which costs nothing here: so
  // only FDSTORE=0 turns the store off.
  const offered = env.FDSTORE === undefined || Number(env.FDSTORE) > 0;
  const dir = cfg.stateDir ?? stateDirectoryFromEnv(env);
  if (!offered || !dir) {
    if (offered) log.warn("no state directory (StateDirectory= or --state-dir): watches are not kept in systemd's file descriptor store, and will not survive a restart");
    // Groups handed back that nothing will read would hold their openers
    // for as long as this process lives: closed (the kernel allows what
    // they held) and dropped from the store.
    for (const f of listenFds(env)) {
      log.warn('an fd in the store cannot be taken back without a state directory; closed', { name: f.name });
      ffi.closeFd(f.fd);
      sd.remove(f.name);
    }
    return { sd, fds: [] };
  }
  // The restore sweep tries every fd number the previous process could
  // have been given; the soft limit bounds them (fd-store.ts).
  const { soft } = ffi.fileLimit();
  if (soft > FD_LIMIT_WITH_STORE) ffi.setFileLimit(FD_LIMIT_WITH_STORE);
  return { sd, store: new WatchStore(dir), fds: listenFds(env) };
}
