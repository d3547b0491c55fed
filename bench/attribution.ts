// What attributing an event to its container costs the daemon, step by
// step, in process: node dist/bench/attribution.js [events]
//
// A process runs as a container's would (in a cgroup named as podman names
// one, in a mount namespace of its own), and the daemon's per-event work
// for it is timed in CPU time against the same work without attribution:
// the process cache's hit (the container's object checked against the
// runtime's directory), the host path worked out from the path the fd gave
// (fd mode), and, once per process cache miss (at most every 500 ms per
// process), reading the cgroup and the namespace. The end-to-end case is
// pump.js notify with BENCH_CONTAINER_CGROUP (docs/performance.md).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readAttribution, useContainerDirectory } from '../src/host/attribution';
import { cgroup2Mount } from '../src/host/cgroup';
import type { ContainerInfo } from '../src/host/container';
import { describeContainerPath, type FsEvent } from '../src/host/event';
import { ProcessCache } from '../src/host/process-cache';
import { unknownProcess } from '../src/host/process';

const N = Number(process.argv[2]) || 1_000_000;
const BATCH = 64;

/** CPU microseconds per call of fn, over n calls. */
function perCall(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn(i);
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / n;
}

async function main(): Promise<void> {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 hierarchy');
  const cg = path.join(mount, `fanotifyd-bench-${process.pid}`, `libpod-${'ab'.repeat(32)}`);
  fs.mkdirSync(cg, { recursive: true });
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec sleep 600', cg], { stdio: 'ignore' });
  const pid = child.pid!;
  for (let i = 0; i < 1000 && !(readAttribution(pid)?.container && readAttribution(pid)?.mntns); i++) await new Promise((r) => setTimeout(r, 10));
  try {
    const a = readAttribution(pid);
    if (!a?.container || a.mntns === undefined) throw new Error('the process is not in its container yet');
    const miss = perCall(Math.min(N, 20_000), () => readAttribution(pid));

    const hits = (directory: boolean) => {
      const known = new Map<string, ContainerInfo>();
      useContainerDirectory(directory ? { current: (c) => known.get(c.id) ?? c } : undefined);
      const cache = new ProcessCache(undefined, undefined, 'basic');
      return perCall(N, (i) => {
        if (i % BATCH === 0) cache.newBatch();
        cache.lookup(pid);
      });
    };
    const hitWith = hits(true);
    const hitWithout = hits(false);
    useContainerDirectory(undefined);

    const process1 = { ...unknownProcess(pid), details: true, container: a.container, mntns: a.mntns };
    const paths = Array.from({ length: 1000 }, (_, i) => Buffer.from(`/tmp/fanotifyd-bench/f${i}`));
    const ev = { path: paths[0], process: process1 } as FsEvent;
    const place = perCall(N, (i) => {
      ev.path = paths[i % paths.length];
      ev.containerPath = undefined;
      describeContainerPath(ev, true);
    });
    const perEvent = hitWith - hitWithout + place;
    // At 100,000 events/s from one process: one cache miss per 500 ms.
    const amortized = perEvent + (miss * 2) / 100_000;
    console.log(JSON.stringify({ events: N, cache_hit_us: hitWithout, cache_hit_with_container_us: hitWith, host_path_us: place, per_miss_us: miss, added_us_per_event: perEvent, added_us_per_event_at_100k_one_process: amortized }, null, 2));
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    fs.rmdirSync(cg);
    fs.rmdirSync(path.dirname(cg));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
