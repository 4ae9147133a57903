import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assertDigestSetMatches,
  digestBytes,
  digestFile,
  digestLength,
  digestsEqual,
  digestStream,
  HashingTransform,
  isDigestAlgorithm,
  MultiHasher,
  parseDigestString,
  parseSri,
  sha256Hex,
  strongestDigest,
  toSri,
  type DigestAlgorithm,
} from '../src/digest.js';
import { AirlockError } from '../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

// FIPS 180 / RFC 6234 vectors (empty string and "abc").
const VECTORS: Record<DigestAlgorithm, { empty: string; abc: string }> = {
  sha1: { empty: 'da39a3ee5e6b4b0d3255bfef95601890afd80709', abc: 'a9993e364706816aba3e25717850c26c9cd0d89d' },
  sha256: {
    empty: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    abc: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  },
  sha384: {
    empty: '38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b',
    abc: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
  },
  sha512: {
    empty:
      'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
    abc: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
  },
};
const ALGS: DigestAlgorithm[] = ['sha1', 'sha256', 'sha384', 'sha512'];

const tmp = mkdtempSync(join(tmpdir(), 'airlock-core-digest-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('one-shot digests', () => {
  it.each(ALGS)('%s matches the FIPS 180 vectors', (alg) => {
    expect(digestBytes('', alg).toString('hex')).toBe(VECTORS[alg].empty);
    expect(digestBytes('abc', alg).toString('hex')).toBe(VECTORS[alg].abc);
    expect(digestBytes(Buffer.from('abc'), alg).toString('hex')).toBe(VECTORS[alg].abc);
    expect(digestLength(alg) * 2).toBe(VECTORS[alg].abc.length);
  });

  it('sha256Hex and the default algorithm are sha256', () => {
    expect(sha256Hex('abc')).toBe(VECTORS.sha256.abc);
    expect(digestBytes('abc').toString('hex')).toBe(VECTORS.sha256.abc);
  });

  it('isDigestAlgorithm accepts exactly the four names', () => {
    for (const a of ALGS) expect(isDigestAlgorithm(a)).toBe(true);
    for (const a of ['md5', 'SHA256', 'sha-256', 'sha3-256', '']) expect(isDigestAlgorithm(a)).toBe(false);
  });
});

describe('MultiHasher', () => {
  it('computes every requested digest in one pass and counts bytes', () => {
    const h = new MultiHasher(ALGS);
    h.update(Buffer.from('a'));
    h.update(new Uint8Array(Buffer.from('bc')));
    expect(h.size).toBe(3);
    const r = h.digest();
    expect(r.size).toBe(3);
    for (const a of ALGS) expect(r.digests[a]).toBe(VECTORS[a].abc);
  });

  it('dedupes repeated algorithms and defaults to sha256', () => {
    const r = new MultiHasher(['sha256', 'sha256']).digest();
    expect(Object.keys(r.digests)).toEqual(['sha256']);
    const d = new MultiHasher();
    d.update(Buffer.from('abc'));
    expect(d.digest().digests).toEqual({ sha256: VECTORS.sha256.abc });
  });

  it('rejects an empty or unsupported algorithm list', () => {
    expect(codeOf(() => new MultiHasher([]))).toBe('DIGEST_UNSUPPORTED_ALGORITHM');
    expect(codeOf(() => new MultiHasher(['md5' as DigestAlgorithm]))).toBe('DIGEST_UNSUPPORTED_ALGORITHM');
  });
});

