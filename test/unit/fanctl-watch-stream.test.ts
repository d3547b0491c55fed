// The client library's WatchStream on a fake call: what it writes for
// ReplaceRules and GetStats, where their answers go, and that nothing is
// written once the call has its status. No daemon.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import type { MarkResult__Output } from '../../src/api/gen/fanotify/v1/MarkResult';
import type { WatchRequest } from '../../src/api/gen/fanotify/v1/WatchRequest';
import type { WatchResponse__Output } from '../../src/api/gen/fanotify/v1/WatchResponse';
import type { WatchStats__Output } from '../../src/api/gen/fanotify/v1/WatchStats';
import { WatchStream, type WatchCall } from '../../src/client';

class FakeCall extends EventEmitter {
  readonly written: WatchRequest[] = [];
  write(req: WatchRequest): boolean {
    this.written.push(req);
    return true;
  }
  cancel(): void {
    this.emit('status', { code: grpc.status.CANCELLED, details: 'cancelled', metadata: new grpc.Metadata() });
  }
  respond(message: Partial<WatchResponse__Output>): void {
    this.emit('data', { message, bytes: Buffer.alloc(0) });
  }
}

describe('unit: fanctl client watch stream', () => {
  it('sends ReplaceRules and GetStats, and hands their answers to the handlers', async () => {
    const call = new FakeCall();
    const results: MarkResult__Output[] = [];
    const stats: WatchStats__Output[] = [];
    const stream = new WatchStream(call as unknown as WatchCall, { marks: [] }, { markResult: (r) => results.push(r), stats: (s) => stats.push(s) });
    const rules = [{ match: { paths: ['*.key'] }, decision: 'DECISION_DENY' as const, report: true }];
    stream.replaceRules({ request_id: 3, rules });
    stream.getStats(4);
    expect(call.written).to.deep.equal([{ subscribe: { marks: [] } }, { replace_rules: { request_id: 3, rules } }, { get_stats: { request_id: 4 } }]);
    call.respond({ response: 'mark_result', mark_result: { request_id: '3', code: 0, message: '', errno: '' } });
    call.respond({ response: 'stats', stats: { request_id: '4', delivered: '10', decided_by_rule: '7' } as WatchStats__Output });
    expect(results.map((r) => r.request_id)).to.deep.equal(['3']);
    expect(stats).to.have.length(1);
    expect(stats[0]).to.include({ request_id: '4', decided_by_rule: '7' });
    stream.cancel();
    expect((await stream.done).code).to.equal(grpc.status.CANCELLED);
    stream.replaceRules({ request_id: 5 });
    stream.getStats(6);
    expect(call.written).to.have.length(3);
  });
});
