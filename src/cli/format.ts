// The lines fanctl prints for people (--json prints protobuf's canonical
// JSON instead, from src/client/canonical-json.ts).
import * as grpc from '@grpc/grpc-js';
import type { Event__Output } from '../api/gen/fanotify/v1/Event';
import type { GetInfoResponse__Output } from '../api/gen/fanotify/v1/GetInfoResponse';
import type { Overflow__Output } from '../api/gen/fanotify/v1/Overflow';

const lower = (prefix: string) => (name: string) => name.replace(prefix, '').toLowerCase();

/** fatrace-like: "HH:MM:SS.mmm comm(pid): TYPES path", the time in UTC. */
export function formatEvent(ev: Event__Output): string {
  const ms = Number(ev.time?.seconds ?? 0) * 1000 + Math.floor((ev.time?.nanos ?? 0) / 1e6);
  const t = new Date(ms).toISOString().slice(11, 23);
  const types = ev.types.map((x) => x.replace('EVENT_TYPE_', '')).join('+');
  const who = ev.process?.comm ? `${ev.process.comm}(${ev.process.pid})` : `(${ev.process?.pid ?? '?'})`;
  return `${t} ${who}: ${types} ${where(ev)}`;
}

function where(ev: Event__Output): string {
  if (ev.path) return ev.path;
  if (ev.entry) return `${ev.entry.dir || '<unresolved>'}/${ev.entry.name}`;
  if (ev.mnt_id !== '0') return `mount ${ev.mnt_id}`;
  return '';
}

export function formatOverflow(o: Overflow__Output): string {
  return `OVERFLOW ${lower('OVERFLOW_SOURCE_')(o.source)}: ${o.dropped} events lost here, ${o.total} in all`;
}

export function formatInfo(info: GetInfoResponse__Output): string[] {
  const k = info.kernel_limits;
  return [
    `kernel ${info.kernel_release}, fanotifyd ${info.daemon_version}, ${info.active_watches} watches`,
    `classes: ${info.group_classes.join(' ')}`,
    `scopes:  ${info.mark_scopes.join(' ')}`,
    `events:  ${info.event_types.map(lower('EVENT_TYPE_')).join(' ')}`,
    `init flags: ${info.init_flags.join(' ')}`,
    `kernel limits: max_queued_events ${k?.max_queued_events ?? 0}, max_user_groups ${k?.max_user_groups ?? 0}, max_user_marks ${k?.max_user_marks ?? 0}`,
  ];
}

/** One sentence for a failed call: the status name and the daemon's reason. */
export function describeStatus(s: { code: number; details?: string }): string {
  return `${grpc.status[s.code] ?? s.code}: ${s.details || 'no details'}`;
}
