// Client identity as data, and policy rules matching whole names.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { ApiError } from '../../src/api/errors';
import { certificateNames, clientIdentity, parseSubjectAltName } from '../../src/api/identity';
import { Authorizer, type PolicyRule } from '../../src/api/policy';

const rule = (match: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({ match, paths: ['/'], scopes: ['inode'], permission: false, maxWatches: 1, getInfo: true, attach: [], ...extra });

describe('unit: client identity and policy matching', () => {
  it('names a unix-socket client "local" and a plain TCP one "insecure"', () => {
    expect(clientIdentity({ getConnectionInfo: () => ({}) })).to.deep.equal({ kind: 'local', names: ['local'] });
    expect(clientIdentity({ getConnectionInfo: () => ({ remoteAddress: '127.0.0.1' }) })).to.deep.equal({ kind: 'insecure', names: ['insecure'] });
  });

  it('names a certificate client by its CN and each SAN entry, a comma in a name kept in it', () => {
    const cert = { subject: { CN: 'x,local' }, subjectaltname: 'URI:spiffe://example.org/policy, DNS:host.example, IP Address:127.0.0.1' };
    const id = clientIdentity({ getAuthContext: () => ({ sslPeerCertificate: cert as never }) });
    expect(id).to.deep.equal({ kind: 'certificate', names: ['CN=x,local', 'URI:spiffe://example.org/policy', 'DNS:host.example', 'IP Address:127.0.0.1'] });
  });

  it("reads the SAN values Node quotes (a comma, a quote) as the values they are", () => {
    // What Node 20 prints for URI.1=spiffe://x/a,b and URI.2="spiffe://x/c, DNS:evil".
    const s = 'URI:"spiffe://x/a\\u002cb", DNS:plain.example, URI:"spiffe://x/c\\u002c DNS:evil"';
    expect(parseSubjectAltName(s)).to.deep.equal(['URI:spiffe://x/a,b', 'DNS:plain.example', 'URI:spiffe://x/c, DNS:evil']);
    expect(parseSubjectAltName('')).to.deep.equal([]);
    expect(certificateNames({ subject: { CN: ['a', 'b'] } as never, subjectaltname: undefined as never })).to.deep.equal(['CN=a', 'CN=b']);
  });

  it('matches a rule against whole names: a CN of "x,local" is not "local"', () => {
    const a = new Authorizer([rule('local'), rule('CN=x,local', { getInfo: false })]);
    const comma = { kind: 'certificate' as const, names: ['CN=x,local'] };
    expect(a.ruleFor(comma)?.index).to.equal(1);
    expect(() => a.checkGetInfo(comma)).to.throw(ApiError, /policy rule #1 \("CN=x,local"\) does not allow GetInfo/);
    expect(a.ruleFor({ kind: 'local', names: ['local'] })?.index).to.equal(0);
    const only = new Authorizer([rule('local')]);
    let err: unknown;
    try {
      only.checkGetInfo(comma);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ApiError);
    expect((err as ApiError).status).to.equal(grpc.status.PERMISSION_DENIED);
    expect((err as Error).message).to.equal('no policy rule matches client certificate ["CN=x,local"]');
  });

  it('lets * in a rule span any characters of one name', () => {
    const a = new Authorizer([rule('URI:spiffe://example.org/*')]);
    expect(a.ruleFor({ kind: 'certificate', names: ['CN=p', 'URI:spiffe://example.org/policy'] })?.index).to.equal(0);
    expect(a.ruleFor({ kind: 'certificate', names: ['CN=URI:spiffe://example.org/x,y'] })).to.equal(undefined);
  });
});
