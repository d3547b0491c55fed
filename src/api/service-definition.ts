// The service definition as the server registers it: proto-loader's, with a
// request decoder that never throws and a response encoder that passes
// pre-encoded event batches (wire.ts) through.
import * as grpc from '@grpc/grpc-js';
import { ApiError } from './errors';

const UNDECODABLE = Symbol('undecodable');

/** A request frame that did not decode, with the decoder's reason; the handler answers INVALID_ARGUMENT. */
export interface Undecodable {
  readonly [UNDECODABLE]: string;
}

/** A request as the handlers receive it: the generated __Output type, or a frame that did not decode. */
export type Incoming<T> = T | Undecodable;

/**
 * A response as the Watch handler writes it: a message built from the
 * generated type, or a WatchResponse the batch encoder already serialized.
 */
export type Outgoing<T> = T | Buffer;

export function isUndecodable(req: unknown): req is Undecodable {
  return typeof req === 'object' && req !== null && UNDECODABLE in req;
}

/** The INVALID_ARGUMENT for a frame that did not decode as `type`. */
export function undecodableError(req: Undecodable, type: string): ApiError {
  return new ApiError(grpc.status.INVALID_ARGUMENT, `the request is not a valid ${type}: ${req[UNDECODABLE]}`);
}

/**
 * grpc-js answers a frame its deserializer rejects with INTERNAL and no
 * reason, but a bad frame is the client's error, and the client should
 * learn what it is: the decoder returns an Undecodable instead of throwing.
 */
export function serviceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    out[name] = {
      ...m,
      // Event batches arrive already encoded (wire.ts).
      responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : m.responseSerialize(v)),
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return m.requestDeserialize(buf);
        } catch (err) {
          const undecodable: Undecodable = { [UNDECODABLE]: (err as Error).message };
          return undecodable;
        }
      },
    };
  }
  return out;
}
