// The audit trail's writer: records in order, all of them on disk when
// close() resolves or closeSync() returns, failures counted and logged once
// per run of failures rather than per record.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { AuditTrail } from '../../src/daemon/audit';
import type { Logger } from '../../src/common/log';

function recordingLogger(lines: string[]): Logger {
  const log: Logger = {
    debug: (msg) => lines.push(`debug ${msg}`),
    info: (msg) => lines.push(`info ${msg}`),
    warn: (msg) => lines.push(`warn ${msg}`),
    error: (msg) => lines.push(`error ${msg}`),
    child: () => log,
  };
  return log;
}

describe('unit: audit trail', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanotifyd-audit-'));
    file = path.join(dir, 'audit.jsonl');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const read = () => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('creates the file 0600 at once, and has every record on disk, in order, when close() resolves', async () => {
    const a = new AuditTrail(file, recordingLogger([]));
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    for (let i = 0; i < 1000; i++) a.record('decision', { id: String(i) });
    await a.close();
    const records = read();
    expect(records.map((r) => r.id)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => String(i)));
    expect(records[0].kind).to.equal('decision');
    expect(a.written).to.equal(1000);
    a.record('decision', { id: 'late' });
    expect(a.dropped).to.equal(1);
    await a.close();
  });

  it('appends to what is there', async () => {
    fs.writeFileSync(file, '{"kind":"old"}\n');
    const a = new AuditTrail(file, recordingLogger([]));
    a.record('watch_opened', {});
    await a.close();
    expect(read().map((r) => r.kind)).to.deep.equal(['old', 'watch_opened']);
  });

  it('closeSync() writes what is queued at once (the fatal path)', () => {
    const a = new AuditTrail(file, recordingLogger([]));
    a.record('decision', { id: '1', decided_by: 'shutdown' });
    a.record('watch_closed', {});
    a.closeSync();
    expect(read().map((r) => r.kind)).to.deep.equal(['decision', 'watch_closed']);
    expect(a.written).to.equal(2);
  });

  it('throws at once when the file cannot be opened', () => {
    expect(() => new AuditTrail(dir, recordingLogger([]))).to.throw(/EISDIR/);
  });

  it('a full disk drops and counts records, logging once, not per record', async () => {
    const lines: string[] = [];
    const a = new AuditTrail('/dev/full', recordingLogger(lines));
    // Three writes, each after the one before failed.
    for (const n of [1, 10, 40]) {
      for (let i = 0; i < n; i++) a.record('decision', { id: String(i) });
      await a.flush();
    }
    await a.close();
    expect(a.written).to.equal(0);
    expect(a.dropped).to.equal(51);
    expect(lines.filter((l) => l.startsWith('error audit trail unwritable'))).to.have.length(1);
  });
});
