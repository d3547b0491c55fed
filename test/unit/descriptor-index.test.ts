// The reflection index over the descriptor set `npm run build` writes: no
// daemon, no root. The e2e test checks the same names over the wire.
import * as fs from 'node:fs';
import { expect } from 'chai';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const descriptor = require('protobufjs/ext/descriptor');
import { DESCRIPTOR_SET } from '../../src/api/proto';
import { DescriptorIndex } from '../../src/api/reflection';

describe('unit: reflection descriptor index', () => {
  const index = new DescriptorIndex(fs.readFileSync(DESCRIPTOR_SET));
  const FANOTIFY = 'fanotify/v1/fanotify.proto';

  it('names every kind of symbol grpcurl describes', () => {
    const expected: Record<string, string> = {
      'fanotify.v1.Event': FANOTIFY,
      'fanotify.v1.Event.path_bytes': FANOTIFY,
      'fanotify.v1.WatchResponse.response': FANOTIFY,
      'fanotify.v1.EventType': FANOTIFY,
      'fanotify.v1.EVENT_TYPE_OPEN_PERM': FANOTIFY,
      'fanotify.v1.EventType.EVENT_TYPE_OPEN_PERM': FANOTIFY,
      'fanotify.v1.Fanotify': FANOTIFY,
      'fanotify.v1.Fanotify.GetInfo': FANOTIFY,
      'google.protobuf.Timestamp.nanos': 'google/protobuf/timestamp.proto',
      'grpc.health.v1.HealthCheckResponse.NOT_SERVING': 'health/v1/health.proto',
      'grpc.health.v1.HealthCheckResponse.ServingStatus.NOT_SERVING': 'health/v1/health.proto',
    };
    for (const [symbol, file] of Object.entries(expected)) expect(index.symbols.get(symbol), symbol).to.equal(file);
  });

  it('does not scope a top-level enum value inside a message', () => {
    expect(index.symbols.has('fanotify.v1.Event.EVENT_TYPE_OPEN')).to.equal(false);
    expect(index.symbols.has('fanotify.v1.Event.no_such_field')).to.equal(false);
  });

  it('lists a file first, then its dependencies', () => {
    const names = index.withDependencies(FANOTIFY).map((b) => descriptor.FileDescriptorProto.decode(b).name);
    expect(names[0]).to.equal(FANOTIFY);
    expect(names).to.include('google/protobuf/timestamp.proto');
  });
});
