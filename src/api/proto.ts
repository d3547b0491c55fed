// The one place the API's .proto is loaded. Daemon, CLI and tests all take
// their service definitions from here so the loader options cannot drift.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/fanotify';
import type { FanotifyDefinition } from './gen/fanotify/v1/Fanotify';

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

export function loadFanotifyPackage(): ProtoGrpcType {
  const def = protoLoader.loadSync(FANOTIFY_PROTO, LOADER_OPTIONS);
  // The generated ProtoGrpcType describes what loadPackageDefinition builds
  // from this .proto with these options; grpc-js can only return it untyped.
  return grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
}

export function fanotifyService(): FanotifyDefinition {
  return loadFanotifyPackage().fanotify.v1.Fanotify.service;
}

/** A client constructor for fanotify.v1.Fanotify (used by the CLI and tests). */
export function fanotifyClientConstructor(): grpc.ServiceClientConstructor {
  return loadFanotifyPackage().fanotify.v1.Fanotify as unknown as grpc.ServiceClientConstructor;
}
