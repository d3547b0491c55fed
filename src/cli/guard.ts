// fanctl guard: a small but real policy engine. Every permission event is
// answered, DENY when its path matches the rules, ALLOW otherwise; the
// answers of a batch go back in one VerdictBatch before anything is printed,
// since the opener waits for them.
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { Verdict } from '../api/gen/fanotify/v1/Verdict';
import type { GuardInvocation } from './command-line';
import type { EventOutput } from './event-output';
import type { EventsHandler } from './fleet-watch';
import type { PathRules } from './path-rules';

/** Always states timeout_decision: whether a guard fails open or closed is never left to a default. */
export function guardSubscribe(inv: GuardInvocation): Subscribe {
  return {
    group_class: inv.groupClass,
    verdict_timeout_ms: inv.timeoutMs,
    timeout_decision: inv.onTimeout,
    marks: inv.paths.map((path) => ({ path, scope: inv.scope, events: inv.events, on_child: true })),
  };
}

export function answerEvents(rules: PathRules, output: EventOutput): EventsHandler {
  return (events, response, from) => {
    const verdicts: Verdict[] = [];
    const denied: number[] = [];
    events.forEach((ev, i) => {
      if (!ev.needs_verdict) return;
      const deny = rules.matches(ev.path);
      verdicts.push({ id: ev.id, decision: deny ? 'DECISION_DENY' : 'DECISION_ALLOW' });
      if (deny) denied.push(i);
    });
    from.stream.sendVerdicts(verdicts);
    output.events(from.target, events, response.bytes, denied, 'DENY ');
  };
}
