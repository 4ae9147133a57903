import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { canonicalBytes, INTOTO_PAYLOAD_TYPE, signDsse, type Statement } from '@airlock/core';
import type { ManifestSigner } from '../../src/index.js';

/**
 * A stand-in for the Sigstore signer: DSSE with Ed25519 (deterministic signatures, so bundles stay byte-identical
 * across runs), wrapped in the shape of a Sigstore bundle v0.3 with a public-key hint.
 */
export function testSigner(): ManifestSigner & { publicKey: KeyObject; statements: Statement[] } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const statements: Statement[] = [];
  return {
    publicKey,
    statements,
    async attest(statement: Statement) {
      statements.push(statement);
      return {
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: { publicKey: { hint: 'airlock-test' } },
        dsseEnvelope: signDsse(INTOTO_PAYLOAD_TYPE, canonicalBytes(statement), privateKey, 'airlock-test'),
      };
    },
  };
}
