import { createPublicKey, type KeyObject } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import { VerifyError } from './errors.js';
import { MemoCertificate } from './memo-certificate.js';
import type { X509Certificate } from '@sigstore/core';

export const TRUSTED_ROOT_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  'application/vnd.dev.sigstore.trustedroot.v0.2+json',
];

type Json = Record<string, unknown>;

/**
 * Parses and checks a Sigstore TrustedRoot JSON. Beyond what @sigstore/verify@3 does, it refuses an unknown
 * mediaType and any authority without `validFor.start` (verify@3 silently treats a missing start as the epoch,
 * which would make a key valid for all of history).
 */
export function parseTrustedRoot(json: unknown): TrustedRoot {
  if (typeof json !== 'object' || json === null)
    throw new VerifyError('VERIFY_TRUSTED_ROOT', 'trusted root: not a JSON object');
  const root = json as Json;
  if (!TRUSTED_ROOT_MEDIA_TYPES.includes(String(root.mediaType))) {
    throw new VerifyError('VERIFY_TRUSTED_ROOT', `trusted root: unknown mediaType '${String(root.mediaType)}'`);
  }
  const problems: string[] = [];
  const checkStart = (what: string, validFor: unknown): void => {
    const start = (validFor as Json | undefined)?.start;
    if (typeof start !== 'string' || Number.isNaN(Date.parse(start)))
      problems.push(`${what}.validFor.start missing or not a timestamp`);
  };
  const list = (k: string): Json[] => (Array.isArray(root[k]) ? (root[k] as Json[]) : []);
  list('tlogs').forEach((t, i) => checkStart(`tlogs[${i}].publicKey`, (t.publicKey as Json | undefined)?.validFor));
  list('ctlogs').forEach((t, i) => checkStart(`ctlogs[${i}].publicKey`, (t.publicKey as Json | undefined)?.validFor));
  list('certificateAuthorities').forEach((c, i) => checkStart(`certificateAuthorities[${i}]`, c.validFor));
  list('timestampAuthorities').forEach((c, i) => checkStart(`timestampAuthorities[${i}]`, c.validFor));
  if (list('tlogs').length === 0) problems.push('no transparency logs (tlogs) listed');
  if (problems.length)
    throw new VerifyError('VERIFY_TRUSTED_ROOT', `trusted root: ${problems.join('; ')}`, { details: { problems } });
  try {
    return TrustedRoot.fromJSON(json);
  } catch (cause) {
    throw new VerifyError('VERIFY_TRUSTED_ROOT', `trusted root: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Trust material for @sigstore/verify. `publicKeys` (PEM by hint) are the out-of-band keys for key-signed
 * bundles (`airlock verify --key`); a key has no validity window of its own.
 */
export function buildTrustMaterial(root: TrustedRoot, publicKeys: Record<string, string> = {}): TrustMaterial {
  const keys = Object.entries(publicKeys).map(([hint, pem]) => [hint, parsePublicKeyPem(pem, hint)] as const);
  const material = toTrustMaterial(root, (hint: string) => {
    // The hint is only a hint (often empty): with exactly one key given out of band, that key is the one meant.
    const found = keys.length === 1 ? keys[0] : keys.find(([h]) => h === hint);
    if (!found) throw new VerifyError('VERIFY_PUBLIC_KEY', `no verification key configured for hint '${hint}'`);
    return { publicKey: found[1], validFor: () => true };
  });
  // The CA and TSA certificates are this root's: re-encoded and their signatures checked once, not per bundle.
  type CertAuthority = TrustMaterial['certificateAuthorities'][number];
  const memo = (cas: CertAuthority[]): CertAuthority[] =>
    cas.map((ca) => ({ ...ca, certChain: ca.certChain.map(withKey) }));
  return {
    ...material,
    certificateAuthorities: memo(material.certificateAuthorities),
    timestampAuthorities: memo(material.timestampAuthorities),
  };
}

/**
 * The root's certificate with its key made now, so @sigstore/verify's per-bundle `createPublicKey` of it (a TSA
 * certificate's, for every token) is answered from memory (key-memo.ts). A key that does not load is left for the
 * library to refuse where it is used, as before.
 */
function withKey(cert: X509Certificate): MemoCertificate {
  const m = MemoCertificate.of(cert);
  try {
    m.publicKeyObject();
  } catch {
    // refused at use, with the library's own error
  }
  return m;
}

/**
 * A verification key: a PEM `PUBLIC KEY` (SPKI) document. A private key is refused rather than reduced to its
 * public half (it should not be lying around where verifiers run), and OpenSSL's decoder codes are not shown.
 */
export function parsePublicKeyPem(pem: string, hint = ''): KeyObject {
  const what = hint ? `verification key '${hint}'` : 'verification key';
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new VerifyError('VERIFY_PUBLIC_KEY', `${what} is a private key: give its PEM public key`);
  }
  const notPem = (): VerifyError =>
    new VerifyError('VERIFY_PUBLIC_KEY', `${what} is not a PEM public key (-----BEGIN PUBLIC KEY-----)`);
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) throw notPem();
  try {
    return createPublicKey(pem);
  } catch {
    throw notPem();
  }
}
