// The service manager's notification protocol (sd_notify(3)): newline-
// separated VAR=VALUE assignments in one datagram to $NOTIFY_SOCKET, fds
// attached as SCM_RIGHTS (sd_pid_notify_with_fds). Where the variable is
// not set, fromEnv gives nothing and the daemon behaves as it always did.
import type { Logger } from '../common/log';
import { dgramSocket, sendWithFds } from '../kernel/unix-dgram';
import * as ffi from '../kernel/ffi';

/**
 * systemd's fdname_is_valid: at most 255 characters, printable ASCII, no
 * ':' (the separator of $LISTEN_FDNAMES). Everything else is written as
 * %XX, so distinct names stay distinct and the mapping can be read back.
 */
export function fdName(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte > 0x20 && byte < 0x7f && ch !== ':' && ch !== '%' ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
export const FDNAME_MAX = 255;

export class SdNotify {
  private readonly fd: number;
  private watchdog?: NodeJS.Timeout;

  private constructor(
    readonly socket: string,
    private readonly log: Logger,
  ) {
    this.fd = dgramSocket();
  }

  /** The notifier where $NOTIFY_SOCKET names one (a path, or @ for the abstract namespace). */
  static fromEnv(env: NodeJS.ProcessEnv, log: Logger): SdNotify | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket || !(socket.startsWith('/') || socket.startsWith('@'))) return undefined;
    return new SdNotify(socket, log);
  }

  /** Send one message; false (logged) when the manager did not take it. */
  send(fields: Record<string, string | number>, fds: readonly number[] = []): boolean {
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    try {
      sendWithFds(this.fd, this.socket, Buffer.from(text), fds);
      return true;
    } catch (err) {
      this.log.warn('notifying the service manager failed', { socket: this.socket, message: text.split('\n')[0], error: err });
      return false;
    }
  }

  ready(status: string): void {
    this.send({ READY: 1, STATUS: status, MAINPID: process.pid });
  }

  stopping(): void {
    this.send({ STOPPING: 1 });
  }

  /**
   * WATCHDOG=1 at half of $WATCHDOG_USEC (sd_watchdog_enabled: only when
   * $WATCHDOG_PID, if set, is this process). The timer is unref'd: it
   * keeps nothing alive, and a blocked main thread stops the pings, which
   * is the point of the watchdog.
   */
  startWatchdog(env: NodeJS.ProcessEnv): number | undefined {
    const usec = Number(env.WATCHDOG_USEC);
    if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
    if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
    const everyMs = Math.max(1, Math.floor(usec / 2000));
    this.send({ WATCHDOG: 1 });
    this.watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), everyMs);
    this.watchdog.unref();
    return everyMs;
  }

  /** Hand fd to the store under `name` (FDPOLL=0: a group fd is readable, never hung up, and systemd need not watch it). */
  store(name: string, fd: number): boolean {
    return this.send({ FDSTORE: 1, FDNAME: name, FDPOLL: 0 }, [fd]);
  }

  /** Drop every fd stored under `name`. */
  remove(name: string): boolean {
    return this.send({ FDSTOREREMOVE: 1, FDNAME: name });
  }

  close(): void {
    clearInterval(this.watchdog);
    ffi.closeFd(this.fd);
  }
}

