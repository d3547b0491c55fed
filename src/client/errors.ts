// Errors the client raises before any call is made: what the caller gave
// cannot be used. A failed call is a grpc-js ServiceError instead, whose
// status code says what the daemon (or the transport) reported.
import { FanotifydError } from '../common/errors';

export class ClientConfigError extends FanotifydError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIENT_CONFIG', message, options);
  }
}
