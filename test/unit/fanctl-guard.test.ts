// fanctl guard's handler of an EventBatch: events a rule denied are
// printed and never answered; events that wait for a verdict (--ask, or a
// daemon that ignores rules) are answered by the globs, in one batch. No daemon.
import { expect } from 'chai';
import type { Event__Output } from '../../src/api/gen/fanotify/v1/Event';
import type { Verdict } from '../../src/api/gen/fanotify/v1/Verdict';
import type { WatchResponse__Output } from '../../src/api/gen/fanotify/v1/WatchResponse';
import { EventOutput } from '../../src/cli/event-output';
import type { Source } from '../../src/cli/fleet-watch';
import { answerEvents } from '../../src/cli/guard';
import { PathRules } from '../../src/cli/path-rules';
import type { Received, WatchStream } from '../../src/client';

function event(id: number, path: string, more: Partial<Event__Output> = {}): Event__Output {
  return {
    id: String(id),
    types: ['EVENT_TYPE_OPEN_PERM'],
    path,
    needs_verdict: false,
    decision: 'DECISION_UNSPECIFIED',
    rule: 0,
    process: { pid: 7, comm: 'cat' },
    time: { seconds: '0', nanos: 0 },
    ...more,
  } as Event__Output;
}

function run(events: Event__Output[]): { lines: string[]; sent: Verdict[][] } {
  const lines: string[] = [];
  const sent: Verdict[][] = [];
  const output = new EventOutput({ out: (l) => lines.push(l), note: () => undefined }, undefined, false);
  const source = { target: 't', stream: { sendVerdicts: (v: Verdict[]) => sent.push(v) } as unknown as WatchStream } satisfies Source;
  const response = { message: {} as WatchResponse__Output, bytes: Buffer.alloc(0) } satisfies Received<WatchResponse__Output>;
  answerEvents(new PathRules(['*.key', '!/d/ok.key']), output)(events, response, source);
  return { lines, sent };
}

describe('unit: fanctl guard', () => {
  it('prints what a rule denied and answers nothing', () => {
    const { lines, sent } = run([event(1, '/d/a.key', { decision: 'DECISION_DENY', rule: 1 }), event(2, '/d/b.txt', { decision: 'DECISION_ALLOW', rule: 2 }), event(3, '/d/c.txt')]);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^DENY .* cat\(7\): OPEN_PERM \/d\/a\.key$/);
    expect(sent).to.deep.equal([[]]);
  });

  it('answers events that wait for a verdict by the globs, all in one batch, and prints the denials', () => {
    const { lines, sent } = run([event(1, '/d/a.key', { needs_verdict: true }), event(2, '/d/ok.key', { needs_verdict: true }), event(3, '/d/x/b.txt', { needs_verdict: true })]);
    expect(sent).to.deep.equal([
      [
        { id: '1', decision: 'DECISION_DENY' },
        { id: '2', decision: 'DECISION_ALLOW' },
        { id: '3', decision: 'DECISION_ALLOW' },
      ],
    ]);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^DENY .* \/d\/a\.key$/);
  });
});
