// Binding the gRPC server to its addresses. A unix socket is created 0660
// in a 0750 directory; a stale socket left by a crashed run is replaced,
// but a live one, or a path that is not a socket, is never touched.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, parseAddress, type Config } from './config';

/** Credentials for TCP listeners: TLS requiring a client certificate from the CA, or none (loopback, --insecure). */
export function tcpCredentials(tls: Config['tls']): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const read = (flag: string, file: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError(`--${flag} ${file}: ${(err as Error).message}`);
    }
  };
  return grpc.ServerCredentials.createSsl(read('tls-client-ca', tls.clientCa), [{ cert_chain: read('tls-cert', tls.cert), private_key: read('tls-key', tls.key) }], true);
}

export async function bindAll(server: grpc.Server, addrs: string[], tcp: grpc.ServerCredentials, socketGroup?: string): Promise<string[]> {
  const gid = socketGroup === undefined ? undefined : groupId(socketGroup);
  const bound: string[] = [];
  for (const addr of addrs) bound.push(await bindOne(server, addr, tcp, gid));
  return bound;
}

/** A group name (from /etc/group) or number. */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  if (!line) throw new ConfigError(`--socket-group ${group}: no such group in /etc/group`);
  return Number(line.split(':')[2]);
}

async function bindOne(server: grpc.Server, addr: string, tcp: grpc.ServerCredentials, gid?: number): Promise<string> {
  const a = parseAddress(addr);
  if (a.kind === 'tcp') {
    const port = await bindAsync(server, addr, tcp);
    return a.host.includes(':') ? `[${a.host}]:${port}` : `${a.host}:${port}`;
  }
  const created = fs.mkdirSync(path.dirname(a.path), { recursive: true, mode: 0o750 });
  await removeStaleSocket(a.path);
  // Create the socket with its final mode: no window where it is wider.
  const old = process.umask(0o117);
  try {
    await bindAsync(server, addr, grpc.ServerCredentials.createInsecure());
  } finally {
    process.umask(old);
  }
  fs.chmodSync(a.path, 0o660);
  if (gid !== undefined) {
    fs.chownSync(a.path, process.getuid?.() ?? 0, gid);
    // The group must be able to reach the socket: give it the directory
    // too, but only one the daemon created (never /tmp or /run itself).
    if (created) fs.chownSync(path.dirname(a.path), process.getuid?.() ?? 0, gid);
  }
  return addr;
}

function bindAsync(server: grpc.Server, addr: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, creds, (err, port) => {
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
