// Server reflection, checked the way grpcurl uses it: list the services,
// fetch the file defining a symbol with its dependencies, rebuild the types
// from those descriptors alone, and call a method through them.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import * as protobuf from 'protobufjs';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const descriptor = require('protobufjs/ext/descriptor');
import { bytesClient, startDaemon, type Daemon } from '../fixtures/harness';

/* eslint-disable @typescript-eslint/no-explicit-any */
const REQUEST = new protobuf.Type('ServerReflectionRequest')
  .add(new protobuf.Field('host', 1, 'string'))
  .add(new protobuf.Field('file_by_filename', 3, 'string'))
  .add(new protobuf.Field('file_containing_symbol', 4, 'string'))
  .add(new protobuf.Field('list_services', 7, 'string'));
const SERVICE = new protobuf.Type('ServiceResponse').add(new protobuf.Field('name', 1, 'string'));
const LIST = new protobuf.Type('ListServiceResponse').add(new protobuf.Field('service', 1, 'ServiceResponse', 'repeated'));
const FILES = new protobuf.Type('FileDescriptorResponse').add(new protobuf.Field('file_descriptor_proto', 1, 'bytes', 'repeated'));
const ERROR = new protobuf.Type('ErrorResponse').add(new protobuf.Field('error_code', 1, 'int32')).add(new protobuf.Field('error_message', 2, 'string'));
const RESPONSE = new protobuf.Type('ServerReflectionResponse')
  .add(new protobuf.Field('file_descriptor_response', 4, 'FileDescriptorResponse'))
  .add(new protobuf.Field('list_services_response', 6, 'ListServiceResponse'))
  .add(new protobuf.Field('error_response', 7, 'ErrorResponse'));
new protobuf.Root().add(REQUEST).add(SERVICE).add(LIST).add(FILES).add(ERROR).add(RESPONSE);

