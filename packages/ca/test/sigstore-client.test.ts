import 'reflect-metadata';
import { createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs';
import { startIdentityIssuer, type IdentityIssuerServer } from '@airlock/identity';
import { X509Certificate as SigstoreCertificate } from '@sigstore/core';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { FulcioSigner } from '@sigstore/sign';
import { toTrustMaterial } from '@sigstore/verify';
import { verifyCertificate } from '@sigstore/verify/dist/key/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../src/authority.js';
import { startCaServer, type CaServer } from '../src/server.js';
import { makeTmpDir } from './support/ca-fixture.js';

const SUBJECT = 'spiffe://airlock.internal/ci/release';
const dirs: string[] = [];
let issuer: IdentityIssuerServer;
let rogue: IdentityIssuerServer;
let ca: CaServer;

/** A Sigstore trusted_root.json built the way `airlock up` builds it: certChain from chainDer, start from validFrom. */
function trustedRootFor(chainDer: Buffer[], validFrom: Date, uri: string): ReturnType<typeof TrustedRoot.fromJSON> {
  return TrustedRoot.fromJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    ctlogs: [],
    timestampAuthorities: [],
    certificateAuthorities: [
      {
        subject: { organization: 'airlock', commonName: 'airlock-root' },
        uri,
        certChain: { certificates: chainDer.map((d) => ({ rawBytes: d.toString('base64') })) },
        validFor: { start: validFrom.toISOString() },
      },
    ],
  });
}

beforeAll(async () => {
  issuer = await startIdentityIssuer({ dataDir: makeTmpDir('airlock-sjs-id-', dirs) });
  rogue = await startIdentityIssuer({ dataDir: makeTmpDir('airlock-sjs-rogue-', dirs) });
  ca = await startCaServer({
    dataDir: makeTmpDir('airlock-sjs-ca-', dirs),
    issuers: [{ issuerUrl: issuer.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
  });
});
afterAll(async () => {
  await Promise.all([ca?.close(), issuer?.close(), rogue?.close()]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('@sigstore/sign FulcioSigner against the CA', () => {
  it('gets a certificate, signs a blob, and @sigstore/verify chains it to our root', async () => {
    const signer = new FulcioSigner({
      fulcioBaseURL: ca.url,
      identityProvider: { getToken: () => issuer.issueToken({ subject: SUBJECT, claims: { build_trigger: 'tag' } }) },
    });
    const data = Buffer.from('airlock artifact bytes\n');
    const signed = await signer.sign(data);
    expect(signed.key.$case).toBe('x509Certificate');
    if (signed.key.$case !== 'x509Certificate') throw new Error('unreachable');
    const pem = signed.key.certificate;

    // The blob signature verifies with the certified key.
    expect(verify('sha256', data, createPublicKey(pem), signed.signature)).toBe(true);
    expect(verify('sha256', Buffer.from('other bytes'), createPublicKey(pem), signed.signature)).toBe(false);

    // verify@3's own certificate path: chain to the trusted root's CA, read identity + issuer.
    const leaf = SigstoreCertificate.parse(pem);
    const trust = toTrustMaterial(trustedRootFor(ca.chainDer, ca.validFrom, ca.url));
    const now = new Date();
    const { signer: identity, scts } = verifyCertificate(leaf, [now], trust);
    expect(scts).toEqual([]);
    expect(identity.identity?.subjectAlternativeName).toBe(SUBJECT);
    expect(identity.identity?.extensions?.issuer).toBe(issuer.url);
    expect(leaf.extSubjectAltName?.critical).toBe(true);

    // Not valid outside the 10-minute window, nor before the CA's validFor.start.
    expect(() => verifyCertificate(leaf, [new Date(now.getTime() + 11 * 60_000)], trust)).toThrow(/certificate/i);
    expect(() => verifyCertificate(leaf, [new Date(ca.validFrom.getTime() - 60_000)], trust)).toThrow();
  });

  it("a certificate does not chain to another CA's root", async () => {
    const other = await CertificateAuthority.open({
      dataDir: makeTmpDir('airlock-sjs-other-', dirs),
      issuers: [{ issuerUrl: issuer.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
    });
    const signer = new FulcioSigner({
      fulcioBaseURL: ca.url,
      identityProvider: { getToken: () => issuer.issueToken({ subject: SUBJECT }) },
    });
    const { key } = await signer.sign(Buffer.from('x'));
    if (key.$case !== 'x509Certificate') throw new Error('expected a certificate');
    const leaf = SigstoreCertificate.parse(key.certificate);
    const trust = toTrustMaterial(trustedRootFor(other.chainDer, other.validFrom, 'http://other.invalid'));
    expect(() => verifyCertificate(leaf, [new Date()], trust)).toThrow(
      expect.objectContaining({ code: 'CERTIFICATE_ERROR' }),
    );
  });

  it('surfaces the CA refusal to the sigstore client', async () => {
    const signer = new FulcioSigner({
      fulcioBaseURL: ca.url,
      identityProvider: { getToken: () => rogue.issueToken({ subject: SUBJECT }) },
    });
    const err = await signer.sign(Buffer.from('x')).then(
      () => undefined,
      (e: unknown) => e as { code?: string; cause?: { statusCode?: number; message?: string } },
    );
    expect(err?.code).toBe('CA_CREATE_SIGNING_CERTIFICATE_ERROR');
    expect(err?.cause?.statusCode).toBe(401);
    expect(err?.cause?.message).toMatch(/not trusted/);
  });
});
