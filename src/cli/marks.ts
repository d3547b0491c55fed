// The marks fanctl places for the paths it is given, in watch and guard.
import type { EventType__Output } from '../api/gen/fanotify/v1/EventType';
import type { Mark } from '../api/gen/fanotify/v1/Mark';
import type { MarkScope__Output } from '../api/gen/fanotify/v1/MarkScope';

/**
 * One mark per path. A subtree mark covers everything under its directory
 * by itself; the other scopes carry on_child, so that an inode mark on a
 * directory also sees its direct entries (the kernel ignores it on mount
 * and filesystem marks).
 */
export function marksFor(paths: readonly string[], scope: MarkScope__Output, events: EventType__Output[]): Mark[] {
  const onChild = scope !== 'MARK_SCOPE_SUBTREE';
  return paths.map((path) => ({ path, scope, events, ...(onChild ? { on_child: true } : {}) }));
}
