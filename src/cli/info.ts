// fanctl info and fanctl health: one unary call per target, in turn.
import type { CanonicalJson, FanotifyClient } from '../client';
import { describeStatus, formatInfo } from './format';
import type { Io } from './io';

function isStatus(err: unknown): err is { code: number; details: string } {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number';
}

/** Run `call` on every client; a failed call is reported and makes the result 1. */
async function eachTarget(clients: FanotifyClient[], io: Io, call: (c: FanotifyClient, tag: string) => Promise<boolean>): Promise<number> {
  let code = 0;
  for (const c of clients) {
    const tag = clients.length > 1 ? `[${c.target}] ` : '';
    try {
      if (!(await call(c, tag))) code = 1;
    } catch (err) {
      if (!isStatus(err)) throw err;
      io.note(`${tag}${describeStatus(err)}`);
      code = 1;
    }
  }
  return code;
}

export function runInfo(clients: FanotifyClient[], json: CanonicalJson | undefined, io: Io): Promise<number> {
  return eachTarget(clients, io, async (c, tag) => {
    const { message, bytes } = await c.getInfo();
    if (json) {
      const info = json.message('fanotify.v1.GetInfoResponse', bytes);
      io.out(JSON.stringify(clients.length > 1 ? { target: c.target, info } : info));
    } else {
      for (const line of formatInfo(message)) io.out(tag + line);
    }
    return true;
  });
}

/** 0 when every target says SERVING. */
export function runHealth(clients: FanotifyClient[], io: Io): Promise<number> {
  return eachTarget(clients, io, async (c, tag) => {
    const status = await c.checkHealth();
    io.out(tag + status);
    return status === 'SERVING';
  });
}
