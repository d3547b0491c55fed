// Who a client is, as data: the kind of connection and the names it goes by.
// Policy rules match one whole name; names are never joined into a string
// that something later splits, so a certificate whose CN is "x,local" is
// named "CN=x,local" and nothing else.
import type { PeerCertificate } from 'node:tls';

export type IdentityKind = 'certificate' | 'local' | 'insecure';

export interface ClientIdentity {
  readonly kind: IdentityKind;
  /**
   * certificate: "CN=<subject CN>" and each SAN entry as "<type>:<value>"
   * ("URI:spiffe://...", "DNS:host", "IP Address:10.0.0.1"), possibly none;
   * local: ["local"]; insecure: ["insecure"].
   */
  readonly names: readonly string[];
}

/** The parts of a grpc-js call that say who is at the other end. */
export interface CallPeer {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate };
  getConnectionInfo?: () => { remoteAddress?: string };
}

/**
 * On TLS, the client certificate's names (a SPIFFE ID is a URI SAN); on the
 * unix socket, "local" (the socket's mode and group decide who can
 * connect); on plain TCP, "insecure".
 */
export function clientIdentity(call: CallPeer): ClientIdentity {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  if (cert) return { kind: 'certificate', names: certificateNames(cert) };
  // Only TCP connections have a remote address; a unix socket's peer has none.
  const remote = call.getConnectionInfo?.().remoteAddress;
  return remote ? { kind: 'insecure', names: ['insecure'] } : { kind: 'local', names: ['local'] };
}

export function certificateNames(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'>): string[] {
  // Node gives a repeated attribute as an array, whatever its type says.
  const cn: unknown = cert.subject?.CN;
  const cns = (Array.isArray(cn) ? cn : [cn]).filter((v): v is string => typeof v === 'string' && v !== '');
  return [...cns.map((v) => `CN=${v}`), ...parseSubjectAltName(cert.subjectaltname ?? '')];
}

/**
 * Node's subjectaltname string: entries "<type>:<value>" separated by ", ",
 * where a value holding a comma, quote or other special character is written
 * as a JSON string ("URI:\"spiffe://x/a\\u002cb\""), so splitting at ", "
 * alone would cut or mangle it. Parsing stops at anything else malformed:
 * Node wrote this string from a certificate the CA signed.
 */
export function parseSubjectAltName(s: string): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        break;
      }
      j = k + 1;
    } else {
      const end = s.indexOf(', ', j);
      j = end < 0 ? s.length : end;
      value = s.slice(colon + 1, j);
    }
    names.push(`${s.slice(i, colon)}:${value}`);
    if (j < s.length && !s.startsWith(', ', j)) break;
    i = j + 2;
  }
  return names;
}

/** A key equal for equal identities and for nothing else (per-identity limits). */
export function identityKey(id: ClientIdentity): string {
  return JSON.stringify([id.kind, id.names]);
}

/** How an identity appears in messages to clients: "local", or a certificate's names as a JSON list. */
export function describeIdentity(id: ClientIdentity): string {
  return id.kind === 'certificate' ? `certificate ${JSON.stringify(id.names)}` : JSON.stringify(id.kind);
}

/** Fields for log and audit records: `identity` is the kind, a certificate's names are a list of their own. */
export function identityFields(id: ClientIdentity): { identity: IdentityKind; names?: string[] } {
  return id.kind === 'certificate' ? { identity: id.kind, names: [...id.names] } : { identity: id.kind };
}
