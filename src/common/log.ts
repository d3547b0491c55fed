// Structured logging with pino: one JSON object per line on stderr. Per-event
// facts go to counters, never to info-level lines.
import pino from 'pino';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * A logger writing to dest (default: fd 2). The line is
 * {"level":"info","time":"<ISO 8601>",...base,...fields,"msg":"..."}.
 */
export function createLogger(level: Level = 'info', base: Record<string, unknown> = {}, dest: pino.DestinationStream = stderr()): Logger {
  return wrap(
    pino(
      {
        level,
        // Only our fields: no pid and hostname (the supervisor knows both).
        base,
        timestamp: pino.stdTimeFunctions.isoTime,
        // "level":"info" rather than pino's 30: operators grep for the label.
        formatters: { level: (label) => ({ level: label }) },
        // Call sites pass errors as `error`; pino's own key is `err`.
        serializers: { error: serializeError, err: serializeError },
      },
      dest,
    ),
  );
}

/** Our call order (msg, fields) onto pino's (fields, msg). */
function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

function serializeError(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  return value;
}

/**
 * Synchronous writes to fd 2: a line is out before log() returns, so the
 * last lines before process.exit() (a failed start, "stopped") are never
 * lost, and no timer or flush is pending while the daemon idles. Logging is
 * never per event, so the blocking write costs nothing that matters.
 */
function stderr(): pino.DestinationStream {
  const dest = pino.destination({ dest: 2, sync: true });
  // A closed stderr (its reader gone) must not throw out of a log call in
  // the middle of answering the kernel: the line is dropped instead.
  dest.on('error', () => {});
  return dest;
}

const discard = () => {};

/** For tests and library use: writes nothing. */
export const silentLogger: Logger = { debug: discard, info: discard, warn: discard, error: discard, child: () => silentLogger };
