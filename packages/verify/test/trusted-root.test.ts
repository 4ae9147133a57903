import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseTrustedRoot, buildTrustMaterial } from '../src/trusted-root.js';

function root(): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: 'http://127.0.0.1:1',
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: der.toString('base64'),
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

describe('parseTrustedRoot', () => {
  it('accepts a well-formed root', () => {
    expect(parseTrustedRoot(root()).tlogs).toHaveLength(1);
  });

  it('refuses an unknown media type', () => {
    expect(() => parseTrustedRoot({ ...root(), mediaType: 'application/json' })).toThrow(
      expect.objectContaining({ code: 'VERIFY_TRUSTED_ROOT' }),
    );
  });

  it('refuses a log key without validFor.start, naming it', () => {
    const r = root() as { tlogs: Array<{ publicKey: { validFor?: unknown } }> };
    delete r.tlogs[0]!.publicKey.validFor;
    expect(() => parseTrustedRoot(r)).toThrow(/tlogs\[0\]\.publicKey\.validFor\.start/);
  });

  it('refuses a root with no log', () => {
    expect(() => parseTrustedRoot({ ...root(), tlogs: [] })).toThrow(
      expect.objectContaining({ code: 'VERIFY_TRUSTED_ROOT' }),
    );
  });

  it('refuses non-objects', () => {
    expect(() => parseTrustedRoot('x')).toThrow(expect.objectContaining({ code: 'VERIFY_TRUSTED_ROOT' }));
    expect(() => parseTrustedRoot(null)).toThrow(expect.objectContaining({ code: 'VERIFY_TRUSTED_ROOT' }));
  });
});

describe('buildTrustMaterial', () => {
  it('finds an out-of-band key by hint, or the only key whatever the hint', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const one = buildTrustMaterial(parseTrustedRoot(root()), { k1: pem });
    expect(one.publicKey('').publicKey.asymmetricKeyType).toBe('ec');
    const { publicKey: other } = generateKeyPairSync('ed25519');
    const two = buildTrustMaterial(parseTrustedRoot(root()), {
      k1: pem,
      k2: other.export({ type: 'spki', format: 'pem' }).toString(),
    });
    expect(two.publicKey('k2').publicKey.asymmetricKeyType).toBe('ed25519');
    expect(() => two.publicKey('nope')).toThrow(expect.objectContaining({ code: 'VERIFY_PUBLIC_KEY' }));
  });
});
