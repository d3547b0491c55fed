// A log for failures that can repeat once per event (a response the kernel
// refuses, a /proc read that fails, an undecodable record): at 100,000
// events/s a line each would bury every other line and cost a synchronous
// write per event. Each cause (its message) gets at most one line per
// interval; the line after a quiet spell, or flush(), says how many were
// left out in between.
import { monotonicClock, type Clock } from './clock';
import type { Logger } from './log';

type Level = 'warn' | 'error';

interface Cause {
  level: Level;
  /** Clock time of the cause's last line. */
  loggedAt: number;
  /** Occurrences since that line that were not logged. */
  suppressed: number;
}

export const RATE_LIMIT_INTERVAL_MS = 1000;

export class RateLimitedLog {
  private readonly causes = new Map<string, Cause>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock = monotonicClock,
    private readonly intervalMs = RATE_LIMIT_INTERVAL_MS,
  ) {}

  warn(msg: string, fields?: Record<string, unknown>): void {
    this.emit('warn', msg, fields);
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    this.emit('error', msg, fields);
  }

  /** One line per cause with occurrences not yet told (the owner calls it when it closes). */
  flush(): void {
    for (const [msg, c] of this.causes) {
      if (c.suppressed) this.log[c.level](msg, { suppressed: c.suppressed });
    }
    this.causes.clear();
  }

  private emit(level: Level, msg: string, fields: Record<string, unknown> | undefined): void {
    const now = this.clock.now();
    const c = this.causes.get(msg);
    if (!c) {
      this.causes.set(msg, { level, loggedAt: now, suppressed: 0 });
      this.log[level](msg, fields);
      return;
    }
    if (now - c.loggedAt < this.intervalMs) {
      c.suppressed++;
      return;
    }
    this.log[level](msg, c.suppressed ? { ...fields, suppressed: c.suppressed } : fields);
    c.loggedAt = now;
    c.suppressed = 0;
  }
}
