import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromNixBase32, toNixBase32 } from '../src/digest.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Reference: nix's printHash32 treats the hash as a little-endian integer and prints 5-bit groups from the
 * most significant end. Written independently of the implementation under test (BigInt arithmetic).
 */
function referenceNix32(bytes: Uint8Array): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let i = len - 1; i >= 0; i--) out += alphabet[Number((n >> BigInt(5 * i)) & 31n)];
  return out;
}

describe('Nix base32', () => {
  it('matches nix for sha256 of the empty string and of "hello"', () => {
    // `nix-hash --type sha256 --to-base32 e3b0c442…` and the `nix hash to-base32` docs example for "hello".
    expect(toNixBase32(sha256(''))).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    expect(toNixBase32(sha256('hello'))).toBe('094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic');
    expect(fromNixBase32('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73', 32).equals(sha256(''))).toBe(true);
  });

  it('has the lengths nix uses: 32 chars for sha1, 52 for sha256, 103 for sha512', () => {
    expect(toNixBase32(Buffer.alloc(20))).toHaveLength(32);
    expect(toNixBase32(Buffer.alloc(32))).toHaveLength(52);
    expect(toNixBase32(Buffer.alloc(64))).toHaveLength(103);
    expect(toNixBase32(Buffer.alloc(32))).toBe('0'.repeat(52));
  });

  it.each([20, 32, 48, 64])('round-trips random %i-byte values and agrees with the reference', (size) => {
    for (let i = 0; i < 50; i++) {
      const b = randomBytes(size);
      const s = toNixBase32(b);
      expect(s).toBe(referenceNix32(b));
      expect(s).toMatch(/^[0-9a-df-np-sv-z]+$/); // no e, o, u, t
      expect(fromNixBase32(s, size).equals(b)).toBe(true);
    }
    const ones = Buffer.alloc(size, 0xff);
    expect(fromNixBase32(toNixBase32(ones), size).equals(ones)).toBe(true);
  });

  it('rejects characters outside the alphabet', () => {
    const good = toNixBase32(sha256(''));
    for (const c of ['e', 'o', 't', 'u', 'A', '-', ' ']) {
      expect(
        codeOf(() => fromNixBase32(c + good.slice(1), 32)),
        c,
      ).toBe('DIGEST_MALFORMED');
    }
  });

  it('rejects the wrong length', () => {
    const good = toNixBase32(sha256(''));
    expect(codeOf(() => fromNixBase32(good.slice(1), 32))).toBe('DIGEST_MALFORMED');
    expect(codeOf(() => fromNixBase32(`${good}0`, 32))).toBe('DIGEST_MALFORMED');
    expect(codeOf(() => fromNixBase32(good, 20))).toBe('DIGEST_MALFORMED');
  });

  it('rejects non-zero padding bits (a second spelling of the same hash)', () => {
    // 52 chars carry 260 bits for 256: the top 4 bits of the leading character must be zero, so only 0/1 may lead.
    const good = toNixBase32(sha256(''));
    expect(good[0]).toMatch(/[01]/);
    expect(codeOf(() => fromNixBase32(`2${good.slice(1)}`, 32))).toBe('DIGEST_MALFORMED');
    expect(codeOf(() => fromNixBase32(`z${good.slice(1)}`, 32))).toBe('DIGEST_MALFORMED');
  });
});
