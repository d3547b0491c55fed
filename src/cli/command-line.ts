// fanctl's command line, by commander: each command declares its options,
// commander validates them and writes the help; this file turns what it
// parsed into one typed Invocation, and bad usage into exit status 2.
import * as path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EventType, type EventType__Output } from '../api/gen/fanotify/v1/EventType';
import type { MarkScope__Output } from '../api/gen/fanotify/v1/MarkScope';
import type { GroupClass__Output } from '../api/gen/fanotify/v1/GroupClass';
import type { TlsOptions } from '../client';
import { PathRules, PatternError } from './path-rules';

export const DEFAULT_TARGET = 'unix:/run/fanotifyd/fanotifyd.sock';
/** Bad usage, as for every command-line tool: the command was not run. */
export const EXIT_USAGE = 2;

export interface Connection {
  targets: string[];
  /** For TCP targets; unix sockets are always plaintext. */
  tls?: TlsOptions;
}

/** A named watch outlives its stream by its linger: fanctl re-attaches to it after a lost connection or a daemon restart. */
export interface Resume {
  /** Subscribe.name. */
  name: string;
  /** Subscribe.linger_ms. */
  lingerMs: number;
  /** --linger was not given: the default, within what each daemon allows (GetInfo's max_linger_ms). */
  lingerDefault: boolean;
}

export interface WatchInvocation extends Resume {
  command: 'watch';
  connection: Connection;
  json: boolean;
  paths: string[];
  events: EventType__Output[];
  scope: MarkScope__Output;
}

export interface GuardInvocation extends Resume {
  command: 'guard';
  connection: Connection;
  json: boolean;
  paths: string[];
  events: EventType__Output[];
  scope: MarkScope__Output;
  groupClass: GroupClass__Output;
  deny: string[];
  /** Decide each event in fanctl (a verdict per open) instead of sending the globs as the daemon's rules. */
  ask: boolean;
  timeoutMs: number;
  onTimeout: 'DECISION_ALLOW' | 'DECISION_DENY';
}

export type Invocation =
  | { command: 'info'; connection: Connection; json: boolean }
  | { command: 'health'; connection: Connection }
  | WatchInvocation
  | GuardInvocation;

/** What to run, or the exit status when there is nothing to run (help shown: 0, bad usage: 2). */
export type Parsed = { invocation: Invocation } | { exitCode: number };

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const PERMISSION_EVENTS = ['open_perm', 'access_perm', 'open_exec_perm', 'pre_access'];
/** Everything a mark may ask for outside a permission class (Q_OVERFLOW is not a mark bit). */
const NOTIFICATION_EVENTS = Object.keys(EventType)
  .map((k) => k.replace('EVENT_TYPE_', '').toLowerCase())
  .filter((e) => e !== 'unspecified' && e !== 'q_overflow' && !PERMISSION_EVENTS.includes(e));
/** subtree first: the default, what people mean by watching a directory. */
const SCOPES = ['subtree', 'inode', 'mount', 'filesystem', 'mount_namespace'];
const SCOPE_HELP = 'what each mark covers: subtree (everything under a directory), inode (the file, or a directory and its direct entries), mount, filesystem';
const WATCH_SCOPE_HELP = `${SCOPE_HELP}, mount_namespace (a /proc/PID/ns/mnt file, for mnt_attach and mnt_detach)`;
const PERMISSION_CLASSES = ['content', 'pre_content'];
const DEFAULT_WATCH_EVENTS = ['open', 'close_write', 'close_nowrite'];

/** A comma-separated list of event names, each one of `allowed`; repeating the option adds to the list. */
function eventList(allowed: readonly string[]) {
  return (value: string, previous: string[] | undefined): string[] => {
    const names = value
      .split(',')
      .map((s) => s.trim().toLowerCase().replace(/^event_type_/, ''))
      .filter(Boolean);
    if (names.length === 0) throw new InvalidArgumentError('give at least one event name');
    const bad = names.find((n) => !allowed.includes(n));
    if (bad) throw new InvalidArgumentError(`"${bad}" is not one of: ${allowed.join(', ')}`);
    return [...(previous ?? []), ...names];
  };
}

