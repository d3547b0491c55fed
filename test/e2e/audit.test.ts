// The audit trail: one JSON line per watch opened and closed and per
// permission decision, written after the kernel has its answer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, runChild, startDaemon, tempDir, WatchStream, withDaemon } from '../fixtures/harness';
import { waitFor } from '../fixtures/wait';

describe('e2e: audit trail', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
    fs.mkdirSync(path.join(dir, 'w'));
    for (const f of ['ok', 'bad', 'slow']) fs.writeFileSync(path.join(dir, 'w', f), 'x');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('records watches and every decision with who decided', async () => {
    const file = path.join(dir, 'audit.jsonl');
    const daemon = await startDaemon(['--audit-file', file]);
    const client = connect(daemon.address);
    try {
      const s = new WatchStream(client, {
        group_class: 'GROUP_CLASS_CONTENT',
        verdict_timeout_ms: 200,
        timeout_decision: 'DECISION_DENY',
        marks: [{ path: path.join(dir, 'w'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
      });
      s.onEvent = (ev) => {
        if (ev.path.endsWith('/ok')) s.verdict(ev.id, 'DECISION_ALLOW');
        if (ev.path.endsWith('/bad')) s.verdict(ev.id, 'DECISION_DENY');
      };
      await s.subscribed();
      for (const f of ['ok', 'bad', 'slow']) await runChild('cat', [path.join(dir, 'w', f)]).done;
      s.cancel();
    } finally {
      client.close();
      expect(await daemon.stop()).to.equal(0);
    }
    const records = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((r) => r.kind)).to.deep.equal(['watch_opened', 'decision', 'decision', 'decision', 'watch_closed']);
    const d = records.filter((r) => r.kind === 'decision');
    expect(d.map((r) => [path.basename(r.path), r.decision, r.decided_by])).to.deep.equal([
      ['ok', 'allow', 'client'],
      ['bad', 'deny', 'client'],
      ['slow', 'deny', 'timeout'],
    ]);
    for (const r of d) {
      expect(r.identity).to.equal('local');
      expect(r.exe).to.match(/cat$/);
      expect(r.latency_ms).to.be.a('number');
    }
    expect(records[0].marks[0].path).to.equal(path.join(dir, 'w'));
  });

  it('an unwritable audit file is logged and counted, and verdicts go on', async () => {
    // A directory cannot be opened for appending.
    await withDaemon(['--audit-file', dir], async ({ daemon, client }) => {
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: path.join(dir, 'w'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
      s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_DENY');
      await s.subscribed();
      const r = await runChild('cat', [path.join(dir, 'w', 'bad')]).done;
      expect(r.stderr).to.match(/Operation not permitted/);
      await waitFor(() => daemon.logs.some((l) => l.includes('audit trail unwritable')), 5000, 'the log line for the unwritable audit trail');
      s.cancel();
    });
  });
});