async function reflect(address: string, version: 'v1' | 'v1alpha', req: object): Promise<any> {
  const client = bytesClient(address, `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, true);
  try {
    return await new Promise((resolve, reject) => {
      const call = client.call();
      call.on('data', (b: Buffer) => {
        resolve(RESPONSE.toObject(RESPONSE.decode(b), { defaults: false }));
        call.end();
      });
      call.on('error', reject);
      call.write(Buffer.from(REQUEST.encode(REQUEST.fromObject(req)).finish()));
    });
  } finally {
    client.close();
  }
}

/**
 * Every full name a decoded FileDescriptorProto defines, enum values under
 * both scopes, as grpcurl's descriptor library indexes them.
 */
function symbolsOf(file: any): string[] {
  const out: string[] = [];
  const enumValues = (e: any, scope: string) => {
    out.push(scope + e.name);
    for (const v of e.value) out.push(scope + v.name, `${scope}${e.name}.${v.name}`);
  };
  const message = (m: any, scope: string) => {
    const full = scope + m.name;
    out.push(full);
    for (const f of [...m.field, ...m.oneofDecl, ...m.extension]) out.push(`${full}.${f.name}`);
    for (const n of m.nestedType) message(n, `${full}.`);
    for (const e of m.enumType) enumValues(e, `${full}.`);
  };
  const scope = file.package ? `${file.package}.` : '';
  for (const m of file.messageType) message(m, scope);
  for (const e of file.enumType) enumValues(e, scope);
  for (const x of file.extension) out.push(scope + x.name);
  for (const s of file.service) {
    out.push(scope + s.name);
    for (const m of s.method) out.push(`${scope}${s.name}.${m.name}`);
  }
  return out;
}

describe('e2e: server reflection', function () {
  this.timeout(30_000);
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    expect(await daemon.stop()).to.equal(0);
  });

  for (const version of ['v1', 'v1alpha'] as const) {
    it(`${version}: lists fanotify, health and reflection`, async () => {
      const r = await reflect(daemon.address, version, { list_services: '*' });
      const names = r.list_services_response.service.map((s: any) => s.name);
      expect(names).to.include.members(['fanotify.v1.Fanotify', 'grpc.health.v1.Health', `grpc.reflection.${version}.ServerReflection`]);
    });
  }

  it('describes fanotify.v1.Event with its Timestamp field, dependency included', async () => {
    const r = await reflect(daemon.address, 'v1', { file_containing_symbol: 'fanotify.v1.Event' });
    const files = r.file_descriptor_response.file_descriptor_proto.map((b: Uint8Array) => descriptor.FileDescriptorProto.decode(b));
    const main = files[0];
    expect(main.name).to.equal('fanotify/v1/fanotify.proto');
    expect(main.dependency).to.include('google/protobuf/timestamp.proto');
    expect(files.map((f: any) => f.name)).to.include('google/protobuf/timestamp.proto');
    const event = main.messageType.find((m: any) => m.name === 'Event');
    const time = event.field.find((f: any) => f.name === 'time');
    expect(time.typeName).to.equal('.google.protobuf.Timestamp');
    // A method name is a symbol too (grpcurl asks for it before a call).
    const byMethod = await reflect(daemon.address, 'v1', { file_containing_symbol: 'fanotify.v1.Fanotify.Watch' });
    expect(byMethod.file_descriptor_response.file_descriptor_proto.length).to.be.greaterThan(0);
  });

  // grpcurl's describe sends the name as typed and accepts the answer only
  // if the first file defines it, with enum values named both ways its
  // descriptor library knows (protoc's sibling scope and inside the enum).
  const SYMBOLS: Array<[string, string, string]> = [
    ['a field', 'fanotify.v1.Event.path_bytes', 'fanotify/v1/fanotify.proto'],
    ['a oneof', 'fanotify.v1.WatchRequest.request', 'fanotify/v1/fanotify.proto'],
    ['an enum value, sibling scope', 'fanotify.v1.EVENT_TYPE_OPEN', 'fanotify/v1/fanotify.proto'],
    ['an enum value, inside its enum', 'fanotify.v1.EventType.EVENT_TYPE_OPEN', 'fanotify/v1/fanotify.proto'],
    ['a nested enum', 'grpc.health.v1.HealthCheckResponse.ServingStatus', 'health/v1/health.proto'],
    ['a nested enum value, sibling scope', 'grpc.health.v1.HealthCheckResponse.SERVING', 'health/v1/health.proto'],
    ['a nested enum value, inside its enum', 'grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING', 'health/v1/health.proto'],
    ['a field of a dependency', 'google.protobuf.Timestamp.seconds', 'google/protobuf/timestamp.proto'],
  ];
  for (const [kind, symbol, file] of SYMBOLS) {
    it(`finds the file defining ${kind}: ${symbol}`, async () => {
      const r = await reflect(daemon.address, 'v1', { file_containing_symbol: symbol });
      expect(r.error_response, `error for ${symbol}`).to.equal(undefined);
      const main = descriptor.FileDescriptorProto.decode(r.file_descriptor_response.file_descriptor_proto[0]);
      expect(main.name).to.equal(file);
      expect(symbolsOf(main)).to.include(symbol);
    });
  }

  it('every symbol the descriptors define resolves to the file defining it', async () => {
    const r = await reflect(daemon.address, 'v1', { file_containing_symbol: 'fanotify.v1.Fanotify' });
    const main = descriptor.FileDescriptorProto.decode(r.file_descriptor_response.file_descriptor_proto[0]);
    const all = symbolsOf(main);
    expect(all.length).to.be.greaterThan(100);
    const missing: string[] = [];
    for (const symbol of all) {
      const s = await reflect(daemon.address, 'v1alpha', { file_containing_symbol: symbol });
      if (s.error_response) missing.push(symbol);
    }
    expect(missing).to.deep.equal([]);
  });

  it('answers NOT_FOUND for an unknown symbol and file', async () => {
    const r = await reflect(daemon.address, 'v1', { file_containing_symbol: 'no.such.Thing' });
    expect(r.error_response.error_code).to.equal(grpc.status.NOT_FOUND);
    const f = await reflect(daemon.address, 'v1alpha', { file_by_filename: 'nope.proto' });
    expect(f.error_response.error_code).to.equal(grpc.status.NOT_FOUND);
  });

  it('calls grpc.health.v1.Health/Check using only descriptors from reflection', async () => {
    const r = await reflect(daemon.address, 'v1', { file_containing_symbol: 'grpc.health.v1.Health' });
    const set = descriptor.FileDescriptorSet.fromObject({
      file: r.file_descriptor_response.file_descriptor_proto.map((b: Uint8Array) => descriptor.FileDescriptorProto.decode(b)),
    });
    const root = (protobuf.Root as any).fromDescriptor(set) as protobuf.Root;
    const Req = root.lookupType('grpc.health.v1.HealthCheckRequest');
    const Res = root.lookupType('grpc.health.v1.HealthCheckResponse');
    const client = bytesClient(daemon.address, '/grpc.health.v1.Health/Check', false);
    try {
      const out: Buffer = await new Promise((resolve, reject) =>
        client.call(Buffer.from(Req.encode(Req.fromObject({ service: 'fanotify.v1.Fanotify' })).finish()), (e: Error | null, b: Buffer) =>
          e ? reject(e) : resolve(b),
        ),
      );
      expect(Res.toObject(Res.decode(out), { enums: String }).status).to.equal('SERVING');
    } finally {
      client.close();
    }
  });
});
