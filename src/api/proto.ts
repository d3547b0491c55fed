// The one place the API's .proto is loaded. Daemon, CLI and tests all take
// their service definitions from here so the loader options cannot drift.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Root of the proto tree in the package (dist/src/service -> repo root). */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');
export const FANOTIFY_PROTO = 'fanotify/v1/fanotify.proto';
/** FileDescriptorSet written by `npm run build` (buf build), served by reflection. */
export const DESCRIPTOR_SET = path.resolve(__dirname, '..', '..', 'fanotify.binpb');

export const LOADER_OPTIONS: protoLoader.Options = {
  // Enums as their names and 64-bit integers as decimal strings: the shapes
  // grpcurl's JSON uses, and no precision loss for ids and masks.
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export function loadFanotifyPackage(): grpc.GrpcObject {
  const def = protoLoader.loadSync(FANOTIFY_PROTO, LOADER_OPTIONS);
  return grpc.loadPackageDefinition(def);
}

export function fanotifyService(): grpc.ServiceDefinition {
  const pkg = loadFanotifyPackage() as any;
  return pkg.fanotify.v1.Fanotify.service as grpc.ServiceDefinition;
}

/** A client constructor for fanotify.v1.Fanotify (used by the CLI and tests). */
export function fanotifyClientConstructor(): grpc.ServiceClientConstructor {
  const pkg = loadFanotifyPackage() as any;
  return pkg.fanotify.v1.Fanotify as grpc.ServiceClientConstructor;
}
