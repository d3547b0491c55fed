// How events reach stdout: fatrace-like lines, or with --json one line per
// event in protobuf's canonical JSON (fanotify.v1.Event; with several
// targets wrapped as {"target", "event"} so the event stays a valid Event).
// With --json, stdout carries events only; losses and reconnections go to
// stderr, where they are seen without breaking a JSON-lines consumer.
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Gap__Output } from '../api/gen/fanotify/v1/Gap';
import type { CanonicalJson } from '../client';
import { formatEvent } from './format';
import type { Io } from './io';

export class EventOutput {
  constructor(
    private readonly io: Io,
    private readonly json: CanonicalJson | undefined,
    private readonly fleet: boolean,
  ) {}

  tag(target: string): string {
    return this.fleet ? `[${target}] ` : '';
  }

  /** The events of one batch at `indices` (all when absent); `bytes` is the WatchResponse they came in. */
  events(target: string, batch: Event__Output[], bytes: Buffer, indices?: number[], label = ''): void {
    const which = indices ?? batch.map((_, i) => i);
    if (which.length === 0) return;
    if (this.json) {
      const all = this.json.events(bytes);
      for (const i of which) this.io.out(JSON.stringify(this.fleet ? { target, event: all[i] } : all[i]));
      return;
    }
    for (const i of which) this.io.out(`${this.tag(target)}${label}${formatEvent(batch[i])}`);
  }

  /**
   * Events that will never come (Gap): a line for people, and with --json
   * also a line on stdout, where the events are, in protobuf JSON
   * ({"gap": Gap}, with several targets {"target", "gap"}), so a consumer
   * of the JSON lines knows what it missed.
   */
  gap(target: string, g: Gap__Output): void {
    const from = String(g.from_sequence);
    const to = String(g.to_sequence);
    const n = BigInt(to) - BigInt(from) + 1n;
    if (this.json) this.io.out(JSON.stringify({ ...(this.fleet ? { target } : {}), gap: { fromSequence: from, toSequence: to } }));
    this.notice(target, `GAP: ${n} events lost (sequences ${from}-${to}): the daemon no longer held them`);
  }

  /** Something the reader of the event stream must know (lost events, a gap): a line of its own, or stderr with --json. */
  notice(target: string, text: string): void {
    if (this.json) this.io.note(`${this.tag(target)}${text}`);
    else this.io.out(`${this.tag(target)}${text}`);
  }
}
