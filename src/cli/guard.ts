// fanctl guard: a small but real policy engine. By default the globs go to
// the daemon as rules, which decide every open without a round trip:
// DENY and report for a matching path, ALLOW with the kernel's cache for
// the rest. With --ask, fanctl answers each permission event itself, DENY
// when its path matches, ALLOW otherwise; the answers of a batch go back in
// one VerdictBatch before anything is printed, since the opener waits for
// them.
import type { Rule } from '../api/gen/fanotify/v1/Rule';
import type { Subscribe } from '../api/gen/fanotify/v1/Subscribe';
import type { Verdict } from '../api/gen/fanotify/v1/Verdict';
import type { GuardInvocation } from './command-line';
import type { EventOutput } from './event-output';
import type { EventsHandler } from './fleet-watch';
import { marksFor } from './marks';
import type { PathRules } from './path-rules';

/**
 * The daemon's rules for deny globs. The daemon's first matching rule
 * decides, while the last matching glob decides in .gitignore's reading
 * (a later "!x" takes x back out), so the globs go in reverse order. The
 * final rule allows everything else, cached: the kernel stops asking about
 * a file until it is modified, so an allowed open costs no event at all.
 */
export function denyRules(patterns: readonly string[]): Rule[] {
  const rules: Rule[] = [...patterns].reverse().map((p) =>
    p.startsWith('!')
      ? { match: { paths: [p.slice(1)] }, decision: 'DECISION_ALLOW', cache: true }
      : { match: { paths: [p] }, decision: 'DECISION_DENY', report: true },
  );
  rules.push({ match: {}, decision: 'DECISION_ALLOW', cache: true });
  return rules;
}

/** Always states timeout_decision: whether a guard fails open or closed is never left to a default. */
export function guardSubscribe(inv: GuardInvocation): Subscribe {
  return {
    group_class: inv.groupClass,
    verdict_timeout_ms: inv.timeoutMs,
    timeout_decision: inv.onTimeout,
    marks: marksFor(inv.paths, inv.scope, inv.events),
    name: inv.name,
    linger_ms: inv.lingerMs,
    ...(inv.ask ? {} : { rules: denyRules(inv.deny) }),
  };
}

/**
 * Prints what was denied: events a rule denied (reported, nothing to
 * answer) and events that wait for a verdict, which fanctl decides. Those
 * come with --ask, and also from a daemon that predates rules (it ignores
 * them and sends every event), so the guard holds either way.
 */
export function answerEvents(rules: PathRules, output: EventOutput): EventsHandler {
  return (events, response, from, fresh) => {
    const verdicts: Verdict[] = [];
    const denied: number[] = [];
    const isFresh = fresh ? new Set(fresh) : undefined;
    events.forEach((ev, i) => {
      if (!ev.needs_verdict) {
        // A reported rule decision seen before a lost stream is not printed twice.
        if (ev.decision === 'DECISION_DENY' && (!isFresh || isFresh.has(i))) denied.push(i);
        return;
      }
      const deny = rules.matches(ev.path);
      verdicts.push({ id: ev.id, decision: deny ? 'DECISION_DENY' : 'DECISION_ALLOW' });
      if (deny) denied.push(i);
    });
    from.stream.sendVerdicts(verdicts);
    output.events(from.target, events, response.bytes, denied, 'DENY ');
  };
}
