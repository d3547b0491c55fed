// The restart case, run alone: node dist/bench/restart.js [--reps N]
//   1. kill -9 of the daemon under the systemd harness with a named DENY
//      watch and openers blocked: time from the kill to every blocked
//      opener answered by the restarted daemon (with the time to READY=1
//      and the sweep's own time), beside a plain start's time to READY=1
//      in the same run.
//   2. The restore sweep: time per fd number tried, with no pending event
//      and with 64 pending, for the bounds a sweep could use.
//   3. The alternative, a journal of the highest event fd number: how
//      often it must be written while permission events flow with P
//      concurrent openers, what a write costs, and what its sweep would cost.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ffi from '../src/kernel/ffi';
import * as K from '../src/kernel/constants';
import { decodeEvents } from '../src/kernel/decoder';
import { sweepPending } from '../src/kernel/response';
import { connect, runChild, tempDir, WatchStream, type Client } from '../test/fixtures/harness';
import { SystemdHarness } from '../test/fixtures/systemd-harness';

const ROOT = path.resolve(__dirname, '..', '..');
const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1]) || 5;
const OPENERS = 3;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number) => Math.round(x * 10) / 10;

async function restartOnce(dir: string): Promise<{ killToAnswered: number; killToReady: number; sweepMs: number; plainReady: number }> {
  const sd = new SystemdHarness();
  let client: Client | undefined;
  try {
    let t = process.hrtime.bigint();
    await sd.start();
    const plainReady = ms(t);
    client = connect(sd.address);
    const s = new WatchStream(client, {
      group_class: 'GROUP_CLASS_CONTENT',
      verdict_timeout_ms: 30_000,
      timeout_decision: 'DECISION_DENY',
      name: 'bench',
      linger_ms: 60_000,
      marks: [{ path: dir, on_child: true, events: ['EVENT_TYPE_OPEN_PERM'] }],
    });
    await s.subscribed();
    await sd.until(() => sd.storedFds === 1, 'FDSTORE');
    const openers = Array.from({ length: OPENERS }, (_, i) => runChild('cat', [path.join(dir, `f${i}`)], 60_000));
    await s.until(() => s.events.length >= OPENERS, 10_000, 'events');
    client.close();
    t = process.hrtime.bigint();
    await sd.kill('SIGKILL');
    const answered = Promise.all(openers.map((o) => o.done)).then(() => ms(t));
    await sd.start();
    const killToReady = ms(t);
    const killToAnswered = await answered;
    const line = sd.logs.map((l) => JSON.parse(l) as Record<string, number | string>).find((l) => l.msg === 'watch taken back from the fd store');
    return { killToAnswered, killToReady, sweepMs: Number(line?.sweep_ms), plainReady };
  } finally {
    client?.close();
    await sd.close();
  }
}

/** Permission events read and left pending on a group of this process: `n` blocked cat children. */
async function pendingOn(group: number, dir: string, n: number) {
  const openers = Array.from({ length: n }, (_, i) => runChild('cat', [path.join(dir, `f${i % 8}`)], 60_000));
  const buf = Buffer.alloc(256 * 1024);
  const fds: number[] = [];
  let seen = 0;
  while (seen < n) {
    const len = ffi.readNonblock(group, buf);
    if (len === 0) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    for (const ev of decodeEvents(buf, len, false).events) {
      seen++;
      fds.push(ev.fd);
      if (ev.pidfd !== undefined && ev.pidfd >= 0) fds.push(ev.pidfd);
    }
  }
  return { openers, fds };
}

async function sweepCosts(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const pending of [0, 64]) {
    for (const limit of [1024, 65_536, 1_048_576]) {
      const group = ffi.fanotifyInit(K.FAN_CLASS_CONTENT | K.FAN_CLOEXEC | K.FAN_NONBLOCK, ffi.O_RDONLY | ffi.O_CLOEXEC);
      try {
        ffi.fanotifyMark(group, K.FAN_MARK_ADD, K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, dir);
        const held = pending ? await pendingOn(group, dir, pending) : undefined;
        // Their fds closed, as a killed reader's are: only the numbers are left.
        if (held) ffi.closeFds(held.fds);
        const t = process.hrtime.bigint();
        const r = sweepPending(group, limit, K.FAN_DENY);
        const took = ms(t);
        if (r.answered !== pending) throw new Error(`swept ${r.answered} of ${pending}`);
        out[`sweep_${limit}_pending_${pending}_ms`] = round(took);
        out[`sweep_${limit}_pending_${pending}_us_per_number`] = Math.round((took * 1000) / limit * 100) / 100;
        if (held) await Promise.all(held.openers.map((o) => o.done));
      } finally {
        ffi.closeFd(group);
      }
    }
  }
  return out;
}

