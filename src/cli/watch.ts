// fanctl watch: notification events printed as they come.
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { WatchInvocation } from './command-line';
import type { EventOutput } from './event-output';
import type { EventsHandler } from './fleet-watch';

export function watchSubscribe(inv: WatchInvocation): Subscribe {
  return { marks: inv.paths.map((path) => ({ path, scope: inv.scope, events: inv.events, on_child: true })) };
}

export function printEvents(output: EventOutput): EventsHandler {
  return (events, response, from) => output.events(from.target, events, response.bytes);
}
