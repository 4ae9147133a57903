import { canonicalBytes, preAuthEncoding } from '@airlock/core';
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { TlogError } from '../errors.js';
import { hashLeaf } from '../merkle.js';
import {
  decodeStdBase64,
  pemEncode,
  RecentMap,
  assertMessageSigningKey,
  verifyPrehashed,
  type PrehashAlgorithm,
} from '../pki.js';
import { artifactKey, field, invalid, isObject, signerKey, type Json, type PreparedEntry } from './common.js';
import { prepareSync, type Preparation } from './preparation.js';

/**
 * Rekor v2 (rekor-tiles) write requests: `CreateEntryRequest` in proto3 JSON, either `hashedRekordRequestV002` or
 * the deprecated `dsseRequestV002` (what sigstore-js 4.x sends for DSSE). Both are logged as a `hashedrekord`
 * 0.0.2 entry, as rekor-tiles ≥ 2.3 stores them; a DSSE envelope becomes a hashedrekord over SHA-256(PAE) with
 * the envelope's signature. The canonical body is the RFC 8785 form of rekor-tiles' protojson `Entry`
 * (`pkg/types/hashedrekord/hashedrekord.go`).
 */
export const HASHEDREKORD_V2_API_VERSION = '0.0.2';

const MAX_SIGNATURE_BYTES = 1024;
const MAX_DER_BYTES = 64 * 1024;
const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

interface KeyDetails {
  type: 'ec' | 'rsa';
  curve?: string;
  hash: PrehashAlgorithm;
  /** The `HashAlgorithm` enum name recorded as `data.algorithm`. */
  hashName: 'SHA2_256' | 'SHA2_384' | 'SHA2_512';
}

/** The `PublicKeyDetails` this log accepts (those rekor-tiles' default algorithm registry allows, minus Ed25519ph). */
const KEY_DETAILS: Readonly<Record<string, KeyDetails>> = {
  PKIX_ECDSA_P256_SHA_256: { type: 'ec', curve: 'prime256v1', hash: 'sha256', hashName: 'SHA2_256' },
  PKIX_ECDSA_P384_SHA_384: { type: 'ec', curve: 'secp384r1', hash: 'sha384', hashName: 'SHA2_384' },
  PKIX_ECDSA_P521_SHA_512: { type: 'ec', curve: 'secp521r1', hash: 'sha512', hashName: 'SHA2_512' },
  PKIX_RSA_PKCS1V15_2048_SHA256: { type: 'rsa', hash: 'sha256', hashName: 'SHA2_256' },
  PKIX_RSA_PKCS1V15_3072_SHA256: { type: 'rsa', hash: 'sha256', hashName: 'SHA2_256' },
  PKIX_RSA_PKCS1V15_4096_SHA256: { type: 'rsa', hash: 'sha256', hashName: 'SHA2_256' },
};

const RSA_BITS: Readonly<Record<string, number>> = {
  PKIX_RSA_PKCS1V15_2048_SHA256: 2048,
  PKIX_RSA_PKCS1V15_3072_SHA256: 3072,
  PKIX_RSA_PKCS1V15_4096_SHA256: 4096,
};

interface ParsedVerifier {
  /** The verifier as it goes into the body (proto3 JSON). */
  json: Json;
  key: KeyObject;
  details: KeyDetails;
  /** Canonical PEM fingerprint (same search key as the v1 types). */
  fingerprint: string;
}