function target(value: string, previous: string[] | undefined): string[] {
  const scheme = /^(unix|unix-abstract|dns|ipv4|ipv6):/.test(value);
  const hostPort = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(value);
  if (!scheme && !hostPort) throw new InvalidArgumentError('give unix:/path/to.sock or HOST:PORT');
  return [...(previous ?? []), value];
}

function denyPattern(value: string, previous: string[] | undefined): string[] {
  try {
    new PathRules([value]);
  } catch (err) {
    if (err instanceof PatternError) throw new InvalidArgumentError(err.message);
    throw err;
  }
  return [...(previous ?? []), value];
}

function milliseconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new InvalidArgumentError('give a whole number of milliseconds');
  return Number(value);
}

/** What the daemon takes as a watch name (Subscribe.name). */
const NAME = /^[A-Za-z0-9._-]{1,128}$/;

function watchName(value: string): string {
  if (!NAME.test(value)) throw new InvalidArgumentError('use 1-128 letters, digits, ".", "_" and "-"');
  return value;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** A duration with its unit (500ms, 30s, 2m), or 0, in milliseconds. */
function duration(value: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(value);
  if (!m || (m[2] === undefined && m[1] !== '0')) throw new InvalidArgumentError('give a duration with its unit: 500ms, 30s, 2m (or 0)');
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
  if (ms > 0xffffffff) throw new InvalidArgumentError('at most 4294967295ms');
  return ms;
}

/**
 * Unique on this host while fanctl runs (the daemon keeps names per client
 * identity): a second fanctl gets a watch of its own unless it is given
 * the same --name, and joins it then.
 */
const defaultName = (command: string) => `fanctl-${command}-${process.pid}`;
const DEFAULT_LINGER = '30s';

interface ResumeFlags {
  name?: string;
  linger?: number;
}

function withResume(cmd: Command, what: string): Command {
  return cmd
    .option('--name <name>', `names the watch, so that it outlives a lost connection or a daemon restart and fanctl resumes it; another fanctl ${what} with the same --name joins it (default: fanctl-COMMAND-PID)`, watchName)
    .option('--linger <duration>', `how long the daemon keeps the watch once fanctl is gone (buffering its events for the resume); 0: it ends with fanctl (default: ${DEFAULT_LINGER}, or the daemon's maximum if lower)`, duration);
}

const resumeOf = (command: string, flags: ResumeFlags): Resume => ({
  name: flags.name ?? defaultName(command),
  lingerMs: flags.linger ?? duration(DEFAULT_LINGER),
  lingerDefault: flags.linger === undefined,
});

const toEventTypes = (names: string[]) => names.map((n) => `EVENT_TYPE_${n.toUpperCase()}` as EventType__Output);
const toScope = (s: string) => `MARK_SCOPE_${s.toUpperCase()}` as MarkScope__Output;

interface ConnectionFlags {
  target?: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsServerName?: string;
}

function withConnection(cmd: Command): Command {
  return cmd
    .option('-t, --target <addr>', `daemon address: unix:/path or HOST:PORT; repeat for several daemons (default: ${DEFAULT_TARGET})`, target)
    .option('--tls-cert <file>', 'PEM client certificate for TCP targets (with --tls-key)')
    .option('--tls-key <file>', 'PEM key of --tls-cert')
    .option('--tls-ca <file>', "PEM CA bundle the daemon's certificate must chain to (default: the system's CAs)")
    .option('--tls-server-name <name>', "name to check the daemon's certificate against (default: the target's host)");
}

function connectionOf(cmd: Command, flags: ConnectionFlags): Connection {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) cmd.error('error: --tls-cert and --tls-key go together: give both or neither', { exitCode: EXIT_USAGE });
  const anyTls = flags.tlsCert || flags.tlsKey || flags.tlsCa || flags.tlsServerName;
  const tls = anyTls ? { certFile: flags.tlsCert, keyFile: flags.tlsKey, caFile: flags.tlsCa, serverName: flags.tlsServerName } : undefined;
  return { targets: flags.target ?? [DEFAULT_TARGET], tls };
}

