// The path of a file as a process in another mount namespace sees it
// (Event.container_path). Event paths are the host's; a container sees
// the same file through mounts of its own (its root, its bind mounts).
// The file's host mount gives the filesystem (major:minor) and the path
// within it; the process's mount table (/proc/PID/mountinfo, whose mount
// points are relative to the process's root) then says where that
// filesystem directory shows for the process.
import * as fs from 'node:fs';
import { monotonicClock } from '../common/clock';
import { parseMountInfo, type MountEntry } from './mounts';

/** A mount table is read again after this long: containers rarely mount after start. */
const VIEW_TTL_MS = 1000;
const VIEWS_MAX = 1024;

interface View {
  entries: MountEntry[];
  at: number;
}

const views = new Map<number, View>();
let hostTable = '/proc/self/mountinfo';
let host: View | undefined;
let hostNs: number | undefined;

/** Whose mount table is the host's (the --host-root process's, or the daemon's). */
export function useHostMountTable(pid: number | 'self'): void {
  hostTable = `/proc/${pid}/mountinfo`;
  host = undefined;
  hostNs = mountNamespaceOf(pid);
}

/** The inode of a process's mount namespace (/proc/PID/ns/mnt); undefined once it is gone. */
export function mountNamespaceOf(pid: number | 'self'): number | undefined {
  try {
    // stat follows the magic link to the nsfs inode; nothing is opened.
    return fs.statSync(`/proc/${pid}/ns/mnt`).ino;
  } catch {
    return undefined;
  }
}

/** Whether a mount namespace is not the host's (its processes may see other paths). */
export function isOtherNamespace(ns: number | undefined): boolean {
  hostNs ??= mountNamespaceOf('self');
  return ns !== undefined && ns !== hostNs;
}

function read(file: string): View | undefined {
  try {
    return { entries: parseMountInfo(fs.readFileSync(file, 'utf8')), at: monotonicClock.now() };
  } catch {
    return undefined;
  }
}

function hostView(now: number): View | undefined {
  if (!host || now - host.at >= VIEW_TTL_MS) host = read(hostTable);
  return host;
}

function viewOf(pid: number, ns: number, now: number): View | undefined {
  let v = views.get(ns);
  if (!v || now - v.at >= VIEW_TTL_MS) {
    v = read(`/proc/${pid}/mountinfo`);
    if (!v) return undefined;
    if (views.size >= VIEWS_MAX) views.clear();
    views.set(ns, v);
  }
  return v;
}

/** p is q or below it. */
const under = (p: string, q: string) => q === '/' || p === q || (p.startsWith(q) && p[q.length] === '/');
const below = (p: string, q: string) => (q === '/' ? p : p.slice(q.length)) || '/';
const join = (a: string, b: string) => (b === '/' ? a : a === '/' ? b : a + b);

/** The mount a path is reached through in a table: the deepest mount point above it (the last of equal ones is on top). */
function mountOf(entries: readonly MountEntry[], p: string): MountEntry | undefined {
  let m: MountEntry | undefined;
  for (const e of entries) if (under(p, e.mountPoint) && (!m || e.mountPoint.length >= m.mountPoint.length)) m = e;
  return m;
}

/** Where a table shows a directory of a filesystem: the mount whose root holds it most closely. */
function showing(entries: readonly MountEntry[], dev: string, inFs: string): string {
  let best: MountEntry | undefined;
  for (const e of entries) if (e.dev === dev && under(inFs, e.root) && (!best || e.root.length > best.root.length)) best = e;
  return best ? join(best.mountPoint, below(inFs, best.root)) : '';
}

/** p, as the table `from` shows it, in the table `to`; '' when `to` does not show it. */
function translate(from: readonly MountEntry[], to: readonly MountEntry[], p: string): string {
  const m = mountOf(from, p);
  return m ? showing(to, m.dev, join(m.root, below(p, m.mountPoint))) : '';
}

/**
 * Translations by directory, per mount namespace and direction, kept with
 * the tables they were made from: the events of a busy container name a
 * few directories over and over, and each then costs a map lookup.
 */
const memo = new Map<string, string>();
let memoFor: { h: View; v: View } | undefined;
const MEMO_MAX = 8192;

function translated(dir: string, ns: number, toHost: boolean, h: View, v: View): string {
  if (!memoFor || memoFor.h !== h || memoFor.v !== v || memo.size >= MEMO_MAX) {
    memo.clear();
    memoFor = { h, v };
  }
  const key = `${toHost ? 'h' : 'c'}${ns}:${dir}`;
  let out = memo.get(key);
  if (out === undefined) {
    out = toHost ? translate(v.entries, h.entries, dir) : translate(h.entries, v.entries, dir);
    memo.set(key, out);
  }
  return out;
}

function views2(pid: number, ns: number): { h: View; v: View } | undefined {
  const now = monotonicClock.now();
  const h = hostView(now);
  const v = h && viewOf(pid, ns, now);
  return h && v ? { h, v } : undefined;
}

function mapPath(p: string, pid: number, ns: number, toHost: boolean): string {
  const t = views2(pid, ns);
  if (!t) return '';
  const slash = p.lastIndexOf('/');
  const dir = slash <= 0 ? '/' : p.slice(0, slash);
  const d = translated(dir, ns, toHost, t.h, t.v);
  if (!d) return '';
  return slash < 0 ? d : join(d, p.slice(slash));
}

/** hostPath as the process (pid, in mount namespace ns) sees it; '' when it does not see it, or the tables cannot be read. */
export function containerPath(hostPath: string, pid: number, ns: number): string {
  return mapPath(hostPath, pid, ns, false);
}

/** A path as the process (pid, in mount namespace ns) sees it, as the host sees it; '' when the host does not show it. */
export function hostPath(seen: string, pid: number, ns: number): string {
  return mapPath(seen, pid, ns, true);
}
