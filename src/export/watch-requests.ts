// The requests the exporter sends the daemon, encoded by @bufbuild/protobuf
// from the descriptor set: the Subscribe comes from a JSON file, and its
// parser refuses an unknown key or enum name with the key's name, where
// proto-loader's would drop it silently and watch something else.
import * as fs from 'node:fs';
import { create, fromJson, toBinary, type JsonValue } from '@bufbuild/protobuf';
import type { CanonicalJson } from '../client';

export class SubscribeFileError extends Error {}

export interface WatchRequests {
  /** WatchRequest{subscribe} for the named, lingering watch. */
  subscribe: Buffer;
  attach(afterSequence: bigint): Buffer;
}

const NOTIFICATION_CLASSES = new Set([0, 1]); // GROUP_CLASS_UNSPECIFIED (NOTIF), GROUP_CLASS_NOTIF

/** From the --subscribe file: a fanotify.v1.Subscribe in protobuf JSON (field names as in the .proto or lowerCamelCase). */
export function watchRequests(json: CanonicalJson, file: string, name: string, lingerMs: number): WatchRequests {
  let doc: JsonValue;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8')) as JsonValue;
  } catch (err) {
    throw new SubscribeFileError(`--subscribe ${file}: ${(err as Error).message}`);
  }
  const schema = json.schema('fanotify.v1.Subscribe');
  const requestSchema = json.schema('fanotify.v1.WatchRequest');
  let subscribe;
  try {
    subscribe = fromJson(schema, doc);
  } catch (err) {
    throw new SubscribeFileError(`--subscribe ${file}: ${(err as Error).message}`);
  }
  const fields = subscribe as unknown as { groupClass: number; marks: unknown[]; name: string; lingerMs: number };
  if (!NOTIFICATION_CLASSES.has(fields.groupClass)) {
    throw new SubscribeFileError(`--subscribe ${file}: group_class must be GROUP_CLASS_NOTIF: the exporter answers no permission events`);
  }
  if (fields.marks.length === 0) throw new SubscribeFileError(`--subscribe ${file}: marks: needs at least one mark`);
  if (fields.name && fields.name !== name) throw new SubscribeFileError(`--subscribe ${file}: name ${JSON.stringify(fields.name)} differs from --watch ${JSON.stringify(name)}; leave it out`);
  fields.name = name;
  fields.lingerMs = lingerMs;
  const encode = (request: { case: string; value: unknown }) => Buffer.from(toBinary(requestSchema, create(requestSchema, { request } as never)));
  return {
    subscribe: encode({ case: 'subscribe', value: subscribe }),
    attach: (afterSequence) => encode({ case: 'attach', value: { name, afterSequence } }),
  };
}
