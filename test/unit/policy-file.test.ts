// The policy file's schema: defaults, every problem named by rule and key in
// one line, and the published JSON Schema equal to the one the daemon uses.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { loadPolicy, parsePolicy, PolicyError, policyJsonSchema } from '../../src/api/policy-file';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const parse = (doc: unknown) => parsePolicy('/p.json', JSON.stringify(doc));

describe('unit: policy file', () => {
  it('fills in the defaults, and keeps the rules in order', () => {
    const rules = parse({ rules: [{ match: 'local' }, { match: 'CN=x', paths: ['/srv/', '/'], scopes: ['mount'], permission: true, maxWatches: 0, getInfo: true }] });
    expect(rules).to.deep.equal([
      { match: 'local', paths: [], scopes: ['inode'], permission: false, maxWatches: 16, getInfo: false, attach: [] },
      { match: 'CN=x', paths: ['/srv', '/'], scopes: ['mount'], permission: true, maxWatches: 0, getInfo: true, attach: [] },
    ]);
    expect(parse({ rules: [{ match: 'CN=b', attach: ['export', 'fleet-*', '*'] }] })[0].attach).to.deep.equal(['export', 'fleet-*', '*']);
    expect(parse({ $schema: './policy.schema.json', rules: [] })).to.deep.equal([]);
  });

  const bad: Array<[unknown, RegExp]> = [
    [{}, /^policy \/p\.json: rules: missing$/],
    [{ rules: {} }, /^policy \/p\.json: rules: expected a list, got an object$/],
    [{ rules: [], extra: 1 }, /^policy \/p\.json: unknown key "extra"$/],
    [[], /^policy \/p\.json: expected an object, got a list$/],
    [{ rules: [{ match: '' }] }, /^policy \/p\.json: rules\[0\]\.match: must not be empty$/],
    [{ rules: [{ paths: ['/'] }] }, /^policy \/p\.json: rules\[0\]\.match: missing$/],
    [{ rules: [{ match: 'a' }, { match: 'b' }, { match: 'c', scopes: ['mnt'] }] }, /^policy \/p\.json: rules\[2\]\.scopes\[0\]: "mnt" is not one of inode, mount, filesystem, mount_namespace, subtree$/],
    [{ rules: [{ match: 'a', paths: ['/ok', 'srv'] }] }, /^policy \/p\.json: rules\[0\]\.paths\[1\]: "srv" is not an absolute path$/],
    [{ rules: [{ match: 'a', paths: '/srv' }] }, /^policy \/p\.json: rules\[0\]\.paths: expected a list, got string "\/srv"$/],
    [{ rules: [{ match: 'a', maxWatches: -1 }] }, /^policy \/p\.json: rules\[0\]\.maxWatches: -1 is below 0$/],
    [{ rules: [{ match: 'a', maxWatches: 1.5 }] }, /^policy \/p\.json: rules\[0\]\.maxWatches: 1\.5 is not an integer$/],
    [{ rules: [{ match: 'a', maxWatches: '3' }] }, /^policy \/p\.json: rules\[0\]\.maxWatches: expected a number, got string "3"$/],
    [{ rules: [{ match: 'a', permission: 'yes' }] }, /^policy \/p\.json: rules\[0\]\.permission: expected true or false, got string "yes"$/],
    [{ rules: [{ match: 'a', getinfo: true }] }, /^policy \/p\.json: rules\[0\]: unknown key "getinfo"$/],
    [{ rules: [{ match: 'a', attach: 'export' }] }, /^policy \/p\.json: rules\[0\]\.attach: expected a list, got string "export"$/],
    [{ rules: [{ match: 'a', attach: ['ok', ''] }] }, /^policy \/p\.json: rules\[0\]\.attach\[1\]: must not be empty$/],
    [{ rules: [{ match: 'a', attach: ['fleet/*'] }] }, /^policy \/p\.json: rules\[0\]\.attach\[0\]: "fleet\/\*" can match no watch name \(letters, digits, "\.", "_", "-"; "\*" for any run of them\)$/],
    [{ rules: [{ match: 1, permission: 2 }] }, /^policy \/p\.json: rules\[0\]\.match: expected a string, got number 1 \(and 1 more\)$/],
  ];
  for (const [doc, re] of bad) {
    it(`refuses ${JSON.stringify(doc)} naming the rule and key`, () => {
      expect(() => parse(doc)).to.throw(PolicyError, re);
    });
  }

  it('names the file when it is not JSON or cannot be read', () => {
    expect(() => parsePolicy('/p.json', '{"rules": [')).to.throw(PolicyError, /^policy \/p\.json: .*JSON/);
    expect(() => loadPolicy('/nonexistent/p.json')).to.throw(PolicyError, /^policy \/nonexistent\/p\.json: ENOENT/);
  });

  it('docs/policy.schema.json is the schema the daemon checks with (npm run schema:policy writes it)', () => {
    const published = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'policy.schema.json'), 'utf8'));
    expect(published).to.deep.equal(policyJsonSchema());
  });

  it("the example in docs/security.md is valid", () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'security.md'), 'utf8');
    const example = /\n {4}(\{"rules": \[[\s\S]*?\n {4}\]\})\n/.exec(doc);
    expect(example, 'a policy example indented as code in docs/security.md').to.not.equal(null);
    const rules = parsePolicy('docs/security.md', example![1]);
    expect(rules.length).to.be.above(1);
  });

  it('loads a file from disk', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-policy-'));
    try {
      const f = path.join(dir, 'p.json');
      fs.writeFileSync(f, JSON.stringify({ rules: [{ match: 'local', paths: ['/'] }] }));
      expect(loadPolicy(f)[0].paths).to.deep.equal(['/']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
