#!/usr/bin/env node
// fanctl: a client for people. `info` prints what the daemon's kernel
// supports, `watch` prints events fatrace-style (or JSON lines), `guard` is
// a small but real policy engine that denies paths matching globs.
import { CanonicalJson, ClientConfigError, FanotifyClient } from '../client';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import { EXIT_USAGE, parseCommandLine, type GuardInvocation, type Invocation, type WatchInvocation } from './command-line';
import { EventOutput } from './event-output';
import { FleetWatch, type EventsHandler } from './fleet-watch';
import { answerEvents, guardSubscribe } from './guard';
import { runHealth, runInfo } from './info';
import { stdio, type Io } from './io';
import { PathRules } from './path-rules';
import { printEvents, watchSubscribe } from './watch';
import { isWatchFrom, runWatchFrom } from './watch-from';

/** Watch until every stream ends or SIGINT/SIGTERM, which cancels them. */
async function runWatch(clients: FanotifyClient[], inv: WatchInvocation | GuardInvocation, json: CanonicalJson | undefined, io: Io): Promise<number> {
  const output = new EventOutput(io, json, clients.length > 1);
  let subscribe: Subscribe;
  let handler: EventsHandler;
  if (inv.command === 'watch') {
    subscribe = watchSubscribe(inv);
    handler = printEvents(output);
  } else {
    subscribe = guardSubscribe(inv);
    handler = answerEvents(new PathRules(inv.deny), output);
  }
  const fleet = new FleetWatch(clients, subscribe, output, io, handler, inv.lingerDefault);
  const stop = () => fleet.stop();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    return await fleet.done;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function run(inv: Invocation, clients: FanotifyClient[], json: CanonicalJson | undefined, io: Io): Promise<number> {
  switch (inv.command) {
    case 'info':
      return runInfo(clients, json, io);
    case 'health':
      return runHealth(clients, io);
    default:
      return runWatch(clients, inv, json, io);
  }
}

/** fanctl with `argv` (no node and script names); resolves to the exit status. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  // `watch --from nats://...` reads the fleet's stream, not a daemon: a parser of its own (watch-from.ts).
  if (isWatchFrom(argv)) return runWatchFrom(argv, io);
  const parsed = parseCommandLine(argv, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
  if ('exitCode' in parsed) return parsed.exitCode;
  const inv = parsed.invocation;
  const clients: FanotifyClient[] = [];
  try {
    // Everything is read before the first Subscribe: a guard on a directory
    // holding fanctl's own files would otherwise wait on itself to load them.
    const json = 'json' in inv && inv.json ? CanonicalJson.load() : undefined;
    for (const t of inv.connection.targets) clients.push(new FanotifyClient(t, { tls: inv.connection.tls }));
    return await run(inv, clients, json, io);
  } catch (err) {
    if (!(err instanceof ClientConfigError)) throw err;
    io.note(err.message);
    return EXIT_USAGE;
  } finally {
    for (const c of clients) c.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
