// Time for deadlines and cache lifetimes. Date.now() follows the wall clock,
// which NTP or a VM resume can step by seconds or hours: a deadline measured
// on it would hold a blocked opener too long or time everything out at once.
// performance.now() is monotonic (CLOCK_MONOTONIC under libuv).
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds from an arbitrary origin; never goes back. */
  now(): number;
}

export const monotonicClock: Clock = { now: () => performance.now() };
