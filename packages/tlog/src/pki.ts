import {
  constants,
  createHash,
  createPublicKey,
  publicDecrypt,
  timingSafeEqual,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { verifyP256Prehashed } from './ecdsa-p256.js';
import { TlogError } from './errors.js';

/**
 * Verifier material in proposed entries: PEM certificate(s) or a PEM SPKI public key, as Rekor's `pki/x509`
 * accepts it. The canonical form (what goes into the log) is the re-encoded PEM, as Rekor's `CanonicalValue()`:
 * the certificate's DER as received, or the public key re-marshalled.
 */
export interface VerifierKey {
  kind: 'certificate' | 'publicKey';
  key: KeyObject;
  /** Canonical PEM (64-column base64 lines, trailing newline), as Go's `pem.Encode` writes it. */
  canonicalPem: string;
  /** Hex SHA-256 of the canonical PEM: the search-index key for this signer (Rekor hashes the same bytes). */
  fingerprint: string;
}

export type PrehashAlgorithm = 'sha256' | 'sha384' | 'sha512';

const MAX_PEM_BYTES = 64 * 1024;
const MAX_CERTS = 10;
const MIN_RSA_BITS = 2048;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END \1-----/g;

function invalid(message: string): never {
  throw new TlogError('TLOG_INVALID_ENTRY', message);
}

/** Go `pem.Encode`: header, base64 in 64-character lines, footer, each line ending in '\n'. */
export function pemEncode(type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${type}-----\n${lines.join('\n')}${lines.length ? '\n' : ''}-----END ${type}-----\n`;
}

function decodePemBlocks(text: string, what: string): Array<{ type: string; der: Buffer }> {
  const blocks: Array<{ type: string; der: Buffer }> = [];
  let last = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (text.slice(last, m.index).trim() !== '') invalid(`${what}: unexpected text outside PEM blocks`);
    const b64 = m[2]!.replace(/[\r\n]/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
      invalid(`${what}: PEM body is not base64`);
    blocks.push({ type: m[1]!, der: Buffer.from(b64, 'base64') });
    last = m.index + m[0].length;
    if (blocks.length > MAX_CERTS) invalid(`${what}: more than ${MAX_CERTS} PEM blocks`);
  }
  if (text.slice(last).trim() !== '') invalid(`${what}: unexpected text outside PEM blocks`);
  if (blocks.length === 0) invalid(`${what}: not a PEM certificate or public key`);
  return blocks;
}

function checkKeyType(key: KeyObject, what: string): void {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1' && curve !== 'secp384r1' && curve !== 'secp521r1')
      invalid(`${what}: unsupported EC curve ${curve ?? 'unknown'}`);
    return;
  }
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) invalid(`${what}: RSA key of ${bits} bits is too small (minimum ${MIN_RSA_BITS})`);
    return;
  }
  if (type === 'ed25519') return;
  invalid(`${what}: unsupported key type ${type ?? 'unknown'}`);
}

/** Parses PEM text (one or more CERTIFICATE blocks, leaf first, or one PUBLIC KEY block). */
export function parseVerifierPem(pem: string, what: string): VerifierKey {
  if (Buffer.byteLength(pem, 'utf8') > MAX_PEM_BYTES) invalid(`${what}: larger than ${MAX_PEM_BYTES} bytes`);
  const blocks = decodePemBlocks(pem, what);
  let kind: VerifierKey['kind'];
  let key: KeyObject;
  let canonicalPem: string;
  if (blocks.every((b) => b.type === 'CERTIFICATE')) {
    const certs = blocks.map((b, i) => {
      try {
        return new X509Certificate(b.der);
      } catch (err) {
        throw new TlogError('TLOG_INVALID_ENTRY', `${what}: certificate ${i} does not parse`, { cause: err });
      }
    });
    kind = 'certificate';
    key = certs[0]!.publicKey;
    canonicalPem = blocks.map((b) => pemEncode('CERTIFICATE', b.der)).join('');
  } else if (blocks.length === 1 && blocks[0]!.type === 'PUBLIC KEY') {
    try {
      key = createPublicKey({ key: blocks[0]!.der, format: 'der', type: 'spki' });
    } catch (err) {
      throw new TlogError('TLOG_INVALID_ENTRY', `${what}: public key does not parse`, { cause: err });
    }
    kind = 'publicKey';
    canonicalPem = pemEncode('PUBLIC KEY', key.export({ type: 'spki', format: 'der' }));
  } else {
    invalid(
      `${what}: expected CERTIFICATE blocks or one PUBLIC KEY block, got ${blocks.map((b) => b.type).join(', ')}`,
    );
  }
  checkKeyType(key, what);
  return { kind, key, canonicalPem, fingerprint: createHash('sha256').update(canonicalPem).digest('hex') };
}

/** Rekor carries PEM as standard base64 (`strfmt.Base64`). */
export function decodeStdBase64(value: unknown, what: string, maxBytes: number): Buffer {
  if (typeof value !== 'string' || value === '') invalid(`${what} is missing`);
  const s = value as string;
  if (s.length > Math.ceil(maxBytes / 3) * 4) invalid(`${what} is larger than ${maxBytes} bytes`);
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) invalid(`${what} is not standard base64`);
  return Buffer.from(s, 'base64');
}

export function parseVerifierBase64(value: unknown, what: string): VerifierKey {
  const cached = typeof value === 'string' ? recentVerifiers.get(value) : undefined;
  if (cached) return cached;
  const bytes = decodeStdBase64(value, what, MAX_PEM_BYTES);
  const parsed = parseVerifierPem(bytes.toString('utf8'), what);
  recentVerifiers.set(value as string, parsed);
  return parsed;
}

/**
 * A small least-recently-used map. Parsing a key or certificate (OpenSSL 3's decoder, then re-encoding for the
 * canonical form) costs several times the signature check itself, and one signer usually logs many entries in a
 * row; the cached value is a pure function of the exact input bytes.
 */
export class RecentMap<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

/** Parsed verifiers by their base64 PEM as proposed (only successfully parsed ones are kept). */
const recentVerifiers = new RecentMap<VerifierKey>(256);

const DIGEST_INFO_PREFIX: Record<PrehashAlgorithm, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

/** Uncompressed points of EC keys already seen (verifier keys come from the parse cache, so they repeat). */
const points = new WeakMap<KeyObject, Uint8Array>();

function ecPoint(key: KeyObject): Uint8Array {
  let point = points.get(key);
  if (!point) points.set(key, (point = exportEcPoint(key)));
  return point;
}

function exportEcPoint(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string')
    throw new TlogError('TLOG_INVALID_ENTRY', 'EC key without coordinates');
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}

/**
 * Verifies a signature over an already-computed digest (hashedrekord). node:crypto cannot do this for ECDSA (it
 * always hashes its input): P-256 has its scalar multiplications done by OpenSSL (verifyP256Prehashed, ~10x
 * faster), its rare degenerate cases and P-384/P-521 go through @noble/curves; RSA PKCS#1 v1.5 is verify-recover +
 * DigestInfo comparison. High-S ECDSA signatures are accepted, as Go's `ecdsa.VerifyASN1` does.
 */
export function verifyPrehashed(
  key: KeyObject,
  algorithm: PrehashAlgorithm,
  digest: Buffer,
  signature: Buffer,
): boolean {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = { prime256v1: p256, secp384r1: p384, secp521r1: p521 }[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (!curve) return false;
      try {
        const point = ecPoint(key);
        const fast = curve === p256 ? verifyP256Prehashed(point, digest, signature) : undefined;
        return fast ?? curve.verify(signature, digest, point, { prehash: false, lowS: false, format: 'der' });
      } catch {
        return false;
      }
    }
    case 'rsa': {
      let recovered: Buffer;
      try {
        recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
      } catch {
        return false;
      }
      const expected = Buffer.concat([DIGEST_INFO_PREFIX[algorithm], digest]);
      return recovered.length === expected.length && timingSafeEqual(recovered, expected);
    }
    default:
      throw new TlogError(
        'TLOG_UNSUPPORTED_ENTRY',
        `hashedrekord: ${key.asymmetricKeyType ?? 'this'} keys are not supported (use ECDSA or RSA)`,
      );
  }
}

/**
 * Refuses keys that cannot sign a message hashed with a Rekor v2 `keyDetails` algorithm: ECDSA and RSA PKCS#1 v1.5
 * only (checked natively by OpenSSL, which accepts high-S ECDSA as `verifyPrehashed` does).
 */
export function assertMessageSigningKey(key: KeyObject): void {
  if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa')
    throw new TlogError(
      'TLOG_UNSUPPORTED_ENTRY',
      `${key.asymmetricKeyType ?? 'this'} keys are not supported (use ECDSA or RSA)`,
    );
}
