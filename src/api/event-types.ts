// EventType names and the kernel's mask bits: one table, read by Mark and
// Match parsing (names to bits) and by the event encoder (bits to enum
// numbers).
import * as grpc from '@grpc/grpc-js';
import * as K from '../kernel/constants';
import { ApiError } from './errors';
import type { EventType__Output } from './gen/fanotify/v1/EventType';

export const EVENT_TYPES: ReadonlyArray<[EventType__Output, number]> = [
  ['EVENT_TYPE_ACCESS', K.FAN_ACCESS],
  ['EVENT_TYPE_MODIFY', K.FAN_MODIFY],
  ['EVENT_TYPE_CLOSE_WRITE', K.FAN_CLOSE_WRITE],
  ['EVENT_TYPE_CLOSE_NOWRITE', K.FAN_CLOSE_NOWRITE],
  ['EVENT_TYPE_OPEN', K.FAN_OPEN],
  ['EVENT_TYPE_OPEN_EXEC', K.FAN_OPEN_EXEC],
  ['EVENT_TYPE_ATTRIB', K.FAN_ATTRIB],
  ['EVENT_TYPE_CREATE', K.FAN_CREATE],
  ['EVENT_TYPE_DELETE', K.FAN_DELETE],
  ['EVENT_TYPE_DELETE_SELF', K.FAN_DELETE_SELF],
  ['EVENT_TYPE_MOVED_FROM', K.FAN_MOVED_FROM],
  ['EVENT_TYPE_MOVED_TO', K.FAN_MOVED_TO],
  ['EVENT_TYPE_MOVE_SELF', K.FAN_MOVE_SELF],
  ['EVENT_TYPE_RENAME', K.FAN_RENAME],
  ['EVENT_TYPE_FS_ERROR', K.FAN_FS_ERROR],
  ['EVENT_TYPE_OPEN_PERM', K.FAN_OPEN_PERM],
  ['EVENT_TYPE_ACCESS_PERM', K.FAN_ACCESS_PERM],
  ['EVENT_TYPE_OPEN_EXEC_PERM', K.FAN_OPEN_EXEC_PERM],
  ['EVENT_TYPE_PRE_ACCESS', K.FAN_PRE_ACCESS],
  ['EVENT_TYPE_Q_OVERFLOW', K.FAN_Q_OVERFLOW],
  ['EVENT_TYPE_MNT_ATTACH', K.FAN_MNT_ATTACH],
  ['EVENT_TYPE_MNT_DETACH', K.FAN_MNT_DETACH],
];
const EVENT_BIT = new Map<unknown, number>(EVENT_TYPES);
/** [mask bit, EventType number]: the list above is in enum order, from 1. */
export const EVENT_TYPE_NUMBERS: ReadonlyArray<[number, number]> = EVENT_TYPES.map(([, bit], i) => [bit, i + 1]);

/** The mask bit of one EventType name; throws INVALID_ARGUMENT for unknown or unusable values. */
export function typeToBit(name: unknown, where: string): number {
  const bit = typeof name === 'string' ? EVENT_BIT.get(name) : undefined;
  if (bit === undefined || bit === K.FAN_Q_OVERFLOW) {
    throw new ApiError(
      grpc.status.INVALID_ARGUMENT,
      `${where}: ${String(name)} is not an event type that can be marked; use one of ${EVENT_TYPES.filter(([, b]) => b !== K.FAN_Q_OVERFLOW).map(([n]) => n).join(', ')}`,
    );
  }
  return bit;
}
