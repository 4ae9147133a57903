import { p256 } from '@noble/curves/nist.js';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyP256Prehashed } from '../src/ecdsa-p256.js';
import { verifyPrehashed, type PrehashAlgorithm } from '../src/pki.js';

const { Fn } = p256.Point;

function pointOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** The reference: @noble/curves' own SEC 1 verification (what verifyPrehashed used for every P-256 signature). */
function nobleVerdict(point: Uint8Array, digest: Uint8Array, sig: Uint8Array): boolean {
  try {
    return p256.verify(sig, digest, point, { prehash: false, lowS: false, format: 'der' });
  } catch {
    return false;
  }
}

function scalarBytes(k: bigint): Buffer {
  return Buffer.from(k.toString(16).padStart(64, '0'), 'hex');
}

/** A DER signature over a raw digest, made with noble from a node key (no hashing). */
function signDigest(privateKey: KeyObject, digest: Uint8Array): Buffer {
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return Buffer.from(p256.sign(digest, d, { prehash: false, lowS: false, format: 'der' }));
}

const keys = Array.from({ length: 3 }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }));

describe('ECDSA P-256 over a digest with OpenSSL scalar multiplications', () => {
  it('agrees with @noble/curves on valid, mutated, high-S, wrong-key and other-digest signatures', () => {
    const algorithms: PrehashAlgorithm[] = ['sha256', 'sha384', 'sha512'];
    let valid = 0;
    for (let i = 0; i < 240; i++) {
      const { privateKey, publicKey } = keys[i % keys.length]!;
      const alg = algorithms[i % algorithms.length]!;
      const data = randomBytes(24);
      const digest = createHash(alg).update(data).digest();
      let sig = sign(alg, data, privateKey);
      let point = pointOf(publicKey);
      switch (i % 6) {
        case 1:
          digest[i % digest.length]! ^= 1;
          break;
        case 2:
          sig[sig.length - 1 - (i % 4)]! ^= 0x10;
          break;
        case 3:
          point = pointOf(keys[(i + 1) % keys.length]!.publicKey);
          break;
        case 4: {
          const { r, s } = p256.Signature.fromBytes(sig, 'der');
          sig = Buffer.from(new p256.Signature(r, Fn.neg(s)).toBytes('der'));
          break;
        }
        default:
      }
      const expected = nobleVerdict(point, digest, sig);
      if (expected) valid++;
      expect(verifyP256Prehashed(point, digest, sig), `case ${i}`).toBe(expected);
    }
    expect(valid).toBeGreaterThan(100); // valid ones: plain and high-S
  });

  it('refuses a signature over the negated digest (valid for the negated key, the sign x-coordinates leave open)', () => {
    const { privateKey, publicKey } = keys[0]!;
    const digest = createHash('sha256').update('artifact').digest();
    const negated = scalarBytes(Fn.neg(Fn.create(BigInt(`0x${digest.toString('hex')}`))));
    const sig = signDigest(privateKey, negated);
    expect(verifyP256Prehashed(pointOf(publicKey), negated, sig)).toBe(true);
    expect(verifyP256Prehashed(pointOf(publicKey), digest, sig)).toBe(false);
  });

  it('reduces a digest at or above the group order mod n, as noble', () => {
    const { privateKey, publicKey } = keys[1]!;
    const high = Buffer.alloc(32, 0xff);
    const sig = signDigest(privateKey, high);
    expect(verifyP256Prehashed(pointOf(publicKey), high, sig)).toBe(true);
    expect(nobleVerdict(pointOf(publicKey), high, sig)).toBe(true);
  });

  it('leaves a digest ≡ 0 mod n to the caller, and verifyPrehashed still decides it (noble)', () => {
    const { privateKey, publicKey } = keys[2]!;
    const zero = scalarBytes(Fn.ORDER); // bits2int = n ≡ 0
    const sig = signDigest(privateKey, zero);
    expect(verifyP256Prehashed(pointOf(publicKey), zero, sig)).toBeUndefined();
    expect(verifyPrehashed(publicKey, 'sha256', zero, sig)).toBe(true);
    expect(verifyPrehashed(keys[0]!.publicKey, 'sha256', zero, sig)).toBe(false);
  });

  it('refuses malformed DER and out-of-range r, s', () => {
    const { privateKey, publicKey } = keys[0]!;
    const digest = createHash('sha256').update('x').digest();
    const sig = signDigest(privateKey, digest);
    const point = pointOf(publicKey);
    expect(verifyP256Prehashed(point, digest, sig.subarray(0, sig.length - 1))).toBe(false);
    expect(verifyP256Prehashed(point, digest, Buffer.concat([sig, Buffer.from([0])]))).toBe(false);
    const zeroS = new p256.Signature(1n, 1n).toBytes('der');
    zeroS[zeroS.length - 1] = 0; // s = 0
    expect(verifyP256Prehashed(point, digest, zeroS)).toBe(false);
    expect(verifyP256Prehashed(point, digest, Buffer.alloc(0))).toBe(false);
  });

  it('verifyPrehashed (the hashedrekord check) gives the same verdicts with the OpenSSL path', () => {
    const { privateKey, publicKey } = keys[1]!;
    const data = Buffer.from('hashedrekord artifact');
    const digest = createHash('sha256').update(data).digest();
    const sig = sign('sha256', data, privateKey);
    expect(verifyPrehashed(publicKey, 'sha256', digest, sig)).toBe(true);
    expect(verifyPrehashed(keys[0]!.publicKey, 'sha256', digest, sig)).toBe(false);
    expect(verifyPrehashed(publicKey, 'sha256', createHash('sha256').update('other').digest(), sig)).toBe(false);
  });
});
