// Where the exporter's items come from: a named watch of the local daemon
// (daemon-source.ts), or anything else that numbers its events and says
// where it lost some. The source resumes by itself after a reconnect, from
// the last sequence it delivered; the exporter only starts it at its
// cursor and holds it back while its window is full.
import type { ExportItem } from './items';

export interface SourceSession {
  /** The daemon host's boot id. */
  bootId: string;
  /** The last sequence the daemon had given out when the session began (for the lag metric). */
  lastSequence: bigint;
}

export interface SourceHandlers {
  /** A session began (again, after a reconnect). */
  session(s: SourceSession): void;
  /** Items in sequence order. */
  items(items: ExportItem[]): void;
  /** The session ended and the source is reconnecting; `reason` for the log. */
  lost(reason: string): void;
}

export interface Source {
  /** Begin delivering what follows `afterSequence` (0: all the daemon still holds). */
  start(afterSequence: bigint, handlers: SourceHandlers): void;
  /** Stop reading: the daemon's buffer fills and then reports a gap; the daemon itself never waits. */
  pause(): void;
  resume(): void;
  /** End the session; a named watch lingers on the daemon, so a restarted exporter attaches to it. */
  close(): Promise<void>;
}
