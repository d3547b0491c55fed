// Binding the gRPC server to its addresses. A unix socket is created 0660
// in a 0750 directory; a stale socket left by a crashed run is replaced,
// but a live one, or a path that is not a socket, is never touched.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, parseAddress } from './config';

export async function bindAll(server: grpc.Server, addrs: string[]): Promise<string[]> {
  const bound: string[] = [];
  for (const addr of addrs) bound.push(await bindOne(server, addr));
  return bound;
}

async function bindOne(server: grpc.Server, addr: string): Promise<string> {
  const a = parseAddress(addr);
  if (a.kind === 'tcp') {
    const port = await bindAsync(server, addr);
    return a.host.includes(':') ? `[${a.host}]:${port}` : `${a.host}:${port}`;
  }
  fs.mkdirSync(path.dirname(a.path), { recursive: true, mode: 0o750 });
  await removeStaleSocket(a.path);
  // Create the socket with its final mode: no window where it is wider.
  const old = process.umask(0o117);
  try {
    await bindAsync(server, addr);
  } finally {
    process.umask(old);
  }
  fs.chmodSync(a.path, 0o660);
  return addr;
}

function bindAsync(server: grpc.Server, addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new ConfigError(`--listen ${addr}: ${err.message}`));
      else resolve(port);
    });
  });
}

async function removeStaleSocket(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ConfigError(`--listen unix:${p}: the path exists and is not a socket; refusing to remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new ConfigError(`--listen unix:${p}: another process is serving this socket`);
  fs.unlinkSync(p);
}