const resolvePaths = (paths: string[]) => paths.map((p) => path.resolve(p));

const PROGRAM_HELP = `
watch and guard cover everything under a directory (--scope subtree); a
daemon without MARK_SCOPE_SUBTREE refuses that, and --scope inode watches
a directory's direct entries instead.

Every command takes --target (repeatable) and the --tls-* options. With
several targets, watch and guard merge the daemons' events, each line tagged
with its target. Each watch is named (--name) and lingers on its daemon
(--linger): a connection lost or a daemon restarted is resumed when the
daemon is back, with no event lost or printed twice; if the daemon could
not keep them all, a GAP line says how many were lost (with --json, also
a {"gap": {...}} line among the events).

Exit status: 0 done (or stopped by SIGINT/SIGTERM), 1 a call failed, 2 bad usage.`;

const GUARD_HELP = `
Globs are read as in .gitignore:
  *.key            a pattern without "/" matches the file name in any directory
  /srv/**/*.key    "**" is zero or more directories: /srv/x.key, /srv/a/b/x.key
  **/secret        "secret" in any directory
  !/srv/ok.key     "!" takes paths back out; the last matching pattern decides
"*" and "?" match within one name, dot files included. With --scope subtree
(the default) a directory is guarded with everything under it; with
--scope inode, with its direct entries only.

The daemon decides each open itself, by rules fanctl sends when it starts:
DENY (EPERM) when the path matches, reported to fanctl, which prints it;
ALLOW for the rest, which the kernel then remembers for that file until it
is modified, so no open waits for fanctl. With --ask, every open waits for
fanctl's own answer instead (the globs matched in fanctl, one verdict per
event): the shape of a policy engine that decides what rules cannot. When
fanctl does not answer within --timeout-ms, or stops, the daemon answers
with --on-timeout. A lost connection or a daemon restart is resumed (the
daemon answers meanwhile, by its rules and --on-timeout); once fanctl
stops, the watch lingers for --linger, its opens answered the same way or
by another fanctl guard with the same --name, and then nothing is guarded.`;

function addInfoCommands(program: Command, found: (i: Invocation) => void): void {
  withConnection(program.command('info').description("print what the daemon's kernel supports and the daemon's limits"))
    .option('--json', 'print the GetInfoResponse in protobuf JSON; with several targets {"target", "info"}')
    .action((flags: ConnectionFlags & { json?: boolean }, cmd: Command) => {
      found({ command: 'info', connection: connectionOf(cmd, flags), json: Boolean(flags.json) });
    });
  withConnection(program.command('health').description('exit 0 when the daemon says SERVING (grpc.health.v1)')).action((flags: ConnectionFlags, cmd: Command) => {
    found({ command: 'health', connection: connectionOf(cmd, flags) });
  });
}

interface MarkFlags extends ConnectionFlags, ResumeFlags {
  events?: string[];
  scope: string;
  json?: boolean;
}

function addWatchCommand(program: Command, found: (i: Invocation) => void): void {
  withResume(
    withConnection(
      program
        .command('watch')
        .description('print file-access events fatrace-style, or as JSON lines')
        .argument('<path...>', 'files or directories to mark (a directory: everything under it, or with --scope inode its direct entries)'),
    ),
    'watch',
  )
    .option('--events <list>', `comma-separated, of: ${NOTIFICATION_EVENTS.join(', ')} (default: ${DEFAULT_WATCH_EVENTS.join(',')})`, eventList(NOTIFICATION_EVENTS))
    .addOption(new Option('--scope <scope>', WATCH_SCOPE_HELP).choices(SCOPES).default('subtree'))
    .option('--json', 'one line per event in protobuf JSON (fanotify.v1.Event); with several targets {"target", "event"}')
    .action((paths: string[], flags: MarkFlags, cmd: Command) => {
      found({
        command: 'watch',
        connection: connectionOf(cmd, flags),
        ...resumeOf('watch', flags),
        json: Boolean(flags.json),
        paths: resolvePaths(paths),
        events: toEventTypes(flags.events ?? DEFAULT_WATCH_EVENTS),
        scope: toScope(flags.scope),
      });
    });
}

