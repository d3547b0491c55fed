// A policy engine's loop, for engine authors: a resumable watch (named,
// re-attached after a lost stream) whose every event waiting for a verdict
// is put to `decide`, the answers of a batch going back in one
// VerdictBatch on the stream the batch came on, before anything else is
// done with it (the openers wait). Events the daemon moves here from
// another engine's ended stream, or sends again after a re-attach, are
// answered like any other. Several engines started with the same
// Subscribe.name share the watch: the first opens it, the others join it
// (ALREADY_EXISTS is answered with Attach), and each event goes to one.
import type { Decision } from '../api/gen/fanotify/v1/Decision';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { Verdict } from '../api/gen/fanotify/v1/Verdict';
import type { FanotifyClient } from './fanotify-client';
import type { ResumableHandlers, ResumableWatch, ResumeOptions } from './resumable-watch';

/** An answer: a decision, or a Verdict's fields but its id (cache, errno, ...). */
export type Answer = Decision | Omit<Verdict, 'id'>;

export type Decide = (ev: Event__Output) => Answer;

/** `handlers.events` sees each batch after its verdicts went. */
export function runPolicyEngine(client: FanotifyClient, subscribe: Subscribe, decide: Decide, handlers: ResumableHandlers = {}, options: ResumeOptions = {}): ResumableWatch {
  return client.resumableWatch(
    subscribe,
    {
      ...handlers,
      events: (events, response, stream, fresh) => {
        const verdicts: Verdict[] = [];
        for (const ev of events) {
          if (!ev.needs_verdict) continue;
          const a = decide(ev);
          verdicts.push(typeof a === 'object' ? { ...a, id: ev.id } : { id: ev.id, decision: a });
        }
        stream.sendVerdicts(verdicts);
        handlers.events?.(events, response, stream, fresh);
      },
    },
    options,
  );
}
