/**
 * ECDSA P-256 signatures that are valid for more than one (digest, key) pair. A signer who holds the private key
 * can make them, so a verifier may not assume that "the signature verifies over the artifact" and "the log entry
 * verifies" speak about the same digest or the same key: each must be compared.
 *
 * For a signature (r, s) verification computes R = (e·G + r·Q) / s and checks R.x = r. The points R and −R share
 * their x-coordinate, so (r, s) also verifies for any (e', Q') with e' + r·q' = −(e + r·q) (mod n):
 *  - same key, another digest: e' = −e − 2·r·q;
 *  - same digest, another key: q' = −2·e/r − q.
 */
import { createECDH, createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const mod = (a: bigint): bigint => ((a % N) + N) % N;
const big = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
const bytes32 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');

function inverse(a: bigint): bigint {
  let [result, base, exp] = [1n, mod(a), N - 2n];
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % N;
    base = (base * base) % N;
    exp >>= 1n;
  }
  return result;
}

function derInteger(v: bigint): Buffer {
  let b = Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
  while (b.length > 1 && b[0] === 0 && b[1]! < 0x80) b = b.subarray(1);
  if (b[0]! >= 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return Buffer.concat([Buffer.from([0x02, b.length]), b]);
}

function derSignature(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function scalarOf(key: KeyObject): bigint {
  const d = key.export({ format: 'jwk' }).d;
  if (typeof d !== 'string') throw new Error('not an EC private key');
  return big(Buffer.from(d, 'base64url'));
}

/** A P-256 private key with the given scalar. */
function keyFromScalar(d: bigint): KeyObject {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(bytes32(d));
  const point = ecdh.getPublicKey();
  return createPrivateKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      d: bytes32(d).toString('base64url'),
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33, 65).toString('base64url'),
    },
    format: 'jwk',
  });
}

/** A fresh nonce k and r = (k·G).x mod n. */
function nonce(): { k: bigint; r: bigint } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { k: big(ecdh.getPrivateKey()), r: mod(big(ecdh.getPublicKey().subarray(1, 33))) };
}

function signWithNonce(e: bigint, d: bigint, k: bigint, r: bigint): bigint {
  return mod((e + r * d) * inverse(k));
}

/** A signature over `message` (ECDSA-SHA256 with `key`) that also verifies over `otherDigest` prehashed. */
export function dualDigestSignature(key: KeyObject, messageDigest: Buffer): { signature: Buffer; otherDigest: Buffer } {
  const d = scalarOf(key);
  const e = big(messageDigest);
  const { k, r } = nonce();
  const s = signWithNonce(e, d, k, r);
  return { signature: derSignature(r, s), otherDigest: bytes32(mod(-e - 2n * r * d)) };
}

/** A signature over `messageDigest` with `key` that also verifies over it with another key, returned too. */
export function dualKeySignature(key: KeyObject, messageDigest: Buffer): { signature: Buffer; otherKey: KeyObject } {
  const d = scalarOf(key);
  const e = big(messageDigest);
  const { k, r } = nonce();
  const s = signWithNonce(e, d, k, r);
  const other = mod(-2n * e * inverse(r) - d);
  return { signature: derSignature(r, s), otherKey: keyFromScalar(other) };
}

/** Self-check of the construction: `signature` verifies over `message` with the public half of `key`. */
export function verifiesOver(message: Buffer, key: KeyObject, signature: Buffer): boolean {
  return verify('sha256', message, createPublicKey(key), signature);
}
