// Protobuf's canonical JSON mapping (what grpcurl and every protobuf
// library print and parse: lowerCamelCase names, enum names, int64 as
// strings, base64 bytes, RFC 3339 times), by @bufbuild/protobuf from the
// descriptor set the build writes. The grpc-js client decodes with
// proto-loader, whose objects are snake_case with Buffers and {seconds,
// nanos}; so the bytes each message came in are decoded a second time here.
import * as fs from 'node:fs';
import { createFileRegistry, fromBinary, toJson, type DescMessage, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { DESCRIPTOR_SET } from '../api/proto';
import { ClientConfigError } from './errors';

export class CanonicalJson {
  private readonly watchResponse: DescMessage;
  private readonly event: DescMessage;

  private constructor(readonly registry: FileRegistry) {
    this.watchResponse = this.schema('fanotify.v1.WatchResponse');
    this.event = this.schema('fanotify.v1.Event');
  }

  /**
   * From a file of FileDescriptorSets. The build's file is two sets
   * concatenated (the API's, then health's): concatenated protobuf messages
   * parse as one whose repeated `file` holds both, so one parse reads it.
   */
  static load(file: string = DESCRIPTOR_SET): CanonicalJson {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new ClientConfigError(`cannot read the descriptor set ${file} (written by npm run build): ${(err as Error).message}`, { cause: err });
    }
    const set = fromBinary(FileDescriptorSetSchema, bytes);
    // Each set carries its imports, so a file both import would come twice; the registry takes each once.
    const seen = new Set<string>();
    set.file = set.file.filter((f) => !seen.has(f.name) && seen.add(f.name));
    return new CanonicalJson(createFileRegistry(set));
  }

  schema(typeName: string): DescMessage {
    const desc = this.registry.getMessage(typeName);
    if (!desc) throw new ClientConfigError(`the descriptor set has no message ${typeName}`);
    return desc;
  }

  /** One message of type typeName, from its wire bytes. */
  message(typeName: string, bytes: Uint8Array): JsonValue {
    const desc = this.schema(typeName);
    return toJson(desc, fromBinary(desc, bytes));
  }

  /** Each event of a WatchResponse's batch as a fanotify.v1.Event; none for other responses. */
  events(watchResponse: Uint8Array): JsonValue[] {
    const response = reflect(this.watchResponse, fromBinary(this.watchResponse, watchResponse));
    const batchField = this.watchResponse.field.events;
    if (!response.isSet(batchField)) return [];
    const batch = response.get(batchField) as ReflectMessage;
    const out: JsonValue[] = [];
    for (const ev of batch.get(batch.desc.field.events) as Iterable<ReflectMessage>) out.push(toJson(this.event, ev.message));
    return out;
  }
}
