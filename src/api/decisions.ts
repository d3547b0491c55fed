// What a permission decision may say, for a client's Verdict and for a
// Rule the daemon applies alike: the same kernel takes both answers.
import { constants as osConstants } from 'node:os';
import type { GroupClass } from '../kernel/group';
import type { Decision } from '../watch/types';

export const DECISIONS: Readonly<Record<string, Decision>> = { DECISION_ALLOW: 'allow', DECISION_DENY: 'deny' };

/** The errnos the kernel accepts in FAN_DENY_ERRNO (measured on 6.18; docs/architecture.md). */
export const DENY_ERRNOS: ReadonlySet<string> = new Set(['EPERM', 'EIO', 'EBUSY', 'ETXTBSY', 'EAGAIN', 'ENOSPC', 'EDQUOT']);
const ERRNO_NAME = new Map(Object.entries(osConstants.errno).map(([n, v]) => [v as number, n]));

/**
 * What is wrong with a decision's cache and errno for a watch of this
 * class, as a phrase starting with the field's name ("errno applies to
 * DECISION_DENY only"), or undefined when the kernel would take it.
 */
export function decisionOptionsProblem(decision: Decision, cache: boolean, errno: number, groupClass: GroupClass): string | undefined {
  if (cache && decision !== 'allow') return 'cache applies to DECISION_ALLOW only: the kernel allows what it ignores';
  if (errno === 0) return undefined;
  if (decision !== 'deny') return 'errno applies to DECISION_DENY only';
  if (groupClass !== 'pre_content') return 'errno needs a GROUP_CLASS_PRE_CONTENT watch; the kernel refuses it for other classes';
  const name = ERRNO_NAME.get(errno);
  if (name && DENY_ERRNOS.has(name)) return undefined;
  const accepted = [...DENY_ERRNOS].map((n) => `${n}=${osConstants.errno[n as keyof typeof osConstants.errno]}`).join(', ');
  return `errno ${errno}${name ? ` (${name})` : ''} is not one the kernel accepts; use one of ${accepted}`;
}
