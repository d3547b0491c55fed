// What the settings name outside themselves, read and checked before the
// kernel probe and before any listener binds: the policy file, the TLS
// files (each parsed, the key matched to the certificate), the socket
// group, and the audit file (opened: it must be open before any mark
// exists). Any problem is a ConfigError or PolicyError: one line, exit 2,
// and nothing was bound or created.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { loadPolicy, type PolicyRule } from '../api/policy-file';
import type { Logger } from '../common/log';
import { AuditTrail } from './audit';
import { ConfigError, type Config } from './config';
import type { TlsFiles } from './listeners';

export interface Prepared {
  /** Rules of --policy; none: no policy. */
  policy?: PolicyRule[];
  tls?: TlsFiles;
  /** --socket-group as a number. */
  socketGid?: number;
  /** Open; the caller closes it on every way out. */
  audit?: AuditTrail;
}

function readFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`--${flag}: ${(err as Error).message}`);
  }
}

/** A PEM problem, in the flag's words (OpenSSL's own text after the colon). */
function pem<T>(flag: string, file: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError(`--${flag}: ${file} does not hold ${what}: ${(err as Error).message}`);
  }
}

export function readTls(files: NonNullable<Config['tls']>): TlsFiles {
  const cert = readFile('tls-cert', files.cert);
  const key = readFile('tls-key', files.key);
  const clientCa = readFile('tls-client-ca', files.clientCa);
  const x509 = pem('tls-cert', files.cert, 'a PEM certificate', () => new crypto.X509Certificate(cert));
  const privateKey = pem('tls-key', files.key, 'a PEM private key (without a passphrase)', () => crypto.createPrivateKey(key));
  pem('tls-client-ca', files.clientCa, 'a PEM CA certificate', () => new crypto.X509Certificate(clientCa));
  if (!x509.checkPrivateKey(privateKey)) throw new ConfigError(`--tls-key: ${files.key} is not the key of the certificate in ${files.cert}`);
  // What the listener will build from them, so that nothing OpenSSL refuses is found only at bind time.
  pem('tls-client-ca', files.clientCa, 'a CA bundle OpenSSL takes', () => tls.createSecureContext({ cert, key, ca: clientCa }));
  return { cert, key, clientCa };
}

/** A group name (from /etc/group) or number. */
export function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = fs.readFileSync('/etc/group', 'utf8');
  } catch (err) {
    throw new ConfigError(`--socket-group: cannot look up "${group}": ${(err as Error).message}; give the group's number`);
  }
  const line = text.split('\n').find((l) => l.split(':')[0] === group);
  if (!line) throw new ConfigError(`--socket-group: no group "${group}" in /etc/group`);
  return Number(line.split(':')[2]);
}

/** Everything read and checked, or a ConfigError/PolicyError; the audit file is opened last. */
export function prepare(cfg: Config, log: Logger): Prepared {
  const out: Prepared = {};
  if (cfg.policy) out.policy = loadPolicy(cfg.policy);
  if (cfg.tls) out.tls = readTls(cfg.tls);
  if (cfg.socketGroup !== undefined) out.socketGid = groupId(cfg.socketGroup);
  if (cfg.auditFile) {
    try {
      out.audit = new AuditTrail(cfg.auditFile, log);
    } catch (err) {
      throw new ConfigError(`--audit-file: ${(err as Error).message}`);
    }
  }
  return out;
}
