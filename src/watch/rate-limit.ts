// Subscribe.max_events_per_second: at most that many notifications leave
// in each second of the watch's monotonic clock (a second starting with
// the first event after the previous one ended), so a burst is cut at the
// limit and a steady flow below it is never touched.
export class RateLimit {
  private windowStart = -Infinity;
  private used = 0;

  constructor(private readonly perSecond: number) {}

  /** Whether one more event may leave at `now` (ms, monotonic); counts it when it may. */
  admit(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.perSecond) return false;
    this.used++;
    return true;
  }
}
