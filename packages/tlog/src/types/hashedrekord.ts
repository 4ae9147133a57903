import { canonicalBytes } from '@airlock/core';
import { TlogError } from '../errors.js';
import { hashLeaf } from '../merkle.js';
import { decodeStdBase64, parseVerifierBase64, verifyPrehashed, type PrehashAlgorithm } from '../pki.js';
import { artifactKey, field, invalid, signerKey, type Json, type PreparedEntry } from './common.js';

/**
 * hashedrekord 0.0.1 (rekor `pkg/types/hashedrekord/v0.0.1/entry.go`): a signature over a digest, with the signer's
 * certificate or public key. Canonical spec: `{data:{hash:{algorithm,value}}, signature:{content, publicKey:{content}}}`
 * with the signature re-encoded and the key in its canonical PEM form.
 */
export const HASHEDREKORD_API_VERSION = '0.0.1';

const DIGEST_HEX_LENGTH: Record<PrehashAlgorithm, number> = { sha256: 64, sha384: 96, sha512: 128 };
const MAX_SIGNATURE_BYTES = 1024;

export function prepareHashedRekord(spec: Json): PreparedEntry {
  const data = field(spec, 'data', 'spec');
  const hash = field(data, 'hash', 'spec.data');
  const algorithm = hash.algorithm;
  if (algorithm !== 'sha256' && algorithm !== 'sha384' && algorithm !== 'sha512') {
    invalid(
      `spec.data.hash.algorithm must be sha256, sha384 or sha512, got ${JSON.stringify(algorithm)?.slice(0, 40)}`,
    );
  }
  const alg = algorithm as PrehashAlgorithm;
  const value = typeof hash.value === 'string' ? hash.value.toLowerCase() : undefined;
  if (value === undefined || value.length !== DIGEST_HEX_LENGTH[alg] || !/^[0-9a-f]+$/.test(value)) {
    invalid(`spec.data.hash.value must be ${DIGEST_HEX_LENGTH[alg]} hex characters for ${alg}`);
  }
  const signature = field(spec, 'signature', 'spec');
  const sigBytes = decodeStdBase64(signature.content, 'spec.signature.content', MAX_SIGNATURE_BYTES);
  const publicKey = field(signature, 'publicKey', 'spec.signature');
  const verifier = parseVerifierBase64(publicKey.content, 'spec.signature.publicKey.content');
  if (!verifyPrehashed(verifier.key, alg, Buffer.from(value!, 'hex'), sigBytes)) {
    throw new TlogError(
      'TLOG_SIGNATURE_INVALID',
      `hashedrekord: the signature does not verify over ${alg}:${value} with the given ${verifier.kind === 'certificate' ? 'certificate' : 'public key'}`,
    );
  }
  const body = canonicalBytes({
    apiVersion: HASHEDREKORD_API_VERSION,
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: alg, value } },
      signature: {
        content: sigBytes.toString('base64'),
        publicKey: { content: Buffer.from(verifier.canonicalPem).toString('base64') },
      },
    },
  });
  return {
    kind: 'hashedrekord',
    apiVersion: HASHEDREKORD_API_VERSION,
    body,
    leafHash: hashLeaf(body),
    indexKeys: [artifactKey(alg, value!), signerKey(verifier.fingerprint)],
  };
}