function parseVerifier(v: unknown, path: string): ParsedVerifier {
  if (!isObject(v)) invalid(`${path} is missing or not an object`);
  const obj = v as Json;
  const detailsName = obj.keyDetails;
  const details =
    typeof detailsName === 'string' && Object.hasOwn(KEY_DETAILS, detailsName) ? KEY_DETAILS[detailsName] : undefined;
  if (!details) {
    throw new TlogError(
      'TLOG_UNSUPPORTED_ENTRY',
      `${path}.keyDetails ${JSON.stringify(detailsName)?.slice(0, 40)} is not supported (supported: ${Object.keys(KEY_DETAILS).join(', ')})`,
    );
  }
  const hasCert = obj.x509Certificate !== undefined;
  if (hasCert === (obj.publicKey !== undefined)) invalid(`${path} needs exactly one of x509Certificate and publicKey`);
  const which = hasCert ? 'x509Certificate' : 'publicKey';
  const raw = field(obj, which, path).rawBytes;
  const cacheKey = `${detailsName as string} ${which} ${String(raw)}`;
  const cached = recentVerifiers.get(cacheKey);
  if (cached) return cached;
  const der = decodeStdBase64(raw, `${path}.${which}.rawBytes`, MAX_DER_BYTES);
  let key: KeyObject;
  try {
    key = hasCert ? new X509Certificate(der).publicKey : createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch (err) {
    throw new TlogError('TLOG_INVALID_ENTRY', `${path}.${which}.rawBytes does not parse`, { cause: err });
  }
  checkKeyMatches(key, details, detailsName as string, path);
  const pem = hasCert
    ? pemEncode('CERTIFICATE', der)
    : pemEncode('PUBLIC KEY', key.export({ type: 'spki', format: 'der' }));
  const parsed: ParsedVerifier = {
    json: { keyDetails: detailsName, [which]: { rawBytes: der.toString('base64') } },
    key,
    details,
    fingerprint: createHash('sha256').update(pem).digest('hex'),
  };
  recentVerifiers.set(cacheKey, parsed);
  return parsed;
}

/** Parsed verifiers by keyDetails, kind and rawBytes as proposed (see RecentMap). */
const recentVerifiers = new RecentMap<ParsedVerifier>(256);

function checkKeyMatches(key: KeyObject, details: KeyDetails, name: string, path: string): void {
  const ok =
    key.asymmetricKeyType === details.type &&
    (details.type === 'ec'
      ? key.asymmetricKeyDetails?.namedCurve === details.curve
      : key.asymmetricKeyDetails?.modulusLength === RSA_BITS[name]);
  if (!ok) invalid(`${path}: the key does not match keyDetails ${name}`);
}

function hashedRekordBody(digest: Buffer, signature: Buffer, verifier: ParsedVerifier): PreparedEntry {
  const body = canonicalBytes({
    apiVersion: HASHEDREKORD_V2_API_VERSION,
    kind: 'hashedrekord',
    spec: {
      hashedRekordV002: {
        data: { algorithm: verifier.details.hashName, digest: digest.toString('base64') },
        signature: { content: signature.toString('base64'), verifier: verifier.json },
      },
    },
  });
  return {
    kind: 'hashedrekord',
    apiVersion: HASHEDREKORD_V2_API_VERSION,
    body,
    leafHash: hashLeaf(body),
    indexKeys: [artifactKey(verifier.details.hash, digest.toString('hex')), signerKey(verifier.fingerprint)],
  };
}

const DIGEST_BYTES: Record<PrehashAlgorithm, number> = { sha256: 32, sha384: 48, sha512: 64 };

function prepareHashedRekordV2(req: Json): PreparedEntry {
  const path = 'hashedRekordRequestV002';
  const signature = field(req, 'signature', path);
  const sig = decodeStdBase64(signature.content, `${path}.signature.content`, MAX_SIGNATURE_BYTES);
  const verifier = parseVerifier(signature.verifier, `${path}.signature.verifier`);
  const digest = decodeStdBase64(req.digest, `${path}.digest`, 64);
  if (digest.length !== DIGEST_BYTES[verifier.details.hash])
    invalid(
      `${path}.digest is ${digest.length} bytes; ${verifier.details.hash} needs ${DIGEST_BYTES[verifier.details.hash]}`,
    );
  if (!verifyPrehashed(verifier.key, verifier.details.hash, digest, sig))
    throw new TlogError(
      'TLOG_SIGNATURE_INVALID',
      `${path}: the signature does not verify over the digest with the given verifier`,
    );
  return hashedRekordBody(digest, sig, verifier);
}

/** dsseRequestV002 → hashedrekord 0.0.2 over SHA-256(PAE) (rekor-tiles ≥ 2.3 client behaviour, done by the log). */
function* dsseV2Preparation(req: Json): Preparation {
  const path = 'dsseRequestV002';
  const envelope = field(req, 'envelope', path);
  if (typeof envelope.payloadType !== 'string' || envelope.payloadType === '')
    invalid(`${path}.envelope.payloadType is missing`);
  const payload = decodeStdBase64(envelope.payload, `${path}.envelope.payload`, MAX_PAYLOAD_BYTES);
  const sigs = envelope.signatures;
  // One hashedrekord entry records one signature: the bundle format allows exactly one too.
  if (!Array.isArray(sigs) || sigs.length !== 1) invalid(`${path}.envelope.signatures must hold exactly one signature`);
  const sigObj = (sigs as unknown[])[0];
  if (!isObject(sigObj)) invalid(`${path}.envelope.signatures[0] is not an object`);
  const sig = decodeStdBase64((sigObj as Json).sig, `${path}.envelope.signatures[0].sig`, MAX_SIGNATURE_BYTES);
  const rawVerifiers = req.verifiers;
  if (!Array.isArray(rawVerifiers) || rawVerifiers.length !== 1)
    invalid(`${path}.verifiers must hold exactly one verifier`);
  const verifier = parseVerifier((rawVerifiers as unknown[])[0], `${path}.verifiers[0]`);
  const pae = preAuthEncoding(envelope.payloadType as string, payload);
  const digest = createHash(verifier.details.hash).update(pae).digest();
  // The PAE is at hand, so OpenSSL verifies it (hashing it with the key's hash), the same check as over the digest.
  assertMessageSigningKey(verifier.key);
  if (!(yield { key: verifier.key, algorithm: verifier.details.hash, message: pae, signature: sig }))
    throw new TlogError('TLOG_SIGNATURE_INVALID', `${path}: the envelope signature does not verify over the PAE`);
  return hashedRekordBody(digest, sig, verifier);
}

/** Validates and verifies a Rekor v2 `CreateEntryRequest` (JSON), returning the hashedrekord 0.0.2 entry to log. */
export function prepareV2Entry(request: unknown): PreparedEntry {
  return prepareSync(v2Preparation(request));
}

/** prepareV2Entry as a `Preparation` (see preparation.ts). */
export function* v2Preparation(request: unknown): Preparation {
  if (!isObject(request)) invalid('request must be a JSON object');
  const keys = Object.keys(request as Json);
  if (keys.length !== 1) invalid('request must hold exactly one of hashedRekordRequestV002 and dsseRequestV002');
  const spec = (request as Json)[keys[0]!];
  if (!isObject(spec)) invalid(`${keys[0]} must be an object`);
  if (keys[0] === 'hashedRekordRequestV002') return prepareHashedRekordV2(spec as Json);
  if (keys[0] === 'dsseRequestV002') return yield* dsseV2Preparation(spec as Json);
  throw new TlogError(
    'TLOG_UNSUPPORTED_ENTRY',
    `unsupported request '${keys[0]!.slice(0, 40)}' (supported: hashedRekordRequestV002, dsseRequestV002)`,
  );
}
