/**
 * Errors about malformed input name what is wrong in words a user can act on: the missing field of a bundle as
 * a path, a key file that is not a PEM public key (not an OpenSSL decoder code).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { bundleToJSON, toMessageSignatureBundle } from '@sigstore/bundle';
import { describe, expect, it } from 'vitest';
import { BundleVerifier, buildTrustMaterial, parseBundleStrict, parseTrustedRoot } from '../src/index.js';

function trustedRoot(): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: 'http://127.0.0.1:1',
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start: '2026-01-01T00:00:00Z' },
        },
        logId: { keyId: 'AAAA' },
      },
    ],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
}

/** A v0.3 message-signature bundle whose one log entry has a promise but no inclusion proof. */
function bundleWithoutInclusionProof(): Record<string, unknown> {
  const bundle = toMessageSignatureBundle({
    digest: randomBytes(32),
    signature: randomBytes(70),
    certificate: randomBytes(300),
    certificateChain: false,
  });
  bundle.verificationMaterial.tlogEntries.push({
    logIndex: '1',
    logId: { keyId: randomBytes(32) },
    kindVersion: { kind: 'hashedrekord', version: '0.0.1' },
    integratedTime: '1795923536',
    inclusionPromise: { signedEntryTimestamp: randomBytes(70) },
    inclusionProof: undefined,
    canonicalizedBody: Buffer.from('{}'),
  });
  return bundleToJSON(bundle) as unknown as Record<string, unknown>;
}

describe('a bundle missing a field', () => {
  const path = 'verificationMaterial.tlogEntries[0].inclusionProof';

  it('BundleVerifier names the field', () => {
    const v = new BundleVerifier(trustedRoot());
    expect(() =>
      v.verify(bundleWithoutInclusionProof(), { artifact: Buffer.from('x'), allowAnyIdentity: true }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_BUNDLE_MALFORMED', message: expect.stringContaining(path) }));
  });

  it('parseBundleStrict names the field', () => {
    const bytes = Buffer.from(JSON.stringify(bundleWithoutInclusionProof()));
    expect(() => parseBundleStrict(bytes)).toThrow(
      expect.objectContaining({ code: 'VERIFY_BUNDLE_MALFORMED', message: expect.stringContaining(path) }),
    );
  });
});

describe('a verification key that is not a PEM public key', () => {
  it('is refused as VERIFY_PUBLIC_KEY saying so, not with an OpenSSL decoder code', () => {
    const root = parseTrustedRoot(trustedRoot());
    for (const bad of ['hello', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n']) {
      let err: Error & { code?: string } = new Error('accepted');
      try {
        buildTrustMaterial(root, { '': bad });
      } catch (e) {
        err = e as Error & { code?: string };
      }
      expect(err).toMatchObject({ code: 'VERIFY_PUBLIC_KEY' });
      expect(err.message).toContain('not a PEM public key');
      expect(err.message).not.toMatch(/error:[0-9A-F]{8}|DECODER|routines/);
    }
  });

  it('refuses a private key given as the verification key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => buildTrustMaterial(parseTrustedRoot(trustedRoot()), { '': pem })).toThrow(
      expect.objectContaining({ code: 'VERIFY_PUBLIC_KEY', message: expect.stringMatching(/private key/) }),
    );
  });
});
