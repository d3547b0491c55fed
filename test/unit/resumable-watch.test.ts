// The client library's resumable watch on fake calls: Subscribe with the
// name, Attach after the last sequence on a lost stream, events seen twice
// at the seam left out, Gap handed on, a taken name joined, a watch gone
// opened again, permission events always handed over, and the ends that
// are not retried. No daemon.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import type { Event__Output } from '../../src/api/gen/fanotify/v1/Event';
import type { WatchRequest } from '../../src/api/gen/fanotify/v1/WatchRequest';
import type { WatchResponse__Output } from '../../src/api/gen/fanotify/v1/WatchResponse';
import { ResumableWatch, WatchStream, type ResumeHow, type WatchCall } from '../../src/client';

class FakeCall extends EventEmitter {
  readonly written: WatchRequest[] = [];
  write(req: WatchRequest): boolean {
    this.written.push(req);
    return true;
  }
  cancel(): void {
    this.end(grpc.status.CANCELLED);
  }
  end(code: grpc.status): void {
    this.emit('status', { code, details: grpc.status[code], metadata: new grpc.Metadata() });
  }
  respond(message: Partial<WatchResponse__Output>): void {
    this.emit('data', { message, bytes: Buffer.alloc(0) });
  }
  subscribed(name = 'w'): void {
    this.respond({ response: 'subscribed', subscribed: { watch_id: 'x', name } as never });
  }
  events(...seqs: Array<number | [number, boolean]>): void {
    const events = seqs.map((s) => {
      const [seq, needsVerdict] = typeof s === 'number' ? [s, false] : s;
      return { id: String(seq), sequence: String(seq), needs_verdict: needsVerdict } as Event__Output;
    });
    this.respond({ response: 'events', events: { events } });
  }
}

const tick = () => new Promise((r) => setImmediate(r));

function rig(name = 'w', retryFirst = false) {
  const calls: FakeCall[] = [];
  const waited: boolean[] = [];
  const seen: string[] = [];
  const log: string[] = [];
  const w = new ResumableWatch(
    (opening, handlers, waitForReady) => {
      const call = new FakeCall();
      calls.push(call);
      waited.push(waitForReady);
      return new WatchStream(call as unknown as WatchCall, opening, handlers);
    },
    { name, linger_ms: 30_000, marks: [] },
    {
      subscribed: (_s, how: ResumeHow) => log.push(how),
      events: (events, _r, _stream, fresh) => {
        for (const i of fresh ?? events.map((_, j) => j)) seen.push(events[i].sequence);
      },
      gap: (g) => log.push(`gap ${g.from_sequence}-${g.to_sequence}`),
      lost: (s) => log.push(`lost ${grpc.status[s.code]}`),
    },
    { reopenDelayMs: 0, retryFirst },
  );
  /** Wait for the next call to be opened (after the re-open delay). */
  const nextCall = async (n: number) => {
    for (let i = 0; i < 100 && calls.length < n; i++) await new Promise((r) => setTimeout(r, 1));
    expect(calls.length, 'calls opened').to.equal(n);
    return calls[n - 1];
  };
  return { w, calls, waited, seen, log, nextCall };
}

