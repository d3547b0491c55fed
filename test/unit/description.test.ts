// An event's path as a filter reads it (straight from the directory handle
// and the name, with no event object) is the text of the path a client is
// sent (joinEntry's bytes), for every shape of name the kernel reports.
import { expect } from 'chai';
import { silentLogger } from '../../src/common/log';
import { RateLimitedLog } from '../../src/common/rate-limited-log';
import type { RawEvent } from '../../src/kernel/decoder';
import type { HandleResolver } from '../../src/host/handle-resolver';
import { ProcessCache } from '../../src/host/process-cache';
import { EventDescription } from '../../src/watch/description';
import * as K from '../../src/kernel/constants';

function describe1(dir: Buffer | undefined, name: Buffer | undefined) {
  let lookups = 0;
  const resolver = { resolve: () => (lookups++, dir) } as unknown as HandleResolver;
  const d = new EventDescription({ procs: new ProcessCache(), resolver, reportTid: false, details: 'pid', log: new RateLimitedLog(silentLogger) });
  const raw: RawEvent = { offset: 0, mask: K.FAN_OPEN, fd: K.FAN_NOFD, pid: 1, unknownInfo: 0, dfid: { fsid: Buffer.alloc(8), handleType: 1, fileHandle: Buffer.alloc(12), name } };
  d.start(raw, 0);
  return { d, lookups: () => lookups };
}

describe('unit: event description (the path a filter reads)', () => {
  const cases: Array<[string, Buffer | undefined, Buffer | undefined]> = [
    ['a file in a directory', Buffer.from('/srv/app'), Buffer.from('config.yaml')],
    ['a file in /', Buffer.from('/'), Buffer.from('etc')],
    ['the directory itself (".")', Buffer.from('/srv/app'), Buffer.from('.')],
    ['the directory itself (no name)', Buffer.from('/srv/app'), undefined],
    ['names that are not UTF-8', Buffer.from([0x2f, 0x64, 0xc3]), Buffer.from([0xa9, 0xff, 0x41])],
    ['a directory that cannot be resolved', undefined, Buffer.from('x')],
  ];
  for (const [what, dir, name] of cases) {
    it(`reads the same path text as the client is sent: ${what}`, () => {
      const filter = describe1(dir, name);
      const whole = filter.d.pathWhole();
      const last = filter.d.pathName();
      const sent = describe1(dir, name);
      const path = sent.d.finish().path;
      expect(whole).to.equal(path?.toString('utf8') ?? '');
      const s = path?.toString('utf8') ?? '';
      expect(last).to.equal(s === '' ? '' : s.slice(s.lastIndexOf('/') + 1));
      // And the event a filter kept is sent that path, the directory looked up through the resolver's read cache.
      expect(filter.d.finish().path?.toString('utf8') ?? '').to.equal(whole);
    });
  }

  it('asks the name alone of the name, and the resolver once for the whole', () => {
    const { d, lookups } = describe1(Buffer.from('/srv'), Buffer.from('a.key'));
    expect(d.pathName()).to.equal('a.key');
    expect(d.pathWhole()).to.equal('/srv/a.key');
    expect(lookups()).to.equal(1);
  });
});
