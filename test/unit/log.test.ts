import { expect } from 'chai';
import { createLogger, type Level } from '../../src/common/log';

/** A logger at level whose lines land in the returned array, one string each. */
function capture(level: Level, base: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const log = createLogger(level, base, { write: (s: string) => void lines.push(s) });
  return { log, lines };
}

describe('unit: log', () => {
  it('writes one JSON object per line with a level label, an ISO time, the base and the fields', () => {
    const { log, lines } = capture('info', { service: 'fanotifyd' });
    log.info('serving', { listen: ['unix:/x'] });
    expect(lines).to.have.length(1);
    expect(lines[0].endsWith('\n')).to.equal(true);
    expect(lines[0].indexOf('\n')).to.equal(lines[0].length - 1);
    const j = JSON.parse(lines[0]);
    expect(j).to.deep.equal({ level: 'info', time: j.time, service: 'fanotifyd', listen: ['unix:/x'], msg: 'serving' });
    expect(new Date(j.time).toISOString()).to.equal(j.time);
    // What the test harness and operators grep for.
    expect(lines[0]).to.include('"msg":"serving"').and.include('"level":"info"');
  });

  it('drops lines below the level', () => {
    const { log, lines } = capture('warn');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(lines.map((l) => [JSON.parse(l).level, JSON.parse(l).msg])).to.deep.equal([
      ['warn', 'w'],
      ['error', 'e'],
    ]);
  });

  it('serializes errors with name, message and code', () => {
    const { log, lines } = capture('info');
    const err = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    log.error('audit trail unwritable', { error: err, file: '/x' });
    log.error('plain', { error: new TypeError('bad') });
    expect(JSON.parse(lines[0]).error).to.deep.equal({ name: 'Error', message: 'no such file', code: 'ENOENT' });
    expect(JSON.parse(lines[1]).error).to.deep.equal({ name: 'TypeError', message: 'bad' });
  });

  it('child loggers add their fields; messages are not format strings', () => {
    const { log, lines } = capture('debug', { service: 'fanotifyd' });
    log.child({ watch: 'w1' }).debug('100%s done');
    const j = JSON.parse(lines[0]);
    expect(j).to.include({ level: 'debug', service: 'fanotifyd', watch: 'w1', msg: '100%s done' });
  });
});
