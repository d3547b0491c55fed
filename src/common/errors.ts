// The base of the daemon's own errors: a stable `code` to branch on (never
// the message text) and an optional cause. gRPC statuses are chosen only at
// the API boundary (src/api/errors.ts), from the code.
export class FanotifydError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
