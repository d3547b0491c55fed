// Binding the gRPC server to its addresses. A unix socket is created 0660
// in a 0750 directory; a stale socket left by a crashed run is replaced,
// but a live one, or a path that is not a socket, is never touched.
//
// Every listener (unix socket, plain loopback TCP, TLS) is accepted here,
// not by grpc-js: a connection reaches the gRPC server only once it has
// completed its TLS handshake (on TCP with TLS) and sent the 24-byte HTTP/2
// client preface, and is closed if it has not within --handshake-timeout-ms.
// grpc-js has no such timeout, and its idle timeout only sends GOAWAY and a
// FIN, then waits for the peer to close.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { parseAddress } from './config';
import { FanotifydError } from '../common/errors';
import type { Logger } from '../common/log';

/** An address that could not be bound: in use, or a path the daemon will not replace. A failure of the host's state, not of the settings (exit 1). */
export class ListenError extends FanotifydError {
  constructor(message: string) {
    super('ELISTEN', message);
  }
}

/** TLS material for TCP listeners: the daemon's certificate and key, and the CA client certificates must come from. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
}

/** The listeners, for the daemon's shutdown. */
export interface Listeners {
  /** The addresses served; a TCP port 0 replaced by the port bound. */
  addresses: string[];
  /** Stop accepting, and close the connections that have not sent the preface. */
  close(): void;
  /** Destroy every connection still open: the end of a shutdown's grace. */
  destroyAll(): void;
}

export interface ListenOptions {
  /** TLS for TCP listeners; without it TCP is plain (loopback, --insecure). */
  tls?: TlsFiles;
  /** Group owning the unix sockets (and the directory, if the daemon made it). */
  socketGid?: number;
  /** Time a connection has to send the HTTP/2 preface, and to close its side once the daemon closed the connection. */
  handshakeTimeoutMs: number;
  /** Open connections per listener (net.Server.maxConnections): more are closed at once. */
  maxConnections: number;
  log: Logger;
}

export async function bindAll(server: grpc.Server, addrs: string[], opts: ListenOptions): Promise<Listeners> {
  const gid = opts.socketGid;
  const gate = new PrefaceGate(server, opts.handshakeTimeoutMs, opts.maxConnections, opts.log);
  const addresses: string[] = [];
  try {
    for (const addr of addrs) addresses.push(await bindOne(gate, addr, opts.tls, gid));
  } catch (err) {
    gate.close();
    throw err;
  }
  return { addresses, close: () => gate.close(), destroyAll: () => gate.destroyAll() };
}

