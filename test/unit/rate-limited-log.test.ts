// Failures that can repeat per event: one line per cause per interval, and
// a count of what was left out.
import { expect } from 'chai';
import type { Logger } from '../../src/common/log';
import { RateLimitedLog } from '../../src/common/rate-limited-log';
import { FakeClock } from '../fixtures/fake-clock';

function recorder() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, fields });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, lines };
}

describe('unit: rate-limited log', () => {
  it('logs a cause once per second and says how many it left out', () => {
    const { log, lines } = recorder();
    const clock = new FakeClock();
    const rl = new RateLimitedLog(log, clock);
    for (let i = 0; i < 5; i++) rl.warn('enrichment failed', { error: `e${i}` });
    clock.advance(999);
    rl.warn('enrichment failed', { error: 'e5' });
    expect(lines).to.deep.equal([{ level: 'warn', msg: 'enrichment failed', fields: { error: 'e0' } }]);
    clock.advance(1);
    rl.warn('enrichment failed', { error: 'e6' });
    expect(lines[1]).to.deep.equal({ level: 'warn', msg: 'enrichment failed', fields: { error: 'e6', suppressed: 5 } });
    // A quiet second later: a line again, with nothing left out.
    clock.advance(1000);
    rl.warn('enrichment failed', { error: 'e7' });
    expect(lines[2].fields).to.deep.equal({ error: 'e7' });
  });

  it('keeps causes apart, and flush tells what each left out since its last line', () => {
    const { log, lines } = recorder();
    const clock = new FakeClock();
    const rl = new RateLimitedLog(log, clock);
    rl.error('write failed');
    rl.warn('cache failed');
    rl.error('write failed');
    rl.error('write failed');
    rl.warn('other');
    expect(lines.map((l) => l.msg)).to.deep.equal(['write failed', 'cache failed', 'other']);
    rl.flush();
    expect(lines.slice(3)).to.deep.equal([{ level: 'error', msg: 'write failed', fields: { suppressed: 2 } }]);
    rl.flush();
    expect(lines).to.have.length(4);
  });
});
