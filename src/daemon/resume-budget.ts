// The one budget every named watch's replay journal draws from
// (--resume-buffer-total-bytes), with its log: a chunk it takes from a
// busy watch can come once per 170 events, so the line is rate-limited,
// one per second with a count of those left out.
import type { Logger } from '../common/log';
import { RateLimitedLog } from '../common/rate-limited-log';
import { JournalBudget } from '../watch/journal-budget';

export function resumeBudget(totalBytes: number, log: Logger): JournalBudget {
  const limited = new RateLimitedLog(log);
  return new JournalBudget(totalBytes, (drop) =>
    limited.warn('resume buffers past --resume-buffer-total-bytes: the oldest events of the watch holding the most dropped (its streams get a Gap)', {
      watch: drop.owner?.watch,
      name: drop.owner?.name,
      dropped_bytes: drop.bytes,
      watch_bytes_left: drop.left,
      total_bytes: totalBytes,
    }),
  );
}
