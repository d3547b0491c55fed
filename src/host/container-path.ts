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
export function translate(from: readonly MountEntry[], to: readonly MountEntry[], p: string): string {
  const m = mountOf(from, p);
  return m ? showing(to, m.dev, join(m.root, below(p, m.mountPoint))) : '';
}

/**
 * Translations by directory, per mount namespace and direction, kept with
 * the tables they were made from: the events of a busy container name a
 * few directories over and over, and each then costs a map lookup keyed
 * by the directory's bytes (no UTF-8 decoding, no key built from parts: both
 * showed in a profile at 100,000 events/s). null: not shown there.
 */
interface Dir {
  bytes: Buffer;
  /** The same path on both sides. */
  same: boolean;
}
interface Memo {
  toHost: Map<string, Dir | null>;
  toContainer: Map<string, Dir | null>;
  h: View;
  v: View;
}
const memo = new Map<number, Memo>();
const MEMO_MAX = 8192;

function translatedDir(dir: string, toHost: boolean, m: Memo): Dir | null {
  const table = toHost ? m.toHost : m.toContainer;
  let out = table.get(dir);
  if (out === undefined) {
    const d = Buffer.from(dir, 'latin1').toString('utf8');
    const t = toHost ? translate(m.v.entries, m.h.entries, d) : translate(m.h.entries, m.v.entries, d);
    out = t ? { bytes: Buffer.from(t, 'utf8'), same: t === d } : null;
    if (table.size >= MEMO_MAX) table.clear();
    table.set(dir, out);
  }
  return out;
}

/** The last namespace's memo, checked against the clock once per MEMO_RECHECK uses, not per event. */
let last: { ns: number; m: Memo; uses: number } | undefined;
const MEMO_RECHECK = 256;

function memoFor(pid: number, ns: number): Memo | undefined {
  if (last && last.ns === ns && ++last.uses < MEMO_RECHECK) return last.m;
  const now = monotonicClock.now();
  const h = hostView(now);
  const v = h && viewOf(pid, ns, now);
  if (!h || !v) return undefined;
  let m = memo.get(ns);
  if (!m || m.h !== h || m.v !== v) {
    if (memo.size >= VIEWS_MAX) memo.clear();
    m = { toHost: new Map(), toContainer: new Map(), h, v };
    memo.set(ns, m);
  }
  last = { ns, m, uses: 0 };
  return m;
}

const SLASH = 0x2f;

/**
 * The last directory translated, by its bytes: a busy process's events
 * tend to name one directory in a row, and then not even its key string is
 * made (compared in place, nothing allocated).
 */
let lastDir: { bytes: Buffer; toHost: boolean; m: Memo; out: Dir | null } | undefined;

function lastDirOf(p: Buffer, slash: number, toHost: boolean, m: Memo): Dir | null | undefined {
  const l = lastDir;
  if (!l || l.m !== m || l.toHost !== toHost || l.bytes.length !== slash || p.compare(l.bytes, 0, slash, 0, slash) !== 0) return undefined;
  return l.out;
}

function rememberDir(p: Buffer, slash: number, toHost: boolean, m: Memo): Dir | null {
  const out = translatedDir(slash === 0 ? '/' : p.toString('latin1', 0, slash), toHost, m);
  lastDir = { bytes: Buffer.from(p.subarray(0, slash)), toHost, m, out };
  return out;
}

/**
 * A path as the process (pid, in mount namespace ns) sees it, as the host
 * sees it (toHost), or the other way; p itself when the two are the same,
 * undefined when the other side does not show it or the tables cannot be
 * read.
 */
export function translatePath(p: Buffer, pid: number, ns: number, toHost: boolean): Buffer | undefined {
  const m = memoFor(pid, ns);
  if (!m) return undefined;
  const slash = p.lastIndexOf(SLASH);
  if (slash < 0) return undefined;
  const d = lastDirOf(p, slash, toHost, m) ?? rememberDir(p, slash, toHost, m);
  if (!d) return undefined;
  if (d.same) return p;
  return d.bytes.length === 1 ? Buffer.concat([d.bytes, p.subarray(slash + 1)]) : Buffer.concat([d.bytes, p.subarray(slash)]);
}
