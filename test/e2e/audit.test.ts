// The audit trail: one JSON line per watch opened and closed and per
// permission decision, written after the kernel has its answer.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { connect, runChild, startDaemon, tempDir, waitForLog, WatchStream, withDaemon, type Client, type Daemon } from '../fixtures/harness';

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

  it('writes the shutdown decisions of events pending at SIGTERM before exiting, however slow the file', async () => {
    // The audit file is a FIFO whose reader holds a one-page pipe and reads
    // nothing until the daemon has logged "stopped": the records of the
    // watch fill the pipe, so the shutdown's records are still waiting
    // to be written when the daemon is done with everything else.
    const fifo = path.join(dir, 'audit.fifo');
    const copy = path.join(dir, 'audit.jsonl');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('python3', ['-c', FIFO_READER, fifo, copy], { stdio: ['pipe', 'pipe', 'inherit'] });
    const readerDone = new Promise<number | null>((resolve) => reader.once('close', resolve));
    let daemon: Daemon | undefined;
    let client: Client | undefined;
    let code: number | null | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        reader.stdout.once('data', () => resolve());
        reader.once('close', () => reject(new Error('the FIFO reader exited early')));
      });
      daemon = await startDaemon(['--audit-file', fifo]);
      client = connect(daemon.address);
      const w = path.join(dir, 'w', 'a-long-name-so-that-a-few-records-fill-the-pipe-'.repeat(4));
      fs.mkdirSync(w);
      for (const f of ['slow', ...Array.from({ length: 12 }, (_, i) => `f${i}`)]) fs.writeFileSync(path.join(w, f), 'x');
      const s = new WatchStream(client, {
        group_class: 'GROUP_CLASS_CONTENT',
        verdict_timeout_ms: 60_000,
        timeout_decision: 'DECISION_DENY',
        marks: [{ path: w, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
      });
      s.onEvent = (ev) => ev.path.endsWith('/slow') || s.verdict(ev.id, 'DECISION_ALLOW');
      await s.subscribed();
      await runChild('/bin/sh', ['-c', `for i in $(seq 0 11); do cat ${w}/f$i; done`]).done;
      const opener = runChild('cat', [path.join(w, 'slow')]);
      await s.until(() => s.events.find((e) => e.path.endsWith('/slow')), 10_000, 'the pending open');
      daemon.proc.kill('SIGTERM');
      // The kernel has its ALLOW before the record is written.
      const r = await opener.done;
      expect(r.code, r.stderr).to.equal(0);
      await waitForLog(daemon, (l) => l.msg === 'stopped', 10_000);
      reader.stdin.write('drain\n');
      code = await daemon.stop();
    } finally {
      client?.close();
      await daemon?.stop();
      reader.kill('SIGKILL');
      await readerDone;
    }
    expect(code).to.equal(0);
    const text = fs.readFileSync(copy, 'utf8');
    const records = text.trim().split('\n').map((l) => JSON.parse(l));
    const last = records.filter((r) => r.kind === 'decision').at(-1);
    expect([path.basename(last.path), last.decision, last.decided_by]).to.deep.equal(['slow', 'allow', 'shutdown']);
    expect(records.at(-1).kind).to.equal('watch_closed');
    // The test's own premise: the pipe was full before the shutdown's records.
    expect(text.indexOf('"decided_by":"shutdown"')).to.be.above(4096);
  });

  it('a full disk is logged and counted, and verdicts go on', async () => {
    // /dev/full opens like a file and refuses every write with ENOSPC.
    await withDaemon(['--audit-file', '/dev/full', '--metrics', '127.0.0.1:0'], async ({ daemon, client }) => {
      const s = new WatchStream(client, { group_class: 'GROUP_CLASS_CONTENT', marks: [{ path: path.join(dir, 'w'), on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }] });
      s.onEvent = (ev) => ev.needs_verdict && s.verdict(ev.id, 'DECISION_DENY');
      await s.subscribed();
      const r = await runChild('cat', [path.join(dir, 'w', 'bad')]).done;
      expect(r.stderr).to.match(/Operation not permitted/);
      const logged = await waitForLog(daemon, (l) => l.msg.startsWith('audit trail unwritable'));
      expect(logged.error.code).to.equal('ENOSPC');
      const port = /"metrics":"127\.0\.0\.1:(\d+)"/.exec(daemon.logs.join('\n'))![1];
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(Number(/fanotifyd_audit_records_total\{result="dropped"\} (\d+)/.exec(metrics)![1])).to.be.at.least(2);
      expect(metrics).to.match(/fanotifyd_audit_records_total\{result="written"\} 0\n/);
      s.cancel();
    });
  });
});

/** Holds the FIFO open for reading with a one-page pipe; copies it to a file once told to. */
const FIFO_READER = `
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ: the smallest pipe, one page
print('ready', flush=True)
sys.stdin.readline()
os.set_blocking(fd, True)
with open(sys.argv[2], 'wb') as out:
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        out.write(b)
`;
