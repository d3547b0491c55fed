// How a client reaches a target: plaintext on a unix socket (the daemon
// names those peers by SO_PEERCRED and never serves TLS there), TLS on TCP
// when TLS options are given, plaintext on TCP otherwise (a daemon started
// with --insecure on loopback).
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ClientConfigError } from './errors';

export interface TlsOptions {
  /** PEM certificate chain presented to the daemon (it asks for one with --tls-client-ca). */
  certFile?: string;
  /** PEM private key of certFile. */
  keyFile?: string;
  /** PEM CA bundle the daemon's certificate must chain to; the system's CAs when absent. */
  caFile?: string;
  /** Name the daemon's certificate must carry, when it is not the target's host (an IP address, a tunnel). */
  serverName?: string;
}

export interface Transport {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

export function isUnixTarget(target: string): boolean {
  return target.startsWith('unix:') || target.startsWith('unix-abstract:');
}

function readPem(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ClientConfigError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** The credentials and channel options for one target. Reads the TLS files now, so a bad one fails before any call. */
export function transportFor(target: string, tls?: TlsOptions): Transport {
  if (!tls || isUnixTarget(target)) return { credentials: grpc.credentials.createInsecure(), options: {} };
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
    throw new ClientConfigError('a client certificate needs its key and a key its certificate: give both or neither');
  }
  const ca = tls.caFile ? readPem('TLS CA file', tls.caFile) : null;
  const key = tls.keyFile ? readPem('TLS key file', tls.keyFile) : null;
  const cert = tls.certFile ? readPem('TLS certificate file', tls.certFile) : null;
  const options: grpc.ChannelOptions = {};
  if (tls.serverName) {
    // Both: the first is the name checked against the certificate, the second the :authority and SNI sent.
    options['grpc.ssl_target_name_override'] = tls.serverName;
    options['grpc.default_authority'] = tls.serverName;
  }
  try {
    return { credentials: grpc.credentials.createSsl(ca, key, cert), options };
  } catch (err) {
    // The PEM files were read but are not what they say (a key that does not match its certificate, a truncated file).
    throw new ClientConfigError(`the TLS files cannot be used: ${(err as Error).message}`, { cause: err });
  }
}
