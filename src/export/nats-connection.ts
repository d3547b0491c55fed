// One NATS connection for the exporter (sink and cursor) and for
// `fanctl watch --from`. It never gives up reconnecting: an exporter whose
// NATS is down waits for it, its window full, while the daemon's buffer
// holds the events (or reports a gap), rather than exit and lose its place.
import * as fs from 'node:fs';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

export interface NatsOptions {
  /** nats://host:port, tls://host:port; several for a cluster. */
  servers: string[];
  /** A .creds file (JWT and NKey seed) for NATS decentralised auth. */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Client name shown by the server's monitoring (connz). */
  name?: string;
}

export class NatsConfigError extends Error {}

export function connectNats(o: NatsOptions): Promise<NatsConnection> {
  let authenticator;
  if (o.credsFile) {
    let creds: Buffer;
    try {
      creds = fs.readFileSync(o.credsFile);
    } catch (err) {
      throw new NatsConfigError(`cannot read the NATS credentials file ${o.credsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    authenticator = credsAuthenticator(creds);
  }
  return connect({
    servers: o.servers.map((s) => s.replace(/^nats:\/\//, '')),
    name: o.name,
    authenticator,
    tls: o.tls,
    // -1: forever. The first connection too: a sidecar may start before its NATS is reachable.
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
  });
}
