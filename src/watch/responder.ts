// How a permission event gets its one answer: the response written to the
// group (plainly again when the kernel refuses the extras), the event fd
// closed, the decision counted and reported.
import type { Clock } from '../common/clock';
import type { RateLimitedLog } from '../common/rate-limited-log';
import * as K from '../kernel/constants';
import * as ffi from '../kernel/ffi';
import { ResponseWriter } from '../kernel/response';
import type { DecidedBy, WatchEvent, WatchOptions, WatchStats } from './types';

export class Responder {
  private readonly writer: ResponseWriter;

  constructor(
    groupFd: number,
    private readonly stats: WatchStats,
    private readonly log: RateLimitedLog,
    private readonly clock: Clock,
    private readonly onDecision?: WatchOptions['onDecision'],
  ) {
    this.writer = new ResponseWriter(groupFd);
  }

  /** Answer a delivered permission event: its response, then its fd closed, then the decision reported. */
  answer(item: WatchEvent, response: number, by: DecidedBy, auditRule = 0): void {
    item.needsVerdict = false;
    this.respond(item.ev.fd, response, auditRule);
    if (item.pidfd === undefined) ffi.closeFd(item.ev.fd);
    else ffi.closeFds([item.ev.fd, item.pidfd]);
    item.ev.fd = K.FAN_NOFD;
    item.pidfd = undefined;
    this.stats.decisions[by]++;
    if (this.onDecision) {
      const latency = item.readAt === undefined ? 0 : this.clock.now() - item.readAt;
      this.onDecision(item, (response & K.FAN_DENY) === 0, by, latency);
    }
  }

  /** Write the response for an event fd; the fd stays open. */
  respond(eventFd: number, response: number, auditRule = 0): void {
    if (response & K.FAN_DENY) this.stats.denied++;
    else this.stats.allowed++;
    if (this.write(eventFd, response, auditRule)) return;
    // The kernel refused an extended response (an errno or FAN_AUDIT it
    // does not take): the event is still pending, so answer it plainly.
    const plain = response & (K.FAN_ALLOW | K.FAN_DENY);
    if (plain !== response && this.write(eventFd, plain)) {
      this.stats.responseFallbacks++;
      return;
    }
    this.stats.responseErrors++;
  }

  private write(eventFd: number, response: number, auditRule = 0): boolean {
    try {
      this.writer.write(eventFd, response, auditRule);
      return true;
    } catch (err) {
      this.log.error('writing a permission response failed', { response, error: err });
      return false;
    }
  }
}