/** The first bytes of every HTTP/2 connection (RFC 9113, section 3.4). */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Accepts connections for the gRPC server. The first (decrypted) bytes are
 * read here; once they are the whole preface they are put back
 * (socket.unshift) and the socket is injected into grpc-js, whose HTTP/2
 * session reads what the socket holds before anything new (Node's
 * Http2Session feeds a socket's buffered bytes to nghttp2 first). Bytes
 * that are not the preface, or too few of them in time, close the socket.
 */
class PrefaceGate {
  private readonly injector: grpc.ConnectionInjector;
  private readonly servers: net.Server[] = [];
  /** Every open connection: waiting for the preface or injected. */
  private readonly sockets = new Set<net.Socket>();
  private readonly waiting = new Set<net.Socket>();
  private closed = false;
  /** Connections closed at once because a listener was full. */
  dropped = 0;

  constructor(
    server: grpc.Server,
    private readonly timeoutMs: number,
    private readonly maxConnections: number,
    private readonly log: Logger,
  ) {
    this.injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  }

  /**
   * A new server whose connections go through the gate: plain, or TLS
   * requiring a client certificate from the CA. A TLS connection gets the
   * same time for its handshake, then for the preface it sends encrypted.
   */
  server(files?: TlsFiles): net.Server {
    const s = files
      ? tls.createServer(
          { cert: files.cert, key: files.key, ca: files.clientCa, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'], handshakeTimeout: this.timeoutMs },
          (socket) => this.accept(socket),
        )
      : net.createServer((socket) => this.accept(socket));
    s.maxConnections = this.maxConnections;
    s.on('drop', () => {
      this.dropped++;
      this.log.debug('connection refused: --max-connections reached', { max_connections: this.maxConnections, dropped: this.dropped });
    });
    // A failed or timed-out handshake: Node reports it here and leaves the socket open.
    s.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.log.debug('TLS handshake failed', { error: err });
      socket.destroy();
    });
    this.servers.push(s);
    return s;
  }

  close(): void {
    this.closed = true;
    for (const s of this.servers) s.close();
    for (const socket of this.waiting) socket.destroy();
  }

  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.waiting.add(socket);
    // A reset peer only ends its own connection; once injected, the HTTP/2
    // session handles the socket's errors too.
    socket.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const deadline = setTimeout(() => {
      this.log.debug('connection closed: no HTTP/2 preface in time', { bytes: head.length, handshake_timeout_ms: this.timeoutMs });
      socket.destroy();
    }, this.timeoutMs);
    let closing: NodeJS.Timeout | undefined;
    socket.once('close', () => {
      clearTimeout(deadline);
      clearTimeout(closing);
      this.sockets.delete(socket);
      this.waiting.delete(socket);
    });
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, HTTP2_PREFACE.length);
      if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) {
        this.log.debug('connection closed: not HTTP/2', { bytes: head.length });
        socket.destroy();
        return;
      }
      if (n < HTTP2_PREFACE.length) return;
      clearTimeout(deadline);
      this.waiting.delete(socket);
      socket.off('data', onData);
      // Out of flowing mode before the bytes go back, so that no 'data'
      // event takes them; the session reads them on its next tick.
      socket.pause();
      socket.unshift(head);
      this.injector.injectConnection(socket);
      // The daemon closes a connection (idle timeout, shutdown) with GOAWAY
      // and a FIN; a peer that never closes its side is dropped after the
      // same grace, instead of holding the socket for ever.
      socket.once('finish', () => {
        closing = setTimeout(() => socket.destroy(), this.timeoutMs);
        closing.unref();
      });
    };
    socket.on('data', onData);
  }
}

async function bindOne(gate: PrefaceGate, addr: string, files: TlsFiles | undefined, gid?: number): Promise<string> {
  const a = parseAddress(addr);
  if (a.kind === 'tcp') {
    const port = await listenTcp(gate, addr, a.host, a.port, files);
    return a.host.includes(':') ? `[${a.host}]:${port}` : `${a.host}:${port}`;
  }
  const created = fs.mkdirSync(path.dirname(a.path), { recursive: true, mode: 0o750 });
  await removeStaleSocket(a.path);
  // Create the socket with its final mode: no window where it is wider.
  // bind() happens within listen(), so the umask is restored at once.
  const old = process.umask(0o117);
  let listening: Promise<number>;
  try {
    listening = listen(gate.server(), { path: a.path }, addr);
  } finally {
    process.umask(old);
  }
  await listening;
  fs.chmodSync(a.path, 0o660);
  if (gid !== undefined) {
    fs.chownSync(a.path, process.getuid?.() ?? 0, gid);
    // The group must be able to reach the socket: give it the directory
    // too, but only one the daemon created (never /tmp or /run itself).
    if (created) fs.chownSync(path.dirname(a.path), process.getuid?.() ?? 0, gid);
  }
  return addr;
}

/** Plain TCP (loopback, --insecure). "localhost" is both 127.0.0.1 and, where there is IPv6, ::1 on the same port, as grpc-js bound it. */
async function listenTcp(gate: PrefaceGate, addr: string, host: string, port: number, files?: TlsFiles): Promise<number> {
  if (host !== 'localhost') return listen(gate.server(files), { host, port }, addr);
  const bound = await listen(gate.server(files), { host: '127.0.0.1', port }, addr);
  await listen(gate.server(files), { host: '::1', port: bound, ipv6Only: true }, addr).catch(() => undefined);
  return bound;
}

/** server.listen(), resolving with the port (TCP). */
function listen(server: net.Server, opts: net.ListenOptions, addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new ListenError(`--listen ${addr}: ${err.message}`)));
    server.listen(opts, () => {
      // Later errors are failed accepts (EMFILE): the server keeps listening.
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
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
  if (!st.isSocket()) throw new ListenError(`--listen unix:${p}: the path exists and is not a socket; refusing to remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new ListenError(`--listen unix:${p}: another process is serving this socket`);
  fs.unlinkSync(p);
}
