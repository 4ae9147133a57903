import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync, existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { transferTarHeader } from '@airlock/core';
import { writeBundle, type BundleBlob, type BundleFile } from '../src/bundle/bundle-writer.js';
import { encodeTransferHeader, TAR_CHUNK } from '../src/bundle/tar-file-writer.js';
import type { SyncError } from '../src/errors.js';

// The bundle tar is written directly (not through tar-stream) and hashed as it is written. The importer accepts only
// headers byte-identical to tar-stream's encoding of transferTarHeader, so the reference here is tar-stream itself.

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let dir: string | undefined;
const handles: FileHandle[] = [];

afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close().catch(() => undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function workdir(): string {
  dir = mkdtempSync(join(tmpdir(), 'airlock-tar-writer-'));
  return dir;
}

/** What tar-stream's pack writes for the same entries, in the same order. */
async function reference(entries: { name: string; body: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(transferTarHeader(e.name, e.body.length), e.body, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Blob sizes around the 512-byte block and the 4 MiB read chunk, where an off-by-one would show. */
const SIZES = [0, 1, 511, 512, 513, TAR_CHUNK - 1, TAR_CHUNK, TAR_CHUNK + 1, 2 * TAR_CHUNK + 100];

describe('bundle tar writer', () => {
  it('writes exactly the bytes tar-stream writes, for sealed and named blobs of every edge size, and hashes them', async () => {
    const d = workdir();
    const bodies = SIZES.map((n) => randomBytes(n));
    const blobs: BundleBlob[] = [];
    for (const [i, body] of bodies.entries()) {
      const path = join(d, `blob-${i}`);
      writeFileSync(path, body);
      if (i % 2 === 0) blobs.push({ sha256: sha256(body), size: body.length, path });
      else {
        const h = await open(path, 'r');
        handles.push(h);
        blobs.push({ sha256: sha256(body), size: body.length, sealed: h });
      }
    }
    const manifest = Buffer.from('{"manifest":true}');
    const attestations: BundleFile[] = [
      { name: 'attestations/z.json', bytes: Buffer.from('z'.repeat(700)) },
      { name: 'attestations/a.json', bytes: Buffer.from('a') },
    ];
    const out = join(d, 'bundle.tar');
    const written = await writeBundle(out, manifest, attestations, blobs);

    const sorted = bodies.map((b) => ({ name: `blobs/sha256/${sha256(b)}`, body: b }));
    sorted.sort((x, y) => (x.name < y.name ? -1 : 1));
    const expected = await reference([
      { name: 'manifest.json', body: manifest },
      { name: 'attestations/a.json', body: Buffer.from('a') },
      { name: 'attestations/z.json', body: Buffer.from('z'.repeat(700)) },
      ...sorted,
    ]);
    const actual = readFileSync(out);
    expect(actual.length).toBe(expected.length);
    expect(actual.equals(expected)).toBe(true);
    expect(written).toEqual({ sha256: sha256(expected), size: expected.length });
  });

  it('encodes long names the way tar-stream does (prefix/name split) and refuses names it would not encode', async () => {
    const long = `attestations/${'d'.repeat(60)}/${'e'.repeat(90)}.json`;
    const ref = await reference([{ name: long, body: Buffer.from('x') }]);
    expect(encodeTransferHeader(long, 1).equals(ref.subarray(0, 512))).toBe(true);
    // A size past 11 octal digits switches to base-256, as tar-stream does.
    const huge = 2 ** 33 + 5;
    const header = encodeTransferHeader('blobs/sha256/x', huge);
    expect(header[124]).toBe(0x80);
    expect(header.readUIntBE(130, 6)).toBe(huge); // big-endian in the last bytes of the 12-byte field
    for (const bad of ['attestations/é.json', '', 'x'.repeat(101)]) {
      let err: SyncError | undefined;
      try {
        encodeTransferHeader(bad, 1);
      } catch (e) {
        err = e as SyncError;
      }
      expect(err?.code).toBe('SYNC_BUNDLE_FAILED');
    }
  });

  it('a named staged blob changed after verification, past its first 4 MiB chunk, fails the write', async () => {
    const d = workdir();
    const body = randomBytes(2 * TAR_CHUNK + 3);
    const path = join(d, 'blob');
    writeFileSync(path, body);
    const verified = sha256(body);
    // Same size, one byte changed in the second chunk: only hashing every byte on the way in notices.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([body[TAR_CHUNK + 10]! ^ 0xff]), 0, 1, TAR_CHUNK + 10);
    closeSync(fd);
    const out = join(d, 'bundle.tar');
    let err: SyncError | undefined;
    try {
      await writeBundle(out, Buffer.from('{}'), [], [{ sha256: verified, size: body.length, path }]);
    } catch (e) {
      err = e as SyncError;
    }
    expect(err?.code).toBe('SYNC_BUNDLE_FAILED');
    expect(err?.message).toContain(`staged blob ${verified} changed on disk`);
    // The caller removes the partial file; what was written is not a complete tar (no end-of-archive blocks).
    expect(existsSync(out)).toBe(true);
  });

  it('a sealed blob shorter than verified fails the write naming it', async () => {
    const d = workdir();
    const path = join(d, 'blob');
    writeFileSync(path, randomBytes(1000));
    const h = await open(path, 'r');
    handles.push(h);
    let err: SyncError | undefined;
    try {
      await writeBundle(join(d, 'b.tar'), Buffer.from('{}'), [], [{ sha256: 'ab'.repeat(32), size: 1001, sealed: h }]);
    } catch (e) {
      err = e as SyncError;
    }
    expect(err?.code).toBe('SYNC_BUNDLE_FAILED');
    expect(err?.message).toContain(`staged blob ${'ab'.repeat(32)} is 1000 bytes, expected 1001`);
  });
});
