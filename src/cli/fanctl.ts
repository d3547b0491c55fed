#!/usr/bin/env node
// fanctl: a client for people. `info` prints what the daemon's kernel
// supports, `watch` prints events fatrace-style (or JSON lines), `guard` is
// a small but real policy engine that denies paths matching globs.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { fanotifyClientConstructor } from '../api/proto';

const DEFAULT_TARGET = 'unix:/run/fanotifyd/fanotifyd.sock';

const USAGE = `Usage:
  fanctl info [--target ADDR]
  fanctl health [--target ADDR]           exit 0 when grpc.health.v1 says SERVING
  fanctl watch PATH... [--events open,close_write,...] [--scope inode|mount|filesystem] [--json] [--target ADDR]
  fanctl guard PATH... --deny GLOB [--deny GLOB ...] [--timeout-ms N] [--json] [--target ADDR]

ADDR is unix:/path or HOST:PORT (default ${DEFAULT_TARGET}). --target may be
repeated: events from several daemons are merged, each line tagged with its
target, and a target that goes away is reconnected with backoff.
watch: events are named as in fanotify(7) without FAN_ (default open,close_write,close_nowrite).
guard: asks about every open under PATH; denies the paths matching a GLOB
(* within a path segment, ** across segments), allows the rest, and prints
each denial. If fanctl stops, the daemon applies the timeout decision (allow).
`;

/* eslint-disable @typescript-eslint/no-explicit-any */
type Out = (line: string) => void;

function fail(message: string, code = 2): never {
  process.stderr.write(`fanctl: ${message}\n`);
  process.exit(code);
}

/** One sentence for a failed call: the status name and the daemon's reason. */
export function describeError(err: grpc.ServiceError | grpc.StatusObject): string {
  return `${grpc.status[err.code] ?? err.code}: ${err.details || 'no details'}`;
}

/** A glob over absolute paths: * within a segment, ** across segments, ? one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** fatrace-like: "time comm(pid): TYPES path". */
export function formatEvent(ev: any): string {
  const secs = Number(ev.time?.seconds ?? 0);
  const t = new Date(secs * 1000 + Math.floor((ev.time?.nanos ?? 0) / 1e6)).toISOString().slice(11, 23);
  const types = (ev.types as string[]).map((x) => x.replace('EVENT_TYPE_', '')).join('+');
  const who = ev.process?.comm ? `${ev.process.comm}(${ev.process.pid})` : `(${ev.process?.pid ?? '?'})`;
  const where = ev.path || (ev.entry ? `${ev.entry.dir || '<unresolved>'}/${ev.entry.name}` : '');
  return `${t} ${who}: ${types} ${where}`;
}

function client(target: string): grpc.Client & Record<string, any> {
  const Ctor = fanotifyClientConstructor();
  return new Ctor(target, grpc.credentials.createInsecure()) as any;
}

/** Reconnection backoff: from 250 ms, doubling, at most 10 s. */
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/**
 * Watch on every target at once, merging their events into one output with
 * each line tagged by its target when there are several. A target that
 * goes away is retried with backoff; the gap is reported when it is back.
 * With one target, a failure ends fanctl with the daemon's status instead.
 */