describe('unit: resumable watch', () => {
  it('re-attaches after a lost stream, after the last sequence, and leaves out what it saw before', async () => {
    const r = rig();
    const first = r.calls[0];
    expect(first.written[0]).to.deep.equal({ subscribe: { name: 'w', linger_ms: 30_000, marks: [] } });
    first.subscribed();
    first.events(1, 2, 3);
    first.end(grpc.status.UNAVAILABLE);
    const second = await r.nextCall(2);
    expect(second.written[0]).to.deep.equal({ attach: { name: 'w', after_sequence: '3' } });
    expect(r.waited).to.deep.equal([false, true]);
    second.subscribed();
    // A daemon that sends the seam's last event again: it is not handed on twice.
    second.events(3, 4);
    second.events(2, 5);
    expect(r.seen).to.deep.equal(['1', '2', '3', '4', '5']);
    expect(r.w.lastSequence).to.equal(5n);
    expect(r.log).to.deep.equal(['subscribed', 'lost UNAVAILABLE', 'attached']);
    r.w.cancel();
    expect((await r.w.done).code).to.equal(grpc.status.CANCELLED);
  });

  it('hands a Gap on and resumes after its end', async () => {
    const r = rig();
    r.calls[0].subscribed();
    r.calls[0].events(1);
    r.calls[0].end(grpc.status.INTERNAL);
    const second = await r.nextCall(2);
    second.subscribed();
    second.respond({ response: 'gap', gap: { from_sequence: '2', to_sequence: '7' } });
    second.events(8);
    second.end(grpc.status.UNAVAILABLE);
    const third = await r.nextCall(3);
    expect(third.written[0]).to.deep.equal({ attach: { name: 'w', after_sequence: '8' } });
    expect(r.log).to.deep.equal(['subscribed', 'lost INTERNAL', 'attached', 'gap 2-7', 'lost UNAVAILABLE']);
    expect(r.seen).to.deep.equal(['1', '8']);
    r.w.cancel();
    await r.w.done;
  });

  it('hands over a permission event sent again (failover), whatever its sequence', async () => {
    const r = rig();
    r.calls[0].subscribed();
    r.calls[0].events([4, true], 5);
    r.calls[0].events([4, true], 5, 6);
    expect(r.seen).to.deep.equal(['4', '5', '4', '6']);
    r.w.cancel();
    await r.w.done;
  });

  it('joins a watch that has its name (ALREADY_EXISTS), and opens the watch again when it is gone (NOT_FOUND)', async () => {
    const r = rig();
    r.calls[0].end(grpc.status.ALREADY_EXISTS);
    // The watch of that name is still opening: asked again.
    (await r.nextCall(2)).end(grpc.status.UNAVAILABLE);
    const join = await r.nextCall(3);
    expect(join.written[0]).to.deep.equal({ attach: { name: 'w', after_sequence: '0' } });
    join.subscribed();
    join.events(10);
    join.end(grpc.status.UNAVAILABLE);
    const reattach = await r.nextCall(4);
    reattach.end(grpc.status.NOT_FOUND);
    const again = await r.nextCall(5);
    expect(again.written[0]).to.have.property('subscribe');
    again.subscribed();
    // The new watch numbers from 1 again: nothing of it is taken for a repeat.
    again.events(1, 2);
    expect(r.seen).to.deep.equal(['10', '1', '2']);
    expect(r.log).to.deep.equal(['attached', 'lost UNAVAILABLE', 'resubscribed']);
    r.w.cancel();
    await r.w.done;
  });

  it('subscribes again instead of attaching when the daemon keeps no named watches (no name in Subscribed)', async () => {
    const r = rig();
    r.calls[0].subscribed('');
    r.calls[0].end(grpc.status.UNAVAILABLE);
    const second = await r.nextCall(2);
    expect(second.written[0]).to.have.property('subscribe');
    second.subscribed('');
    expect(r.log).to.deep.equal(['subscribed', 'lost UNAVAILABLE', 'resubscribed']);
    r.w.cancel();
    await r.w.done;
  });

  it('ends with the status of an end no resume mends, and of a first Subscribe that fails unless asked to retry', async () => {
    const bad = rig();
    bad.calls[0].subscribed();
    bad.calls[0].end(grpc.status.PERMISSION_DENIED);
    expect((await bad.w.done).code).to.equal(grpc.status.PERMISSION_DENIED);
    const down = rig();
    down.calls[0].end(grpc.status.UNAVAILABLE);
    expect((await down.w.done).code).to.equal(grpc.status.UNAVAILABLE);
    const fleet = rig('w', true);
    fleet.calls[0].end(grpc.status.UNAVAILABLE);
    (await fleet.nextCall(2)).end(grpc.status.UNAVAILABLE);
    await fleet.nextCall(3);
    // Reported once while the daemon stays away.
    expect(fleet.log).to.deep.equal(['lost UNAVAILABLE']);
    fleet.w.cancel();
    expect((await fleet.w.done).code).to.equal(grpc.status.CANCELLED);
    await tick();
    expect(fleet.calls).to.have.length(3);
  });
});
