import './reflect-polyfill.js';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { x509Crypto } from './crypto-provider.js';
import { CaError } from './errors.js';

const MAX_KEY_TEXT = 16 * 1024;
const MAX_POP_BYTES = 1024;
const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** A requester's public key after validation, with its canonical SPKI DER. */
export interface SubmittedKey {
  key: KeyObject;
  spki: Buffer;
  /** e.g. `ecdsa-p256`, `ed25519`, `rsa-3072`. */
  description: string;
}

/**
 * Parses `publicKey.content` the way Fulcio does (PEM first, then DER), accepting only an SPKI `PUBLIC KEY`
 * block: `createPublicKey` would otherwise happily derive a key from a certificate or a private key.
 */
export function parseSubmittedPublicKey(content: unknown): SubmittedKey {
  if (typeof content !== 'string' || content.length === 0) {
    throw new CaError('CA_REQUEST_INVALID', 'publicKeyRequest.publicKey.content must be a PEM public key');
  }
  if (content.length > MAX_KEY_TEXT)
    throw new CaError('CA_REQUEST_INVALID', `public key longer than ${MAX_KEY_TEXT} characters`);
  let der: Buffer;
  if (content.includes('-----BEGIN')) {
    der = pemBody(content, 'PUBLIC KEY');
  } else {
    const compact = content.replace(/\s+/g, '');
    if (!BASE64_RE.test(compact)) throw new CaError('CA_REQUEST_INVALID', 'public key is neither PEM nor base64 DER');
    der = Buffer.from(compact, 'base64');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CaError('CA_REQUEST_INVALID', 'public key is not a valid SubjectPublicKeyInfo', { cause: err });
  }
  return checkKey(key);
}

/** Fulcio's accepted key types (pkg/challenges): ECDSA P-256/384/521, RSA 2048–4096, Ed25519. */
export function checkKey(key: KeyObject): SubmittedKey {
  const spki = key.export({ format: 'der', type: 'spki' });
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const name =
        curve === 'prime256v1' ? 'p256' : curve === 'secp384r1' ? 'p384' : curve === 'secp521r1' ? 'p521' : undefined;
      if (!name)
        throw new CaError(
          'CA_UNSUPPORTED_KEY',
          `unsupported elliptic curve ${String(curve)} (use P-256, P-384 or P-521)`,
        );
      return { key, spki, description: `ecdsa-${name}` };
    }
    case 'ed25519':
      return { key, spki, description: 'ed25519' };
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048 || bits > 4096)
        throw new CaError('CA_UNSUPPORTED_KEY', `RSA keys must be 2048–4096 bits, got ${bits}`);
      return { key, spki, description: `rsa-${bits}` };
    }
    default:
      throw new CaError(
        'CA_UNSUPPORTED_KEY',
        `unsupported public key type ${String(key.asymmetricKeyType)} (use ECDSA, Ed25519 or RSA)`,
      );
  }
}

/** Decodes the base64 `proofOfPossession` (proto3 JSON bytes: standard or URL-safe alphabet). */
export function decodeProofOfPossession(value: unknown): Buffer {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_POP_BYTES * 2 || !BASE64_RE.test(value)) {
    throw new CaError('CA_REQUEST_INVALID', 'publicKeyRequest.proofOfPossession must be a base64 signature');
  }
  return Buffer.from(value, 'base64');
}

/**
 * Checks the proof of possession: a signature by the submitted key over the identity string (Fulcio
 * `challenges.CheckSignature`): SHA-256 for ECDSA (DER signature) and RSA PKCS#1 v1.5, pure Ed25519.
 */
export function verifyProofOfPossession(submitted: SubmittedKey, signature: Buffer, identity: string): void {
  const data = Buffer.from(identity, 'utf8');
  let ok = false;
  try {
    ok = verify(submitted.key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, submitted.key, signature);
  } catch {
    ok = false; // malformed signature encodings throw; they are simply not a proof
  }
  if (!ok) {
    throw new CaError(
      'CA_POP_INVALID',
      `proof of possession does not verify: expected a ${submitted.description} signature over the identity ${JSON.stringify(identity)}`,
    );
  }
}

/**
 * Parses a PKCS#10 CSR (PEM, or base64 of PEM/DER as proto3 JSON `bytes`) and checks its self-signature, which is
 * the proof of possession in this flow. Subject and requested extensions are ignored, as in Fulcio.
 */
export async function parseCsr(value: unknown): Promise<SubmittedKey> {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_TEXT * 2) {
    throw new CaError('CA_REQUEST_INVALID', 'certificateSigningRequest must be a PEM CSR');
  }
  let der: Buffer;
  if (value.includes('-----BEGIN')) {
    der = pemBody(value, 'CERTIFICATE REQUEST');
  } else {
    const compact = value.replace(/\s+/g, '');
    if (!BASE64_RE.test(compact))
      throw new CaError('CA_CSR_INVALID', 'certificateSigningRequest is neither PEM nor base64');
    const decoded = Buffer.from(compact, 'base64');
    const text = decoded.toString('latin1');
    der = text.includes('-----BEGIN') ? pemBody(text, 'CERTIFICATE REQUEST') : decoded;
  }
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new Pkcs10CertificateRequest(der);
  } catch (err) {
    throw new CaError('CA_CSR_INVALID', 'certificateSigningRequest is not a valid PKCS#10 request', { cause: err });
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new CaError('CA_CSR_INVALID', 'CSR public key is not a valid SubjectPublicKeyInfo', { cause: err });
  }
  const submitted = checkKey(key);
  let signed = false;
  try {
    signed = await csr.verify(x509Crypto);
  } catch {
    signed = false;
  }
  if (!signed) throw new CaError('CA_POP_INVALID', 'CSR signature does not verify with its own public key');
  return submitted;
}

/** Extracts the DER of the single PEM block labelled `label`; anything else is refused. */
function pemBody(text: string, label: string): Buffer {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
  const blocks = [...text.matchAll(re)];
  if (blocks.length !== 1) throw new CaError('CA_REQUEST_INVALID', `expected exactly one PEM block (${label})`);
  const [, begin, body, end] = blocks[0]!;
  if (begin !== label || end !== label) {
    throw new CaError('CA_REQUEST_INVALID', `expected a "${label}" PEM block, got "${String(begin)}"`);
  }
  const compact = (body ?? '').replace(/\s+/g, '');
  if (!BASE64_RE.test(compact)) throw new CaError('CA_REQUEST_INVALID', `${label} PEM body is not base64`);
  return Buffer.from(compact, 'base64');
}
