// Every default in one place. Flags override these; start-up validates the result.
export const DEFAULTS = {
  listen: ['unix:/run/fanotifyd/fanotifyd.sock'],
  logLevel: 'info',
  /** A process waits in open() this long for a remote verdict before timeout_decision applies. */
  defaultVerdictTimeoutMs: 5_000,
  maxVerdictTimeoutMs: 60_000,
  defaultMaxBatchEvents: 256,
  maxBatchEvents: 4_096,
  /** Notifications held per watch for a slow client: matches the kernel's default queue (16384). */
  queueCapacity: 16_384,
  /** The kernel's default fs.fanotify.max_user_groups is 128. */
  maxWatches: 1_000,
  maxMarksPerWatch: 256,
  /** Watches one client identity may hold at once (a policy rule may set fewer); 128 is the kernel's default fs.fanotify.max_user_groups, all of which are the daemon's. */
  maxWatchesPerIdentity: 128,
  /** Permission events awaiting a verdict per watch; past it they get the timeout decision at once. */
  maxPendingPerWatch: 4_096,
  /** Largest gRPC message either way; a full batch of large events fits easily. */
  maxMessageBytes: 16 * 1024 * 1024,
  /** A connection with no open stream for this long is closed: slow-loris clients hold nothing. */
  idleTimeoutMs: 300_000,
  /** A connection has this long to send the HTTP/2 preface (a real client sends it at once), and to close its side after the daemon closed the connection. */
  handshakeTimeoutMs: 10_000,
  /** Open connections per listener: each costs a file descriptor and some memory; far above what a host's clients need. */
  maxConnections: 1_024,
  /** The largest Subscribe.linger_ms: how long a named watch may stay without a stream (10 minutes). */
  maxLingerMs: 600_000,
  /**
   * Bytes of encoded events a named watch keeps for streams to resume from:
   * 64 MiB holds about 150,000 dfid_name events of one process (about 430
   * bytes each with the journal's own cost).
   */
  resumeBufferBytes: 64 * 1024 * 1024,
  /**
   * Full buffers every named watch's buffer holds together, when
   * --resume-buffer-total-bytes is not given: without a total the bound is
   * resumeBufferBytes times --max-watches (64 GiB by default). Eight (512
   * MiB with the default buffer) is more than a host's usual named watches
   * (a collector, an exporter, a guard or two) fill, and a ceiling a host
   * agent can be given; past it the busiest watch loses its oldest events.
   * A multiple rather than a fixed size, so a configuration that raised
   * --resume-buffer-bytes alone keeps starting.
   */
  resumeBuffersPerTotal: 8,
  /** Libuv pool threads, for fs work (directory opens for handles, /proc reads stay on the main thread) and dns. */
  threadpoolSize: 8,
} as const;
