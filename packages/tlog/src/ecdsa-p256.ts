import { createECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';

/**
 * ECDSA P-256 verification of a signature over a digest the caller computed (hashedrekord), with OpenSSL doing the
 * scalar multiplications: node:crypto verifies only over messages it hashes itself, and @noble/curves' verify in
 * JavaScript costs ~4 ms on the bench machine, where OpenSSL verifies a message in ~0.1 ms.
 *
 * SEC 1 §4.1.4 computes R = u1·G + u2·Q with u1 = h/s, u2 = r/s and accepts iff x(R) mod n = r. Here
 * R = u2·(w·G + Q) with w = u1/u2 = h/r: ECDH gives w·G (the public key of private key w) and the x-coordinate of
 * u2·Q' for any point Q' (the shared secret), so one affine addition Q' = w·G + Q in JavaScript is all that is left.
 * Degenerate cases (h ≡ 0, w·G = ±Q) return `undefined`: the caller verifies those another way.
 */

const { Fp, Fn } = p256.Point;
const CURVE = 'prime256v1';
const COORD_BYTES = 32;

/** A verdict, or `undefined` for a degenerate case this path does not handle. */
export type FastVerdict = boolean | undefined;

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function scalarBytes(k: bigint): Buffer {
  return Buffer.from(k.toString(16).padStart(COORD_BYTES * 2, '0'), 'hex');
}

/** An ECDH context whose private key is `k` (1 ≤ k < n): its public key is k·G. */
function ecdhWith(k: bigint): ReturnType<typeof createECDH> {
  const ecdh = createECDH(CURVE);
  ecdh.setPrivateKey(scalarBytes(k));
  return ecdh;
}

/** Q + P for affine points with different x (textbook chord rule), as an uncompressed point. */
function addDistinct(q: { x: bigint; y: bigint }, p: { x: bigint; y: bigint }): Buffer {
  const lambda = Fp.div(Fp.sub(p.y, q.y), Fp.sub(p.x, q.x));
  const x = Fp.sub(Fp.sub(Fp.sqr(lambda), q.x), p.x);
  const y = Fp.sub(Fp.mul(lambda, Fp.sub(q.x, x)), q.y);
  return Buffer.concat([Buffer.from([4]), scalarBytes(x), scalarBytes(y)]);
}

function affine(uncompressed: Uint8Array): { x: bigint; y: bigint } {
  return {
    x: toBigInt(uncompressed.subarray(1, 1 + COORD_BYTES)),
    y: toBigInt(uncompressed.subarray(1 + COORD_BYTES)),
  };
}

/**
 * Verifies a DER ECDSA signature over `digest` (bits2int as SEC 1 and @noble/curves: its leftmost 256 bits, mod
 * n) with `publicKey`, the uncompressed point of a parsed P-256 key. High-S signatures are accepted.
 */
export function verifyP256Prehashed(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): FastVerdict {
  if (publicKey.length !== 1 + 2 * COORD_BYTES || publicKey[0] !== 4) return undefined;
  let r: bigint;
  let s: bigint;
  try {
    ({ r, s } = p256.Signature.fromBytes(signature, 'der')); // DER, 1 ≤ r, s < n (as noble's verify)
  } catch {
    return false;
  }
  const delta = digest.length * 8 - Fn.BITS;
  const h = Fn.create(delta > 0 ? toBigInt(digest) >> BigInt(delta) : toBigInt(digest));
  if (h === 0n) return undefined;
  const q = affine(publicKey);
  const wG = affine(ecdhWith(Fn.div(h, r)).getPublicKey());
  if (wG.x === q.x) return undefined; // w·G = ±Q
  let xR: bigint;
  try {
    // OpenSSL checks Q' is on the curve; R = u2·Q' ≠ O since Q' ≠ O and 0 < u2 < n.
    xR = toBigInt(ecdhWith(Fn.div(r, s)).computeSecret(addDistinct(q, wG)));
  } catch {
    return undefined;
  }
  return Fn.create(xR) === r;
}
