// Attach grants: a rule's `attach` globs let a client join a named watch
// another client created, but only a watch it could have opened itself.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import type { ClientIdentity } from '../../src/api/identity';
import { Authorizer, type ForeignWatch, type PolicyRule } from '../../src/api/policy';
import type { MarkSpec } from '../../src/kernel/group';

const rule = (match: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({ match, paths: [], scopes: ['inode'], permission: false, maxWatches: 1, getInfo: false, attach: [], ...extra });
const cert = (cn: string): ClientIdentity => ({ kind: 'certificate', names: [`CN=${cn}`] });
const mark = (p: string, scope: MarkSpec['scope'] = 'inode'): MarkSpec => ({ path: p, scope, mask: 0x20, flags: 0 });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ApiError);
    expect(grpc.status[(err as ApiError).status]).to.equal('PERMISSION_DENIED');
    return (err as Error).message;
  }
  return expect.fail('expected PERMISSION_DENIED');
}

describe('unit: policy attach grants', () => {
  let dir: string;
  let srv: string;
  let other: string;
  let watch: (extra?: Partial<ForeignWatch>) => ForeignWatch;
  before(() => {
    // Real directories: the check resolves symlinks as a Subscribe's does.
    dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-attach-')));
    srv = path.join(dir, 'srv');
    other = path.join(dir, 'other');
    fs.mkdirSync(srv);
    fs.mkdirSync(other);
    fs.symlinkSync(other, path.join(srv, 'escape'));
    fs.mkdirSync(path.join(srv, 'a'));
    watch = (extra = {}) => ({ name: 'fleet-1', owner: cert('alice'), groupClass: 'notif', marks: [mark(srv)], ...extra });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('without a policy file, lets no client join another\'s watch', () => {
    expect(refusal(() => new Authorizer().checkAttach({ kind: 'local', names: ['local'] }, watch()))).to.equal(
      'the watch named "fleet-1" belongs to another client; only the client that created it may attach (with no policy file, no other client may)',
    );
  });

  it('refuses a client no rule matches, and a rule whose attach globs do not cover the name', () => {
    const a = new Authorizer([rule('CN=bob', { paths: [srv], attach: ['export', 'fleet-?'] }), rule('CN=carol', { paths: [srv] })]);
    expect(refusal(() => a.checkAttach(cert('dave'), watch()))).to.match(/belongs to another client; no policy rule matches client certificate \["CN=dave"\]$/);
    // "*" is the only wildcard, and a glob matches the whole name: "fleet-?" is literal.
    expect(refusal(() => a.checkAttach(cert('bob'), watch()))).to.equal(
      'the watch named "fleet-1" belongs to another client; policy rule #0 ("CN=bob") does not allow attaching to it (its attach: "export", "fleet-?")',
    );
    expect(refusal(() => a.checkAttach(cert('bob'), watch({ name: 'export-2' })))).to.match(/its attach: "export", "fleet-\?"/);
    expect(refusal(() => a.checkAttach(cert('carol'), watch()))).to.match(/policy rule #1 \("CN=carol"\) does not allow attaching to it \(it has no attach\)$/);
  });

  it('allows a watch whose name a glob covers and whose marks the rule allows, naming the glob', () => {
    const a = new Authorizer([rule('CN=bob', { paths: [srv], attach: ['export', 'fleet-*'] })]);
    const g = a.checkAttach(cert('bob'), watch({ marks: [mark(srv), mark(path.join(srv, 'a'))] }));
    expect(g).to.include({ index: 0, glob: 'fleet-*', name: 'policy rule #0 ("CN=bob")' });
    expect(a.checkAttach(cert('bob'), watch({ name: 'export' })).glob).to.equal('export');
    expect(refusal(() => a.checkAttach(cert('bob'), watch({ name: 'xfleet-1' })))).to.match(/does not allow attaching to it/);
  });

  it('refuses a watch that holds more than the client may mark, naming the rule, the glob and everything missing', () => {
    const a = new Authorizer([rule('CN=bob', { paths: [srv], attach: ['fleet-*'] })]);
    const msg = refusal(() =>
      a.checkAttach(cert('bob'), watch({ groupClass: 'content', marks: [mark(srv), mark(path.join(srv, 'escape')), mark(srv, 'filesystem')] })),
    );
    expect(msg).to.equal(
      `policy rule #0 ("CN=bob") allows attaching to the watch named "fleet-1" of client certificate ["CN=alice"] (attach "fleet-*"), but not what it watches: ` +
        `it does not allow permission events (group_class CONTENT); it does not allow marks on ${other} (allowed: ${srv}); it does not allow filesystem marks (allowed: inode)`,
    );
    // A rule with no paths allows no marks at all.
    const none = new Authorizer([rule('CN=bob', { attach: ['*'] })]);
    expect(refusal(() => none.checkAttach(cert('bob'), watch()))).to.match(new RegExp(`does not allow marks on ${srv} \\(allowed: none\\)$`));
  });

  it("refuses a mark whose path no longer resolves: what the kernel marked through it cannot be told now", () => {
    const a = new Authorizer([rule('CN=bob', { paths: [srv], attach: ['fleet-*'] })]);
    // "srv/gone/../../srv" led to srv when it was marked; with srv/gone removed it resolves to nothing.
    expect(refusal(() => a.checkAttach(cert('bob'), watch({ marks: [mark(`${srv}/gone/../../srv`)] })))).to.match(/it cannot tell what .*gone\/\.\.\/\.\.\/srv is now \(it does not resolve\), so cannot allow it$/);
  });

  it('resolves ".." after a symlink as the kernel does: srv/escape/.. is the parent of what escape points to', () => {
    fs.mkdirSync(path.join(other, 'x'), { recursive: true });
    fs.symlinkSync(path.join(other, 'x'), path.join(srv, 'into-other'));
    const a = new Authorizer([rule('CN=bob', { paths: [srv], attach: ['fleet-*'] })]);
    expect(refusal(() => a.checkWatch(cert('bob'), 'notif', [mark(`${srv}/into-other/..`)]))).to.equal(`policy rule #0 ("CN=bob") does not allow marks on ${other} (allowed: ${srv})`);
  });

  it('still tells a Subscribe only the first thing to fix', () => {
    const a = new Authorizer([rule('CN=bob', { paths: [srv] })]);
    expect(refusal(() => a.checkWatch(cert('bob'), 'content', [mark(other)]))).to.equal('policy rule #0 ("CN=bob") does not allow permission events (group_class CONTENT)');
    expect(refusal(() => a.checkWatch(cert('bob'), 'notif', [mark(other), mark(srv, 'mount')]))).to.equal(`policy rule #0 ("CN=bob") does not allow marks on ${other} (allowed: ${srv})`);
  });
});
