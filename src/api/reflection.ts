// gRPC server reflection (v1 and v1alpha) served from the FileDescriptorSet
// that `npm run build` writes with buf, a real protobuf compiler. Each
// FileDescriptorProto goes out exactly as the compiler wrote it: the
// descriptors protobufjs regenerates drop dependency lists and use relative
// type names, which breaks grpcurl's describe and calls for any message
// using google.protobuf.Timestamp.
//
// Everything is read once, at start-up: a lazy file read later could wait
// on one of the daemon's own permission marks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation } from 'grpc-health-check';
import { DESCRIPTOR_SET, LOADER_OPTIONS, PROTO_DIR } from './proto';

interface FileEntry {
  name: string;
  bytes: Buffer;
  deps: string[];
}

/** Index of a FileDescriptorSet: files by name, and the file defining each symbol. */
export class DescriptorIndex {
  readonly files = new Map<string, FileEntry>();
  readonly symbols = new Map<string, string>();
  readonly messages = new Set<string>();

  constructor(set: Buffer) {
    for (const [field, value] of fields(set)) {
      if (field === 1 && Buffer.isBuffer(value)) this.addFile(value);
    }
  }

  private addFile(bytes: Buffer): void {
    let name = '';
    let pkg = '';
    const deps: string[] = [];
    const defs: Array<[number, Buffer]> = [];
    for (const [field, value] of fields(bytes)) {
      if (!Buffer.isBuffer(value)) continue;
      if (field === 1) name = value.toString('utf8');
      else if (field === 2) pkg = value.toString('utf8');
      else if (field === 3) deps.push(value.toString('utf8'));
      else if (field === 4 || field === 5 || field === 6) defs.push([field, value]);
    }
    // Keep the first: buf may emit a shared dependency once per input set.
    if (this.files.has(name)) return;
    this.files.set(name, { name, bytes, deps });
    const prefix = pkg ? `${pkg}.` : '';
    for (const [field, value] of defs) {
      if (field === 4) this.addMessage(value, prefix, name);
      else if (field === 5) this.symbols.set(prefix + nameOf(value), name);
      else this.addService(value, prefix, name);
    }
  }

  private addMessage(msg: Buffer, prefix: string, file: string): void {
    const full = prefix + nameOf(msg);
    this.symbols.set(full, file);
    this.messages.add(full);
    for (const [field, value] of fields(msg)) {
      if (!Buffer.isBuffer(value)) continue;
      if (field === 3) this.addMessage(value, `${full}.`, file);
      else if (field === 4) this.symbols.set(`${full}.${nameOf(value)}`, file);
    }
  }

  private addService(svc: Buffer, prefix: string, file: string): void {
    const full = prefix + nameOf(svc);
    this.symbols.set(full, file);
    for (const [field, value] of fields(svc)) {
      if (field === 2 && Buffer.isBuffer(value)) this.symbols.set(`${full}.${nameOf(value)}`, file);
    }
  }

  /** The file and everything it imports, the file first. */
  withDependencies(file: string): Buffer[] {
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const visit = (n: string) => {
      if (seen.has(n)) return;
      seen.add(n);
      const f = this.files.get(n);
      if (!f) return;
      out.push(f.bytes);
      for (const d of f.deps) visit(d);
    };
    visit(file);
    return out;
  }
}

function nameOf(buf: Buffer): string {
  for (const [field, value] of fields(buf)) if (field === 1 && Buffer.isBuffer(value)) return value.toString('utf8');
  return '';
}

/**
 * The top-level fields of a protobuf message: [field number, value], where
 * length-delimited values are Buffers and the others are skipped numbers.
 * Throws on malformed input (only compiler output is ever fed here).
 */
function* fields(buf: Buffer): Generator<[number, Buffer | number]> {
  let p = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= buf.length) throw new Error('descriptor set: truncated varint');
      const b = buf[p++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
      if (shift > 63) throw new Error('descriptor set: varint too long');
    }
  };
  while (p < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) yield [field, varint()];
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const len = varint();
      if (p + len > buf.length) throw new Error('descriptor set: length past end');
      yield [field, buf.subarray(p, p + len)];
      p += len;
    } else throw new Error(`descriptor set: unsupported wire type ${wire}`);
  }
}

const REFLECTION_PACKAGES = ['grpc.reflection.v1alpha', 'grpc.reflection.v1'];

/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * Serve reflection for the services registered on server. Call after the
 * last addService, so the list of services is complete.
 */
export function addReflection(server: grpc.Server, serviceNames: string[], descriptorSet = DESCRIPTOR_SET): DescriptorIndex {
  const index = new DescriptorIndex(fs.readFileSync(descriptorSet));
  const names = [...serviceNames, ...REFLECTION_PACKAGES.map((p) => `${p}.ServerReflection`)];
  for (const pkg of REFLECTION_PACKAGES) {
    const file = path.join('grpc', 'reflection', pkg.split('.').pop()!, 'reflection.proto');
    const def = protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
    const svc = (grpc.loadPackageDefinition(def) as any).grpc.reflection[pkg.split('.').pop()!].ServerReflection.service;
    server.addService(svc, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<any, any>) => {
        call.on('data', (req: any) => {
          if (!call.cancelled) call.write(answer(index, names, req));
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
  }
  return index;
}

function answer(index: DescriptorIndex, names: string[], req: any): any {
  const base = { valid_host: req?.host ?? '', original_request: req };
  const notFound = (what: string) => ({ ...base, error_response: { error_code: grpc.status.NOT_FOUND, error_message: `${what} not found` } });
  const files = (file: string | undefined, what: string) =>
    file && index.files.has(file) ? { ...base, file_descriptor_response: { file_descriptor_proto: index.withDependencies(file) } } : notFound(what);
  switch (req?.message_request) {
    case 'list_services':
      return { ...base, list_services_response: { service: names.map((name) => ({ name })) } };
    case 'file_by_filename':
      return files(req.file_by_filename, `file ${req.file_by_filename}`);
    case 'file_containing_symbol':
      return files(index.symbols.get(req.file_containing_symbol), `symbol ${req.file_containing_symbol}`);
    case 'all_extension_numbers_of_type':
      return index.messages.has(req.all_extension_numbers_of_type)
        ? { ...base, all_extension_numbers_response: { base_type_name: req.all_extension_numbers_of_type, extension_number: [] } }
        : notFound(`type ${req.all_extension_numbers_of_type}`);
    case 'file_containing_extension':
      return notFound(`extension ${req.file_containing_extension?.extension_number} of ${req.file_containing_extension?.containing_type}`);
    default:
      return { ...base, error_response: { error_code: grpc.status.INVALID_ARGUMENT, error_message: 'no request set in ServerReflectionRequest' } };
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** grpc.health.v1.Health, SERVING for the whole server and for fanotify.v1.Fanotify. */
export function addHealth(server: grpc.Server): HealthImplementation {
  const health = new HealthImplementation({ '': 'SERVING', 'fanotify.v1.Fanotify': 'SERVING' });
  health.addToServer(server);
  return health;
}
