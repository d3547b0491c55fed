// The definitions of the watches whose groups are in systemd's fd store:
// one JSON file each under <state directory>/watches, named for the fd's
// FDNAME, so the next process can rebuild each watch around its group.
//
// Written on the thread pool and replaced by rename (a reader never sees
// half a file): once a permission mark exists, the main thread must never
// wait in open(2), since only it answers the daemon's own opens.
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { GroupClass, MarkSpec } from '../kernel/group';
import type { Decision } from '../watch/types';
import type { Subscribe__Output } from '../api/gen/fanotify/v1/Subscribe';
import type { ClientIdentity } from '../api/identity';
import { fdName, FDNAME_MAX } from './sd-notify';

export const DEFINITION_VERSION = 1;

/** What a stored watch is rebuilt from. */
export interface WatchDefinition {
  version: number;
  /** Its fd's FDNAME in the store, and this file's name. */
  fdName: string;
  /** Subscribe.name. */
  name: string;
  identity: ClientIdentity;
  lingerMs: number;
  /** The Subscribe it was opened with, as received: the restore checks it again against the daemon's limits now. */
  subscribe: Subscribe__Output;
  groupClass: GroupClass;
  /** What the held events are answered with at the restore. */
  timeoutDecision: Decision;
  /** fanotify_init flags: the adopted fd must show the same. */
  groupFlags: number;
  /**
   * Sequence numbers below this were, or may have been, given out by the
   * process that wrote it; the restored watch starts here (a block is
   * reserved ahead, so the file is rewritten once per block, not per event).
   */
  nextSequence: string;
  /**
   * The first sequence number the writer never gave, written only once its
   * watch had stopped numbering for good (the handoff on SIGTERM); the
   * restored watch starts here rather than past the block, so a stream
   * that had everything is told no Gap. Absent (a crash, an older
   * writer, a write that failed): nextSequence.
   */
  exactNextSequence?: string;
  /**
   * The writer's RLIMIT_NOFILE: the kernel gave it no fd number at or above
   * this, so its unanswered events have numbers below (the restore sweep's bound).
   */
  fdLimit: number;
  pid: number;
  /**
   * Marks added since the Subscribe (AddMark), written before the kernel
   * has each: an Attach under a policy grant is checked against them after
   * a restart too. Removed ones stay (they can only refuse). Absent (a
   * definition written before they were recorded): unknown, and no grant
   * lets another client join the restored watch.
   */
  addedMarks?: MarkSpec[];
}

const definitionSchema = z.object({
  version: z.literal(DEFINITION_VERSION),
  fdName: z.string().min(1).max(FDNAME_MAX),
  name: z.string(),
  identity: z.object({ kind: z.enum(['certificate', 'local', 'insecure']), names: z.array(z.string()) }).passthrough(),
  lingerMs: z.number().int().positive(),
  subscribe: z.object({ name: z.string(), linger_ms: z.number(), marks: z.array(z.object({ path: z.string() }).passthrough()) }).passthrough(),
  groupClass: z.enum(['notif', 'content', 'pre_content']),
  timeoutDecision: z.enum(['allow', 'deny']),
  groupFlags: z.number().int().min(0),
  nextSequence: z.string().regex(/^\d+$/),
  exactNextSequence: z.string().regex(/^\d+$/).optional(),
  fdLimit: z.number().int().positive(),
  pid: z.number().int(),
  addedMarks: z.array(z.object({ path: z.string(), scope: z.enum(['inode', 'mount', 'filesystem', 'mount_namespace', 'subtree']), mask: z.number().int(), flags: z.number().int() })).optional(),
});

/** Where a watch restored from `def` starts numbering, and whether that is exactly after its last number. */
export function restoredSequence(def: WatchDefinition): { first: number; exact: boolean } {
  if (def.exactNextSequence !== undefined) return { first: Number(def.exactNextSequence), exact: true };
  return { first: Number(def.nextSequence), exact: false };
}

/**
 * The FDNAME of a named watch: its name, escaped to what systemd takes,
 * and a short digest of its owner and name, since names are unique per
 * client identity only.
 */
export function storeName(name: string, identityKey: string): string {
  const digest = createHash('sha256').update(`${identityKey}\0${name}`).digest('hex').slice(0, 12);
  return `${fdName(name).slice(0, FDNAME_MAX - 14)}.${digest}`;
}

export class WatchStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'watches');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    // An FDNAME holds no '/' only by chance: escaped here for the file name alone.
    return path.join(this.dir, `${name.replace(/\//g, '%2F')}.json`);
  }

  async write(def: WatchDefinition): Promise<void> {
    const file = this.file(def.fdName);
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(def), { mode: 0o600 });
    await fsp.rename(tmp, file);
  }

  async remove(name: string): Promise<void> {
    await fsp.rm(this.file(name), { force: true });
  }

  /** Every definition file, each read and checked alone: a bad one is an error for that watch only. */
  async readAll(): Promise<Array<{ fdName: string; def?: WatchDefinition; error?: string }>> {
    let names: string[];
    try {
      names = (await fsp.readdir(this.dir)).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    return Promise.all(
      names.map(async (n) => {
        const fdName = n.slice(0, -'.json'.length).replace(/%2F/g, '/');
        try {
          const def = definitionSchema.parse(JSON.parse(await fsp.readFile(path.join(this.dir, n), 'utf8'))) as unknown as WatchDefinition;
          if (def.fdName !== fdName) return { fdName, error: `names ${def.fdName}, not its file's name` };
          return { fdName, def };
        } catch (err) {
          return { fdName, error: err instanceof z.ZodError ? `invalid definition: ${err.issues[0]?.path.join('.')}: ${err.issues[0]?.message}` : (err as Error).message };
        }
      }),
    );
  }
}
