// fanctl watch: notification events printed as they come.
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { WatchInvocation } from './command-line';
import type { EventOutput } from './event-output';
import type { EventsHandler } from './fleet-watch';
import { marksFor } from './marks';

export function watchSubscribe(inv: WatchInvocation): Subscribe {
  return { marks: marksFor(inv.paths, inv.scope, inv.events), name: inv.name, linger_ms: inv.lingerMs };
}

export function printEvents(output: EventOutput): EventsHandler {
  return (events, response, from, fresh) => output.events(from.target, events, response.bytes, fresh);
}
