// fanctl --json: protobuf's canonical JSON of what the daemon sent, from the
// bytes of a WatchResponse. No daemon: the bytes are made by the same
// serializer the daemon's service definition uses.
import { expect } from 'chai';
import { fanotifyClientConstructor } from '../../src/api/proto';
import { EventOutput } from '../../src/cli/event-output';
import { CanonicalJson } from '../../src/client';

function watchResponseBytes(response: object): Buffer {
  return fanotifyClientConstructor().service.Watch.responseSerialize(response);
}

const event = {
  id: '18446744073709551615',
  types: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_NOWRITE'],
  mask: '48',
  path: '/d/x.key',
  path_bytes: Buffer.from('/d/x\xffkey', 'latin1'),
  needs_verdict: true,
  process: { pid: 42, comm: 'cat', cmdline: ['cat', '/d/x.key'] },
  time: { seconds: '1796568968', nanos: 894000000 },
};

describe('unit: fanctl JSON', () => {
  const json = CanonicalJson.load();

  it('prints an Event with lowerCamelCase names, enum names, int64 strings, base64 bytes and an RFC 3339 time', () => {
    const [ev] = json.events(watchResponseBytes({ events: { events: [event] } }));
    expect(ev).to.deep.equal({
      id: '18446744073709551615',
      types: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_NOWRITE'],
      mask: '48',
      path: '/d/x.key',
      pathBytes: Buffer.from('/d/x\xffkey', 'latin1').toString('base64'),
      needsVerdict: true,
      process: { pid: 42, comm: 'cat', cmdline: ['cat', '/d/x.key'] },
      time: '2026-12-06T14:56:08.894Z',
    });
  });

  it('finds no events in other responses', () => {
    expect(json.events(watchResponseBytes({ subscribed: { watch_id: 'w1' } }))).to.deep.equal([]);
    expect(json.message('fanotify.v1.WatchResponse', watchResponseBytes({ overflow: { source: 'OVERFLOW_SOURCE_CLIENT', dropped: '3', total: '7' } }))).to.deep.equal({
      overflow: { source: 'OVERFLOW_SOURCE_CLIENT', dropped: '3', total: '7' },
    });
  });

  it('prints the chosen events of a batch, wrapped with their target when there are several', () => {
    const bytes = watchResponseBytes({ events: { events: [event, { ...event, id: '2', path: '/d/y' }] } });
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), note: () => undefined };
    new EventOutput(io, json, false).events('unix:/a', [], bytes, [1]);
    new EventOutput(io, json, true).events('unix:/a', [], bytes, [0]);
    expect(JSON.parse(lines[0])).to.include({ id: '2', path: '/d/y' });
    expect(JSON.parse(lines[1])).to.have.keys('target', 'event');
    expect(JSON.parse(lines[1])).to.deep.include({ target: 'unix:/a' });
    expect(JSON.parse(lines[1]).event.id).to.equal('18446744073709551615');
  });
});
