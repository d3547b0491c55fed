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

// Field numbers of descriptor.proto used below.
const FILE = { name: 1, package: 2, dependency: 3, message: 4, enum: 5, service: 6, extension: 7 };
const MESSAGE = { field: 2, nested: 3, enum: 4, extension: 6, oneof: 8 };
const ENUM = { value: 2 };
const SERVICE = { method: 2 };

/**
 * Index of a FileDescriptorSet: files by name, and the file defining each
 * symbol. A symbol is anything with a full name: message, field, oneof,
 * extension, enum, enum value, service, method; grpcurl's describe asks for
 * any of them with file_containing_symbol.
 */
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
      if (field === FILE.name) name = value.toString('utf8');
      else if (field === FILE.package) pkg = value.toString('utf8');
      else if (field === FILE.dependency) deps.push(value.toString('utf8'));
      else defs.push([field, value]);
    }
    // Keep the first: buf may emit a shared dependency once per input set.
    if (this.files.has(name)) return;
    this.files.set(name, { name, bytes, deps });
    const scope = pkg ? `${pkg}.` : '';
    for (const [field, value] of defs) {
      if (field === FILE.message) this.addMessage(value, scope, name);
      else if (field === FILE.enum) this.addEnum(value, scope, name);
      else if (field === FILE.service) this.addService(value, scope, name);
      else if (field === FILE.extension) this.symbols.set(scope + nameOf(value), name);
    }
  }

  private addMessage(msg: Buffer, scope: string, file: string): void {
    const full = scope + nameOf(msg);
    this.symbols.set(full, file);
    this.messages.add(full);
    for (const [field, value] of fields(msg)) {
      if (!Buffer.isBuffer(value)) continue;
      if (field === MESSAGE.nested) this.addMessage(value, `${full}.`, file);
      else if (field === MESSAGE.enum) this.addEnum(value, `${full}.`, file);
      else if (field === MESSAGE.field || field === MESSAGE.oneof || field === MESSAGE.extension) {
        this.symbols.set(`${full}.${nameOf(value)}`, file);
      }
    }
  }

  /**
   * Enum values are scoped as siblings of their enum (C++ rules, which
   * protoc and protobuf-go follow: fanotify.v1.EVENT_TYPE_OPEN), but
   * grpcurl's descriptor library also names them inside the enum
   * (fanotify.v1.EventType.EVENT_TYPE_OPEN) and asks for whichever the user
   * typed, so both resolve.
   */
  private addEnum(enm: Buffer, scope: string, file: string): void {
    const full = scope + nameOf(enm);
    this.symbols.set(full, file);
    for (const [field, value] of fields(enm)) {
      if (field !== ENUM.value || !Buffer.isBuffer(value)) continue;
      const name = nameOf(value);
      this.symbols.set(scope + name, file);
      this.symbols.set(`${full}.${name}`, file);
    }
  }

  private addService(svc: Buffer, scope: string, file: string): void {
    const full = scope + nameOf(svc);
    this.symbols.set(full, file);
    for (const [field, value] of fields(svc)) {
      if (field === SERVICE.method && Buffer.isBuffer(value)) this.symbols.set(`${full}.${nameOf(value)}`, file);
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

/** ServerReflectionRequest as proto-loader decodes it (keepCase, oneofs). */
interface ReflectionRequest {
  host?: string;
  message_request?: 'file_by_filename' | 'file_containing_symbol' | 'file_containing_extension' | 'all_extension_numbers_of_type' | 'list_services';
  file_by_filename?: string;
  file_containing_symbol?: string;
  file_containing_extension?: { containing_type?: string; extension_number?: number };
  all_extension_numbers_of_type?: string;
  list_services?: string;
}

/** ServerReflectionResponse, one of its message_response fields set. */
interface ReflectionResponse {
  valid_host: string;
  original_request: ReflectionRequest;
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  list_services_response?: { service: Array<{ name: string }> };
  error_response?: { error_code: number; error_message: string };
}

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
    const svc = def[`${pkg}.ServerReflection`] as grpc.ServiceDefinition;
    server.addService(svc, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<ReflectionRequest, ReflectionResponse>) => {
        call.on('data', (req: ReflectionRequest) => {
          if (!call.cancelled) call.write(answer(index, names, req));
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
  }
  return index;
}

function answer(index: DescriptorIndex, names: string[], req: ReflectionRequest): ReflectionResponse {
  const base = { valid_host: req.host ?? '', original_request: req };
  const notFound = (what: string): ReflectionResponse => ({
    ...base,
    error_response: { error_code: grpc.status.NOT_FOUND, error_message: `${what} not found` },
  });
  const files = (file: string | undefined, what: string): ReflectionResponse =>
    file !== undefined && index.files.has(file)
      ? { ...base, file_descriptor_response: { file_descriptor_proto: index.withDependencies(file) } }
      : notFound(what);
  switch (req.message_request) {
    case 'list_services':
      return { ...base, list_services_response: { service: names.map((name) => ({ name })) } };
    case 'file_by_filename':
      return files(req.file_by_filename, `file ${req.file_by_filename}`);
    case 'file_containing_symbol':
      return files(index.symbols.get(req.file_containing_symbol ?? ''), `symbol ${req.file_containing_symbol}`);
    case 'all_extension_numbers_of_type': {
      const type = req.all_extension_numbers_of_type ?? '';
      return index.messages.has(type)
        ? { ...base, all_extension_numbers_response: { base_type_name: type, extension_number: [] } }
        : notFound(`type ${type}`);
    }
    case 'file_containing_extension': {
      const ext = req.file_containing_extension;
      return notFound(`extension ${ext?.extension_number} of ${ext?.containing_type}`);
    }
    default:
      return { ...base, error_response: { error_code: grpc.status.INVALID_ARGUMENT, error_message: 'no request set in ServerReflectionRequest' } };
  }
}

/** grpc.health.v1.Health, SERVING for the whole server and for fanotify.v1.Fanotify. */
export function addHealth(server: grpc.Server): HealthImplementation {
  const health = new HealthImplementation({ '': 'SERVING', 'fanotify.v1.Fanotify': 'SERVING' });
  health.addToServer(server);
  return health;
}
