import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { CoreError } from './errors.js';
import { toBase64 } from './encoding.js';

/**
 * Dead Simple Signing Envelope. https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
 * Signatures cover PAE(payloadType, payload), never the raw payload, so the type cannot be swapped.
 */
export interface DsseSignature {
  keyid?: string;
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  payload: string; // base64
  signatures: DsseSignature[];
}

export const INTOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/**
 * DSSE envelope.md: "Base64() is Base64 encoding … Either standard or URL-safe encoding is allowed." Accept both
 * (padding optional for URL-safe), but never a mix of the two alphabets. Returns undefined when not base64.
 */
export function decodeDsseBase64(s: string): Buffer | undefined {
  const standard = s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
  const urlSafe = /^[A-Za-z0-9_-]*={0,2}$/.test(s) && (s.length % 4 === 0 || !s.includes('=')) && s.length % 4 !== 1;
  if (!standard && !urlSafe) return undefined;
  return Buffer.from(s, standard ? 'base64' : 'base64url');
}

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal byte counts. */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.byteLength} `, 'utf8'),
    payload,
  ]);
}

/**
 * Node's `crypto.sign(null, …)` picks the digest from the key: SHA-256 for P-256 (the only EC curve airlock
 * issues), none for Ed25519. RSA keys would default to SHA-256 too.
 */
export function signDsse(payloadType: string, payload: Uint8Array, key: KeyObject, keyid = ''): DsseEnvelope {
  const sig = cryptoSign(signatureDigest(key), preAuthEncoding(payloadType, payload), key);
  return { payloadType, payload: toBase64(payload), signatures: [{ keyid, sig: toBase64(sig) }] };
}

// EdDSA hashes internally (Node wants `null`); everything else airlock uses signs a SHA-256 digest.
function signatureDigest(key: KeyObject): 'sha256' | null {
  return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
}

/** Structural check of an untrusted envelope (e.g. parsed JSON). */
export function parseDsseEnvelope(value: unknown): DsseEnvelope {
  const fail = (what: string): never => {
    throw new CoreError('DSSE_MALFORMED', `DSSE envelope: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('not an object');
  const v = value as Record<string, unknown>;
  if (typeof v.payloadType !== 'string' || v.payloadType === '') fail('payloadType missing');
  if (typeof v.payload !== 'string') fail('payload missing');
  if (decodeDsseBase64(v.payload as string) === undefined) fail('payload is not base64');
  if (!Array.isArray(v.signatures) || v.signatures.length === 0) fail('no signatures');
  const signatures = (v.signatures as unknown[]).map((s, i) => {
    if (typeof s !== 'object' || s === null) return fail(`signatures[${i}] not an object`);
    const sig = (s as Record<string, unknown>).sig;
    const keyid = (s as Record<string, unknown>).keyid;
    if (typeof sig !== 'string' || sig === '') return fail(`signatures[${i}].sig missing`);
    if (decodeDsseBase64(sig) === undefined) return fail(`signatures[${i}].sig is not base64`);
    if (keyid !== undefined && typeof keyid !== 'string') return fail(`signatures[${i}].keyid not a string`);
    return keyid === undefined ? { sig } : { keyid, sig };
  });
  return { payloadType: v.payloadType as string, payload: v.payload as string, signatures };
}

/**
 * Verifies that at least one signature on the envelope is valid for `key`, and that the payload type is the
 * expected one. Returns the decoded payload.
 */
export function verifyDsse(envelope: DsseEnvelope, key: KeyObject, expectedPayloadType?: string): Buffer {
  if (expectedPayloadType !== undefined && envelope.payloadType !== expectedPayloadType) {
    throw new CoreError(
      'DSSE_PAYLOAD_TYPE_MISMATCH',
      `DSSE payloadType is '${envelope.payloadType}', expected '${expectedPayloadType}'`,
    );
  }
  const payload = typeof envelope.payload === 'string' ? decodeDsseBase64(envelope.payload) : undefined;
  if (payload === undefined) throw new CoreError('DSSE_MALFORMED', 'DSSE envelope: payload is not base64');
  const pae = preAuthEncoding(envelope.payloadType, payload);
  const alg = signatureDigest(key);
  for (const s of Array.isArray(envelope.signatures) ? envelope.signatures : []) {
    const sig = typeof s?.sig === 'string' ? decodeDsseBase64(s.sig) : undefined;
    if (sig === undefined || sig.length === 0) continue;
    if (cryptoVerify(alg, pae, key, sig)) return payload;
  }
  throw new CoreError('DSSE_SIGNATURE_INVALID', 'no DSSE signature verifies with the given key');
}