interface GuardFlags extends MarkFlags {
  deny: string[];
  ask?: boolean;
  class: string;
  onTimeout: 'allow' | 'deny';
  timeoutMs: number;
}

function addGuardCommand(program: Command, found: (i: Invocation) => void): void {
  withResume(
    withConnection(
      program
        .command('guard')
        .description('deny opens of paths matching globs, allow the rest, print each denial')
        .argument('<path...>', 'files or directories to guard (a directory: everything under it, or with --scope inode its direct entries)'),
    ),
    'guard (a second policy engine)',
  )
    .requiredOption('--deny <glob>', 'deny paths matching GLOB (repeatable; see below)', denyPattern)
    .option('--ask', 'answer every event from fanctl instead of by rules in the daemon (see below)')
    .option('--events <list>', `permission events, comma-separated, of: ${PERMISSION_EVENTS.join(', ')} (default: open_perm)`, eventList(PERMISSION_EVENTS))
    .addOption(new Option('--class <class>', 'fanotify group class (pre_content: asked before content groups)').choices(PERMISSION_CLASSES).default('content'))
    .addOption(new Option('--on-timeout <decision>', 'the answer when fanctl is too slow or stops').choices(['allow', 'deny']).default('deny'))
    .option('--timeout-ms <ms>', "how long the daemon waits for fanctl's answer; 0: the daemon's default", milliseconds, 5000)
    .addOption(new Option('--scope <scope>', SCOPE_HELP).choices(SCOPES.filter((s) => s !== 'mount_namespace')).default('subtree'))
    .option('--json', 'one line per denial in protobuf JSON (fanotify.v1.Event); with several targets {"target", "event"}')
    .addHelpText('after', GUARD_HELP)
    .action((paths: string[], flags: GuardFlags, cmd: Command) => {
      found({
        command: 'guard',
        connection: connectionOf(cmd, flags),
        ...resumeOf('guard', flags),
        json: Boolean(flags.json),
        paths: resolvePaths(paths),
        events: toEventTypes(flags.events ?? ['open_perm']),
        scope: toScope(flags.scope),
        groupClass: `GROUP_CLASS_${flags.class.toUpperCase()}` as GroupClass__Output,
        deny: flags.deny,
        ask: Boolean(flags.ask),
        timeoutMs: flags.timeoutMs,
        onTimeout: flags.onTimeout === 'allow' ? 'DECISION_ALLOW' : 'DECISION_DENY',
      });
    });
}

function buildProgram(found: (i: Invocation) => void, output: Output): Command {
  const program = new Command('fanctl')
    .description('A client for fanotifyd: the Linux fanotify API as a gRPC service.')
    .exitOverride()
    .configureOutput({
      writeOut: output.out,
      writeErr: output.err,
      outputError: (text, write) => write(`fanctl: ${text.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', PROGRAM_HELP);
  addInfoCommands(program, found);
  addWatchCommand(program, found);
  addGuardCommand(program, found);
  return program;
}

/** Parse fanctl's arguments (without the node and script names). Help and errors go to `output`. */
export function parseCommandLine(argv: string[], output: Output): Parsed {
  let invocation: Invocation | undefined;
  const program = buildProgram((i) => (invocation = i), output);
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { exitCode: err.exitCode === 0 ? 0 : EXIT_USAGE };
    throw err;
  }
  return invocation ? { invocation } : { exitCode: EXIT_USAGE };
}