/**
 * A journal of the highest event fd number, written (file and rename, as
 * a definition is) when a read's highest number passes the journalled
 * mark less a step; measured over permission events from P concurrent
 * openers that a reader in this process answers at once.
 */
async function journalCosts(dir: string, load: string): Promise<Record<string, number>> {
  const STEP = 256;
  const out: Record<string, number> = {};
  const file = path.join(dir, 'mark.json');
  for (const p of [1, 16, 64]) {
    const group = ffi.fanotifyInit(K.FAN_CLASS_CONTENT | K.FAN_CLOEXEC | K.FAN_NONBLOCK | K.FAN_REPORT_PIDFD, ffi.O_RDONLY | ffi.O_CLOEXEC);
    let writes = 0;
    let writeMs = 0;
    let events = 0;
    let mark = 0;
    let maxFd = 0;
    const buf = Buffer.alloc(256 * 1024);
    const resp = Buffer.alloc(8);
    try {
      ffi.fanotifyMark(group, K.FAN_MARK_ADD, K.FAN_OPEN_PERM | K.FAN_EVENT_ON_CHILD, path.join(dir, 'files'));
      const children = Array.from({ length: p }, () => spawn(load, [path.join(dir, 'files'), '64', '20000'], { stdio: 'ignore' }));
      let running = p;
      for (const c of children) c.once('exit', () => running--);
      const guard = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 60_000);
      const t = process.hrtime.bigint();
      while (running > 0) {
        const len = ffi.readNonblock(group, buf);
        if (len === 0) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        const evs = decodeEvents(buf, len, false).events;
        for (const ev of evs) maxFd = Math.max(maxFd, ev.fd, ev.pidfd ?? 0);
        if (maxFd + STEP > mark) {
          mark = (Math.floor(maxFd / STEP) + 2) * STEP;
          const w = process.hrtime.bigint();
          fs.writeFileSync(`${file}.tmp`, JSON.stringify({ mark }));
          fs.renameSync(`${file}.tmp`, file);
          writeMs += ms(w);
          writes++;
        }
        for (const ev of evs) {
          events++;
          resp.writeInt32LE(ev.fd, 0);
          resp.writeUInt32LE(K.FAN_ALLOW, 4);
          ffi.tryWrite(group, resp, 8);
          ffi.closeFds(ev.pidfd !== undefined && ev.pidfd >= 0 ? [ev.fd, ev.pidfd] : [ev.fd]);
        }
      }
      clearTimeout(guard);
      const secs = ms(t) / 1000;
      out[`journal_p${p}_events_per_s`] = Math.round(events / secs);
      out[`journal_p${p}_writes`] = writes;
      out[`journal_p${p}_writes_per_s`] = round(writes / secs);
      out[`journal_p${p}_us_per_write`] = writes ? Math.round((writeMs * 1000) / writes) : 0;
      out[`journal_p${p}_mark`] = mark;
      const t2 = process.hrtime.bigint();
      sweepPending(group, mark, K.FAN_DENY);
      out[`journal_p${p}_sweep_ms`] = round(ms(t2));
    } finally {
      ffi.closeFd(group);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const dir = tempDir('fanotifyd-bench-restart-');
  try {
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(dir, `f${i}`), 'x');
    const runs = [];
    for (let i = 0; i < REPS; i++) runs.push(await restartOnce(dir));
    const result: Record<string, unknown> = {
      reps: REPS,
      kill_to_answered_ms: runs.map((r) => round(r.killToAnswered)),
      kill_to_answered_p50_ms: round(p50(runs.map((r) => r.killToAnswered))),
      kill_to_ready_p50_ms: round(p50(runs.map((r) => r.killToReady))),
      sweep_p50_ms: round(p50(runs.map((r) => r.sweepMs))),
      plain_start_to_ready_p50_ms: round(p50(runs.map((r) => r.plainReady))),
    };
    result.restart_over_plain_start = round(Number(result.kill_to_answered_p50_ms) / Number(result.plain_start_to_ready_p50_ms) * 100) / 100;
    Object.assign(result, await sweepCosts(dir));
    const build = path.join(ROOT, 'bench', 'build');
    fs.mkdirSync(build, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-o', path.join(build, 'load'), path.join(ROOT, 'bench', 'c', 'load.c')]);
    fs.mkdirSync(path.join(dir, 'files'));
    for (let i = 0; i < 64; i++) fs.writeFileSync(path.join(dir, 'files', `f${i}`), 'x');
    Object.assign(result, await journalCosts(dir, path.join(build, 'load')));
    process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  },
);
