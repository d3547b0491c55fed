// fanctl's command line: what each command turns into, and bad usage
// refused with exit status 2 and a line that says what to fix. No daemon.
import { expect } from 'chai';
import { DEFAULT_TARGET, parseCommandLine, type GuardInvocation, type Invocation, type Parsed, type WatchInvocation } from '../../src/cli/command-line';
import { denyRules, guardSubscribe } from '../../src/cli/guard';
import { watchSubscribe } from '../../src/cli/watch';

function parse(...argv: string[]): { parsed: Parsed; out: string; err: string } {
  let out = '';
  let err = '';
  const parsed = parseCommandLine(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { parsed, out, err };
}

function invocation(...argv: string[]): Invocation {
  const { parsed, err } = parse(...argv);
  if (!('invocation' in parsed)) throw new Error(`expected an invocation, got exit ${parsed.exitCode}: ${err}`);
  return parsed.invocation;
}

function usageError(...argv: string[]): string {
  const { parsed, err } = parse(...argv);
  expect(parsed, err).to.deep.equal({ exitCode: 2 });
  return err;
}

describe('unit: fanctl arguments', () => {
  it('info and health default to the packaged socket; --target repeats', () => {
    expect(invocation('info')).to.deep.equal({ command: 'info', connection: { targets: [DEFAULT_TARGET], tls: undefined }, json: false });
    expect(invocation('health', '--target', 'unix:/a.sock', '--target', 'h:1')).to.deep.equal({ command: 'health', connection: { targets: ['unix:/a.sock', 'h:1'], tls: undefined } });
  });

  it('watch: paths resolved, event names mapped, defaults as documented', () => {
    const inv = invocation('watch', 'rel/dir', '/abs', '--events', 'open,CLOSE_WRITE', '--events', 'modify', '--json');
    expect(inv).to.deep.include({ command: 'watch', json: true, paths: [`${process.cwd()}/rel/dir`, '/abs'], events: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_MODIFY'], scope: 'MARK_SCOPE_SUBTREE' });
    const plain = invocation('watch', '/d', '--scope', 'mount');
    expect(plain).to.deep.include({ events: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_CLOSE_NOWRITE'], scope: 'MARK_SCOPE_MOUNT' });
    expect(watchSubscribe(plain as Invocation & { command: 'watch' })).to.deep.equal({
      marks: [{ path: '/d', scope: 'MARK_SCOPE_MOUNT', events: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_CLOSE_NOWRITE'], on_child: true }],
      name: `fanctl-watch-${process.pid}`,
      linger_ms: 30_000,
    });
  });

  it('watch and guard name their watch and linger: --name, --linger with its unit, defaults unique per fanctl and 30 s', () => {
    expect(invocation('watch', '/d')).to.deep.include({ name: `fanctl-watch-${process.pid}`, lingerMs: 30_000 });
    expect(invocation('guard', '/d', '--deny', 'x')).to.deep.include({ name: `fanctl-guard-${process.pid}`, lingerMs: 30_000 });
    for (const [arg, ms] of [['0', 0], ['500ms', 500], ['45s', 45_000], ['2m', 120_000]] as const) {
      expect(invocation('watch', '/d', '--linger', arg), arg).to.deep.include({ lingerMs: ms });
    }
    const inv = invocation('guard', '/d', '--deny', 'x', '--name', 'engine.a_1', '--linger', '5s') as GuardInvocation;
    expect(guardSubscribe(inv)).to.deep.include({ name: 'engine.a_1', linger_ms: 5000 });
    for (const bad of [['--linger', '30'], ['--linger', '1h'], ['--name', 'has space'], ['--name', 'x'.repeat(129)]]) usageError('watch', '/d', ...bad);
  });

  it('watch marks the subtree by default, without on_child; --scope inode keeps on_child for a directory\'s entries', () => {
    expect(watchSubscribe(invocation('watch', '/d') as WatchInvocation).marks).to.deep.equal([{ path: '/d', scope: 'MARK_SCOPE_SUBTREE', events: ['EVENT_TYPE_OPEN', 'EVENT_TYPE_CLOSE_WRITE', 'EVENT_TYPE_CLOSE_NOWRITE'] }]);
    expect(watchSubscribe(invocation('watch', '/d', '--scope', 'inode', '--events', 'open') as WatchInvocation).marks).to.deep.equal([{ path: '/d', scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN'], on_child: true }]);
    expect(watchSubscribe(invocation('watch', '/d', '--scope', 'subtree') as WatchInvocation).marks).to.have.nested.property('[0].scope', 'MARK_SCOPE_SUBTREE');
  });

  it('guard always states its timeout decision: deny unless --on-timeout allow', () => {
    const inv = invocation('guard', '/d', '--deny', '*.key', '--deny', '/d/**/*.pem') as GuardInvocation;
    expect(inv).to.deep.include({ deny: ['*.key', '/d/**/*.pem'], ask: false, groupClass: 'GROUP_CLASS_CONTENT', events: ['EVENT_TYPE_OPEN_PERM'], scope: 'MARK_SCOPE_SUBTREE', timeoutMs: 5000, onTimeout: 'DECISION_DENY' });
    expect(guardSubscribe(inv)).to.deep.include({
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: 5000,
      timeout_decision: 'DECISION_DENY',
      marks: [{ path: '/d', scope: 'MARK_SCOPE_SUBTREE', events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    const open = invocation('guard', '/d', '--deny', 'x', '--on-timeout', 'allow', '--class', 'pre_content', '--events', 'open_perm,open_exec_perm', '--timeout-ms', '250') as GuardInvocation;
    expect(guardSubscribe(open)).to.deep.include({ group_class: 'GROUP_CLASS_PRE_CONTENT', verdict_timeout_ms: 250, timeout_decision: 'DECISION_ALLOW' });
    expect(open.events).to.deep.equal(['EVENT_TYPE_OPEN_PERM', 'EVENT_TYPE_OPEN_EXEC_PERM']);
  });

  it('guard sends its globs as rules: deny and report each, in reverse order, then allow the rest with cache', () => {
    const inv = invocation('guard', '/d', '--deny', '*.key', '--deny', '/d/**/*.pem') as GuardInvocation;
    expect(guardSubscribe(inv).rules).to.deep.equal([
      { match: { paths: ['/d/**/*.pem'] }, decision: 'DECISION_DENY', report: true },
      { match: { paths: ['*.key'] }, decision: 'DECISION_DENY', report: true },
      { match: {}, decision: 'DECISION_ALLOW', cache: true },
    ]);
    // The last matching glob decides, the daemon's first matching rule does: a later "!" comes first.
    expect(denyRules(['*.key', '!/d/public.key'])).to.deep.equal([
      { match: { paths: ['/d/public.key'] }, decision: 'DECISION_ALLOW', cache: true },
      { match: { paths: ['*.key'] }, decision: 'DECISION_DENY', report: true },
      { match: {}, decision: 'DECISION_ALLOW', cache: true },
    ]);
  });

  it('guard --ask sends no rules (fanctl answers each event); --scope inode keeps on_child', () => {
    const inv = invocation('guard', '/d', '--deny', 'x', '--ask', '--scope', 'inode') as GuardInvocation;
    expect(inv.ask).to.equal(true);
    const sub = guardSubscribe(inv);
    expect(sub).to.not.have.property('rules');
    expect(sub.marks).to.deep.equal([{ path: '/d', scope: 'MARK_SCOPE_INODE', events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }]);
    expect(guardSubscribe(invocation('guard', '/d', '--deny', 'x', '--scope', 'filesystem') as GuardInvocation).marks).to.deep.equal([{ path: '/d', scope: 'MARK_SCOPE_FILESYSTEM', events: ['EVENT_TYPE_OPEN_PERM'], on_child: true }]);
  });

  it('TLS options make a TLS connection; certificate and key go together', () => {
    const inv = invocation('info', '--target', 'db1:7443', '--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--tls-ca', 'ca.pem', '--tls-server-name', 'fanotifyd.example');
    expect(inv.connection).to.deep.equal({ targets: ['db1:7443'], tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', serverName: 'fanotifyd.example' } });
    expect(invocation('info', '--target', 'db1:7443', '--tls-ca', 'ca.pem').connection.tls).to.deep.equal({ certFile: undefined, keyFile: undefined, caFile: 'ca.pem', serverName: undefined });
    expect(usageError('info', '--target', 'db1:7443', '--tls-cert', 'c.pem')).to.match(/^fanctl: --tls-cert and --tls-key go together/);
  });

  it('refuses bad usage with exit 2, naming what is wrong', () => {
    expect(usageError('watch', '/d', '--events', 'open,opn')).to.match(/"opn" is not one of: access, modify/);
    // Permission events need a verdict, which only guard gives.
    expect(usageError('watch', '/d', '--events', 'open_perm')).to.match(/"open_perm" is not one of/);
    expect(usageError('guard', '/d', '--deny', 'x', '--events', 'open')).to.match(/"open" is not one of: open_perm, access_perm/);
    expect(usageError('watch', '/d', '--scope', 'everything')).to.match(/Allowed choices are subtree, inode, mount, filesystem, mount_namespace/);
    expect(usageError('guard', '/d', '--deny', 'x', '--scope', 'mount_namespace')).to.match(/Allowed choices are subtree, inode, mount, filesystem\./);
    expect(usageError('guard', '/d', '--deny', 'x', '--class', 'notif')).to.match(/Allowed choices are content, pre_content/);
    expect(usageError('guard', '/d', '--deny', 'x', '--on-timeout', 'maybe')).to.match(/Allowed choices are allow, deny/);
    expect(usageError('guard', '/d', '--deny', 'x', '--timeout-ms', '5s')).to.match(/whole number of milliseconds/);
    expect(usageError('guard', '/d')).to.match(/required option '--deny <glob>' not specified/);
    expect(usageError('guard', '/d', '--deny', 'keys/*.pem')).to.match(/must start with "\/"/);
    expect(usageError('watch', '--events', 'open')).to.match(/missing required argument 'path'/);
    expect(usageError('watch', '/d', '--target', 'localhost')).to.match(/give unix:\/path\/to.sock or HOST:PORT/);
    expect(usageError('info', 'extra')).to.match(/too many arguments/);
    expect(usageError('info', '--jsn')).to.match(/unknown option '--jsn'/);
    expect(usageError('frobnicate')).to.match(/unknown command 'frobnicate'/);
    expect(usageError()).to.match(/Usage: fanctl/);
  });

  it('prints help for the program and for each command, with exit 0', () => {
    const top = parse('--help');
    expect(top.parsed).to.deep.equal({ exitCode: 0 });
    for (const cmd of ['info', 'health', 'watch', 'guard']) expect(top.out).to.include(cmd);
    const guard = parse('guard', '--help');
    expect(guard.parsed).to.deep.equal({ exitCode: 0 });
    expect(guard.out).to.match(/--on-timeout <decision>.*choices: "allow", "deny"/s);
    expect(guard.out).to.include('zero or more directories');
    // commander wraps lines to the terminal's width.
    const flat = (text: string) => text.replace(/\s+/g, ' ');
    expect(flat(guard.out)).to.match(/--ask answer every event from fanctl/);
    expect(flat(guard.out)).to.match(/--scope <scope> [^-]*\(choices: "subtree", "inode", "mount", "filesystem", default: "subtree"\)/);
    expect(flat(guard.out)).to.include('The daemon decides each open itself');
    const watch = parse('watch', '--help');
    expect(flat(watch.out)).to.match(/--scope <scope> .*\(choices: "subtree", "inode", "mount", "filesystem", "mount_namespace", default: "subtree"\)/);
    expect(flat(watch.out)).to.include('everything under it');
  });
});