function streamWatch(targets: string[], subscribe: object, out: Out, json: boolean, onEvent?: (ev: any, call: any, tag: string) => void): Promise<number> {
  const fleet = targets.length > 1;
  return new Promise((resolve) => {
    let stopping = false;
    const live = new Set<{ call: any; c: any }>();
    const stop = () => {
      stopping = true;
      for (const { call, c } of live) {
        call.end();
        c.close();
      }
      resolve(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);

    const run = (target: string, backoff: number, lostAt?: number) => {
      const c = client(target);
      const call = c.Watch();
      const entry = { call, c };
      live.add(entry);
      const tag = fleet ? `[${target}] ` : '';
      let subscribed = false;
      call.on('data', (msg: any) => {
        if (msg.subscribed) {
          subscribed = true;
          if (lostAt !== undefined) {
            const gap = ((Date.now() - lostAt) / 1000).toFixed(1);
            out(json ? JSON.stringify({ target, reconnected: true, gap_seconds: Number(gap) }) : `${tag}RECONNECTED after ${gap} s; events in that gap were not seen`);
          } else if (!json) process.stderr.write(`fanctl: ${tag}watching (watch ${msg.subscribed.watch_id}, ${msg.subscribed.report_mode})\n`);
        }
        for (const ev of msg.events?.events ?? []) {
          if (onEvent) onEvent(ev, call, tag);
          else out(json ? JSON.stringify(fleet ? { target, ...ev } : ev) : tag + formatEvent(ev));
        }
        if (msg.overflow) {
          const o = msg.overflow;
          out(json ? JSON.stringify({ target, overflow: o }) : `${tag}OVERFLOW ${o.source.replace('OVERFLOW_SOURCE_', '').toLowerCase()}: ${o.dropped} events lost here, ${o.total} in all`);
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        live.delete(entry);
        c.close();
        if (stopping) return;
        // A refused Subscribe will be refused again: only a lost target is retried.
        const retry = fleet && (err.code === grpc.status.UNAVAILABLE || subscribed);
        if (!retry) {
          process.stderr.write(`fanctl: ${tag}${describeError(err)}\n`);
          if (!fleet || live.size === 0) resolve(1);
          return;
        }
        const since = subscribed ? Date.now() : (lostAt ?? Date.now());
        const wait = subscribed ? BACKOFF_MIN_MS : Math.min(backoff * 2, BACKOFF_MAX_MS);
        if (subscribed || lostAt === undefined) process.stderr.write(`fanctl: ${tag}lost (${describeError(err)}); reconnecting\n`);
        setTimeout(() => !stopping && run(target, wait, since), wait);
      });
      call.on('end', () => {
        live.delete(entry);
        if (!stopping && live.size === 0 && !fleet) resolve(0);
      });
      call.write({ subscribe });
    };
    for (const t of targets) run(t, BACKOFF_MIN_MS / 2);
  });
}

export async function main(argv: string[], out: Out = (l) => process.stdout.write(l + '\n')): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        target: { type: 'string', multiple: true },
        events: { type: 'string', default: 'open,close_write,close_nowrite' },
        scope: { type: 'string', default: 'inode' },
        json: { type: 'boolean', default: false },
        deny: { type: 'string', multiple: true },
        'timeout-ms': { type: 'string', default: '5000' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  const v = parsed.values as any;
  const targets: string[] = v.target ?? [DEFAULT_TARGET];
  const paths = parsed.positionals.map((p) => path.resolve(p));
  const c = client(targets[0]);

  if (cmd === 'info') {
    return new Promise((resolve) =>
      c.GetInfo({}, (err: grpc.ServiceError | null, info: any) => {
        c.close();
        if (err) {
          process.stderr.write(`fanctl: ${describeError(err)}\n`);
          return resolve(1);
        }
        if (v.json) out(JSON.stringify(info));
        else {
          out(`kernel ${info.kernel_release}, fanotifyd ${info.daemon_version}, ${info.active_watches} watches`);
          out(`classes: ${info.group_classes.join(' ')}`);
          out(`scopes:  ${info.mark_scopes.join(' ')}`);
          out(`events:  ${info.event_types.map((e: string) => e.replace('EVENT_TYPE_', '').toLowerCase()).join(' ')}`);
          out(`init flags: ${info.init_flags.join(' ')}`);
          const k = info.kernel_limits;
          out(`kernel limits: max_queued_events ${k.max_queued_events}, max_user_groups ${k.max_user_groups}, max_user_marks ${k.max_user_marks}`);
        }
        resolve(0);
      }),
    );
  }
  if (cmd === 'health') {
    c.close();
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    const h = new Health(targets[0], grpc.credentials.createInsecure()) as any;
    return new Promise((resolve) =>
      h.check({ service: 'fanotify.v1.Fanotify' }, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, r: any) => {
        h.close();
        if (err) {
          process.stderr.write(`fanctl: ${describeError(err)}\n`);
          return resolve(1);
        }
        out(String(r.status));
        resolve(r.status === 'SERVING' ? 0 : 1);
      }),
    );
  }
  if (cmd !== 'watch' && cmd !== 'guard') fail(`unknown command "${cmd}"\n\n${USAGE}`);
  if (paths.length === 0) fail(`${cmd} needs at least one PATH`);
  const scope = `MARK_SCOPE_${String(v.scope).toUpperCase()}`;

  if (cmd === 'watch') {
    const events = String(v.events)
      .split(',')
      .filter(Boolean)
      .map((e) => `EVENT_TYPE_${e.trim().toUpperCase()}`);
    const marks = paths.map((p) => ({ path: p, scope, events, on_child: true }));
    c.close();
    return streamWatch(targets, { marks }, out, v.json);
  }

  const deny: RegExp[] = (v.deny ?? []).map(globToRegExp);
  if (deny.length === 0) fail('guard needs at least one --deny GLOB');
  const marks = paths.map((p) => ({ path: p, scope, events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }));
  const subscribe = { group_class: 'GROUP_CLASS_CONTENT', verdict_timeout_ms: Number(v['timeout-ms']), timeout_decision: 'DECISION_ALLOW', marks };
  c.close();
  return streamWatch(targets, subscribe, out, v.json, (ev, call, tag) => {
    if (!ev.needs_verdict) return;
    const denied = deny.some((re) => re.test(ev.path));
    call.write({ verdicts: { verdicts: [{ id: ev.id, decision: denied ? 'DECISION_DENY' : 'DECISION_ALLOW' }] } });
    if (denied) out(v.json ? JSON.stringify({ denied: ev }) : `${tag}DENY ${formatEvent(ev)}`);
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