describe('streaming digests', () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const oneShot = Object.fromEntries(ALGS.map((a) => [a, createHash(a).update(data).digest('hex')]));

  it('digestStream over irregular chunks equals the one-shot digest', async () => {
    async function* chunks(): AsyncGenerator<Uint8Array> {
      let off = 0;
      let n = 1;
      while (off < data.length) {
        yield data.subarray(off, off + n);
        off += n;
        n = (n * 7 + 13) % 200_003;
      }
    }
    const r = await digestStream(chunks(), ALGS);
    expect(r.size).toBe(data.length);
    expect(r.digests).toEqual(oneShot);
  });

  it('digestStream hashes string chunks as UTF-8', async () => {
    const r = await digestStream(Readable.from(['a', 'b', 'c']), ['sha256']);
    expect(r).toEqual({ digests: { sha256: VECTORS.sha256.abc }, size: 3 });
    const empty = await digestStream(Readable.from([]), ['sha1']);
    expect(empty).toEqual({ digests: { sha1: VECTORS.sha1.empty }, size: 0 });
  });

  it('digestFile reads a file and reports its size', async () => {
    const p = join(tmp, 'blob.bin');
    writeFileSync(p, data);
    const r = await digestFile(p, ALGS);
    expect(r).toEqual({ digests: oneShot, size: data.length });
    const e = join(tmp, 'empty.bin');
    writeFileSync(e, '');
    expect(await digestFile(e)).toEqual({ digests: { sha256: VECTORS.sha256.empty }, size: 0 });
  });

  it('digestFile handles files spanning several reads, including exact multiples of the read size', async () => {
    for (const size of [4 << 20, (8 << 20) + 5, (9 << 20) - 1]) {
      const big = Buffer.alloc(size);
      for (let off = 0; off < size; off += 4096) big.writeUInt32BE(off >>> 0, off);
      const p = join(tmp, `big-${size}.bin`);
      writeFileSync(p, big);
      const r = await digestFile(p, ['sha256', 'sha1']);
      expect(r.size).toBe(size);
      expect(r.digests.sha256).toBe(createHash('sha256').update(big).digest('hex'));
      expect(r.digests.sha1).toBe(createHash('sha1').update(big).digest('hex'));
    }
  });

  it('digestFile validates the algorithms before touching the file', async () => {
    await expect(digestFile(join(tmp, 'nope'), ['md5' as DigestAlgorithm])).rejects.toMatchObject({
      code: 'DIGEST_UNSUPPORTED_ALGORITHM',
    });
  });

  it('digestFile rejects a directory', async () => {
    await expect(digestFile(tmp)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('digestFile rejects a missing file', async () => {
    await expect(digestFile(join(tmp, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('HashingTransform passes bytes through unchanged and exposes the digests on finish', async () => {
    const t = new HashingTransform(['sha256', 'sha512']);
    const out: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    });
    let resultAtFinish: unknown;
    t.on('finish', () => {
      resultAtFinish = t.result;
    });
    expect(t.result).toBeUndefined();
    await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), t, sink);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(t.result).toEqual({ digests: { sha256: oneShot.sha256, sha512: oneShot.sha512 }, size: data.length });
    expect(resultAtFinish).toEqual(t.result);
  });
});

describe('digestsEqual', () => {
  it('compares case-insensitively', () => {
    expect(digestsEqual(VECTORS.sha256.abc, VECTORS.sha256.abc.toUpperCase())).toBe(true);
    expect(digestsEqual(VECTORS.sha256.abc, VECTORS.sha256.empty)).toBe(false);
  });

  it('is false on different lengths and on empty strings', () => {
    expect(digestsEqual(VECTORS.sha256.abc, VECTORS.sha256.abc.slice(0, 62))).toBe(false);
    expect(digestsEqual('', '')).toBe(false);
    expect(digestsEqual('', VECTORS.sha1.abc)).toBe(false);
  });
});

describe('parseDigestString', () => {
  it('parses algorithm:hex and lowercases the hex', () => {
    expect(parseDigestString(`sha256:${VECTORS.sha256.abc}`)).toEqual({ algorithm: 'sha256', hex: VECTORS.sha256.abc });
    expect(parseDigestString(`sha1:${VECTORS.sha1.abc.toUpperCase()}`)).toEqual({
      algorithm: 'sha1',
      hex: VECTORS.sha1.abc,
    });
  });

  it('rejects malformed strings with DIGEST_MALFORMED', () => {
    for (const s of [
      '',
      VECTORS.sha256.abc,
      `sha256-${VECTORS.sha256.abc}`,
      `sha256:${VECTORS.sha256.abc}0`,
      `sha256:${VECTORS.sha256.abc.slice(2)}`,
      `sha256:${VECTORS.sha256.abc.slice(1)}g`,
      `SHA256:${VECTORS.sha256.abc}`,
      `sha256: ${VECTORS.sha256.abc}`,
      `sha256:${VECTORS.sha256.abc}\n`,
      `sha512:${VECTORS.sha256.abc}`,
    ]) {
      expect(
        codeOf(() => parseDigestString(s)),
        JSON.stringify(s),
      ).toBe('DIGEST_MALFORMED');
    }
  });

  it('rejects unknown algorithms with DIGEST_UNSUPPORTED_ALGORITHM', () => {
    expect(codeOf(() => parseDigestString('md5:d41d8cd98f00b204e9800998ecf8427e'))).toBe(
      'DIGEST_UNSUPPORTED_ALGORITHM',
    );
  });
});

describe('SRI', () => {
  it.each(ALGS)('round-trips %s', (alg) => {
    const sri = toSri(alg, VECTORS[alg].abc);
    expect(sri.startsWith(`${alg}-`)).toBe(true);
    expect(parseSri(sri)).toEqual([{ algorithm: alg, hex: VECTORS[alg].abc }]);
  });

  it('matches the integrity npm writes for the empty tarball', () => {
    expect(toSri('sha512', VECTORS.sha512.empty)).toBe(
      'sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==',
    );
  });

  it('parses several whitespace-separated tokens with options and skips unknown algorithms', () => {
    const s = `  ${toSri('sha512', VECTORS.sha512.abc)}?foo=bar\t${toSri('sha1', VECTORS.sha1.abc)}\n md5-1B2M2Y8AsgTpgAmY7PhCfg==?x `;
    expect(parseSri(s)).toEqual([
      { algorithm: 'sha512', hex: VECTORS.sha512.abc },
      { algorithm: 'sha1', hex: VECTORS.sha1.abc },
    ]);
  });

  it('rejects a string with only unknown algorithms', () => {
    expect(codeOf(() => parseSri('md5-1B2M2Y8AsgTpgAmY7PhCfg=='))).toBe('DIGEST_UNSUPPORTED_ALGORITHM');
  });

  it('rejects wrong lengths and garbage with DIGEST_MALFORMED', () => {
    const sha256b64 = Buffer.from(VECTORS.sha256.abc, 'hex').toString('base64');
    for (const s of [
      '',
      '   ',
      `sha512-${sha256b64}`, // a sha256-sized value labelled sha512
      `sha256-${sha256b64.slice(0, -4)}`,
      `sha256-${sha256b64.replace(/=+$/, '')}`, // unpadded
      `sha256-${sha256b64.replace('+', '-')}`,
      'sha256-!!!!',
      'sha256',
      `sha256:${VECTORS.sha256.abc}`,
      `${toSri('sha256', VECTORS.sha256.abc)} garbage`,
    ]) {
      expect(
        codeOf(() => parseSri(s)),
        JSON.stringify(s),
      ).toBe('DIGEST_MALFORMED');
    }
  });
});

describe('strongestDigest', () => {
  it('prefers sha512 > sha384 > sha256 > sha1', () => {
    const all = ALGS.map((a) => ({ algorithm: a, hex: VECTORS[a].abc }));
    expect(strongestDigest(all).algorithm).toBe('sha512');
    expect(strongestDigest(all.filter((d) => d.algorithm !== 'sha512')).algorithm).toBe('sha384');
    expect(strongestDigest(all.filter((d) => d.algorithm === 'sha1' || d.algorithm === 'sha256')).algorithm).toBe(
      'sha256',
    );
    expect(strongestDigest([all[0]!]).algorithm).toBe('sha1');
    expect(codeOf(() => strongestDigest([]))).toBe('DIGEST_UNSUPPORTED_ALGORITHM');
  });
});

describe('assertDigestSetMatches', () => {
  const abc = { sha256: VECTORS.sha256.abc, sha512: VECTORS.sha512.abc };

  it('passes when every shared algorithm matches (case-insensitively)', () => {
    expect(() => assertDigestSetMatches('blob', abc, { sha256: VECTORS.sha256.abc.toUpperCase() })).not.toThrow();
    expect(() =>
      assertDigestSetMatches('blob', { sha256: VECTORS.sha256.abc }, { ...abc, sha1: VECTORS.sha1.abc }),
    ).not.toThrow();
  });

  it('throws DIGEST_MISMATCH naming the artifact and algorithm when one differs', () => {
    try {
      assertDigestSetMatches('pkg-1.0.0.tgz', abc, { sha256: VECTORS.sha256.abc, sha512: VECTORS.sha512.empty });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AirlockError);
      const e = err as AirlockError;
      expect(e.code).toBe('DIGEST_MISMATCH');
      expect(e.message).toContain('pkg-1.0.0.tgz');
      expect(e.message).toContain('sha512');
      expect(e.details).toEqual({ algorithm: 'sha512', expected: VECTORS.sha512.abc, actual: VECTORS.sha512.empty });
    }
  });

  it('throws DIGEST_MISMATCH when nothing is in common', () => {
    expect(codeOf(() => assertDigestSetMatches('x', { sha256: VECTORS.sha256.abc }, { sha1: VECTORS.sha1.abc }))).toBe(
      'DIGEST_MISMATCH',
    );
    expect(codeOf(() => assertDigestSetMatches('x', {}, {}))).toBe('DIGEST_MISMATCH');
  });

  it('refuses malformed values rather than comparing them', () => {
    expect(codeOf(() => assertDigestSetMatches('x', { sha256: '' }, { sha256: '' }))).toBe('DIGEST_MALFORMED');
    expect(codeOf(() => assertDigestSetMatches('x', { sha256: 'abc' }, { sha256: 'abc' }))).toBe('DIGEST_MALFORMED');
    expect(codeOf(() => assertDigestSetMatches('x', { sha1: VECTORS.sha256.abc }, { sha1: VECTORS.sha256.abc }))).toBe(
      'DIGEST_MALFORMED',
    );
    expect(codeOf(() => assertDigestSetMatches('x', abc, { sha256: 'zz'.repeat(32) }))).toBe('DIGEST_MALFORMED');
  });
});
