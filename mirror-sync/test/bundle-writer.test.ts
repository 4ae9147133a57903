import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { transferTarHeader } from '@airlock/core';
import { writeBundle, type BundleBlob } from '../src/bundle/bundle-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'airlock-bundle-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The reference: tar-stream's pack of the same entries, in the bundle's order (what the writer produced before). */
async function packed(entries: { name: string; bytes: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(transferTarHeader(e.name, e.bytes.length), e.bytes, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

// Sizes around the 512-byte padding and past one 4 MiB copy chunk (two reads, both buffers in use).
const SIZES = [0, 1, 511, 512, 513, (4 << 20) + 777, 9 << 20];

describe('writeBundle', () => {
  it('writes byte for byte what tar-stream packs, from sealed and named staged blobs, and hashes what it wrote', async () => {
    const contents = SIZES.map((n) => randomBytes(n));
    const handles: FileHandle[] = [];
    const blobs: BundleBlob[] = [];
    for (const [i, bytes] of contents.entries()) {
      const path = join(dir, `blob-${i}`);
      writeFileSync(path, bytes);
      if (i % 2 === 0) blobs.push({ sha256: sha256(bytes), size: bytes.length, path });
      else {
        const fh = await open(path, 'r');
        handles.push(fh);
        blobs.push({ sha256: sha256(bytes), size: bytes.length, sealed: fh });
      }
    }
    const manifest = Buffer.from('{"manifest":true}');
    const attestations = [
      { name: 'attestations/sbom.sigstore.json', bytes: randomBytes(700) },
      { name: 'attestations/manifest.sigstore.json', bytes: randomBytes(1500) },
    ];
    const dest = join(dir, 'bundle.tar');
    try {
      const r = await writeBundle(dest, manifest, attestations, blobs);
      const got = readFileSync(dest);
      const expected = await packed([
        { name: 'manifest.json', bytes: manifest },
        ...[...attestations].sort((a, b) => (a.name < b.name ? -1 : 1)),
        ...contents
          .map((bytes) => ({ name: `blobs/sha256/${sha256(bytes)}`, bytes }))
          .sort((a, b) => (a.name < b.name ? -1 : 1)),
      ]);
      expect(got.equals(expected)).toBe(true);
      expect(r).toEqual({ sha256: sha256(got), size: got.length });
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
  });

  it.each([
    ['grew', (p: string) => appendFileSync(p, 'x')],
    ['shrank', (p: string) => truncateSync(p, 5 << 20)],
    ['changed in place', (p: string) => writeFileSync(p, randomBytes(6 << 20))],
  ])('fails a named staged blob that %s since it was verified', async (_what, tamper) => {
    const bytes = randomBytes(6 << 20);
    const path = join(dir, 'tampered');
    writeFileSync(path, bytes);
    tamper(path);
    await expect(
      writeBundle(
        join(dir, 'tampered.tar'),
        Buffer.from('{}'),
        [],
        [{ sha256: sha256(bytes), size: bytes.length, path }],
      ),
    ).rejects.toMatchObject({
      code: 'SYNC_BUNDLE_FAILED',
      message: expect.stringMatching(/staged blob [0-9a-f]{64} changed on disk since it was verified/),
    });
  });

  it('fails a sealed blob whose size is not the verified one', async () => {
    const path = join(dir, 'sealed-short');
    writeFileSync(path, randomBytes(1000));
    const fh = await open(path, 'r');
    try {
      await expect(
        writeBundle(
          join(dir, 'short.tar'),
          Buffer.from('{}'),
          [],
          [{ sha256: 'a'.repeat(64), size: 1001, sealed: fh }],
        ),
      ).rejects.toMatchObject({
        code: 'SYNC_BUNDLE_FAILED',
        message: expect.stringMatching(/is 1000 bytes, expected 1001/),
      });
    } finally {
      await fh.close();
    }
  });
});
