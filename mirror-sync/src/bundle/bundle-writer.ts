import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingTransform, MultiHasher, transferTarHeader } from '@airlock/core';
import tar from 'tar-stream';
import { SyncError } from '../errors.js';
import { compareStrings } from '../manifest.js';

export interface BundleFile {
  /** Path inside the tar, e.g. `attestations/manifest.sigstore.json`. */
  name: string;
  bytes: Uint8Array;
}

/**
 * A blob to write: a staged file by `path` (re-hashed on the way in: it could have changed since it was verified),
 * or a `sealed` file the caller created unlinked and verified while writing it (read back as is).
 */
export type BundleBlob = { sha256: string; size: number } & (
  { path: string; sealed?: undefined } | { sealed: FileHandle; path?: undefined }
);

/** Bytes per read of a sealed blob; a fresh buffer each time, since the tar stream may still hold the last one. */
const SEALED_READ = 1 << 20;

/**
 * Writes the transfer bundle tar to `dest`:
 *   manifest.json, then attestations/* (sorted), then blobs/sha256/<hex> (sorted by hex).
 * The manifest comes first so an importer streaming the tar can check the signature and each blob as it arrives.
 * Blobs are streamed from disk (constant memory); named staged files are re-hashed on the way in, so one that
 * changed since it was verified fails the write instead of shipping. Returns the bundle's sha256 and size.
 */
export async function writeBundle(
  dest: string,
  manifestBytes: Uint8Array,
  attestations: readonly BundleFile[],
  blobs: readonly BundleBlob[],
): Promise<{ sha256: string; size: number }> {
  const pack = tar.pack();
  const hasher = new HashingTransform(['sha256']);
  const sink = pipeline(
    Readable.from(pack as AsyncIterable<Buffer>),
    hasher,
    createWriteStream(dest, { highWaterMark: SEALED_READ }),
  );
  // If the consumer fails, the producer below must not wait forever on backpressure.
  sink.catch((err: unknown) => pack.destroy(err as Error));
  try {
    await addBuffer(pack, 'manifest.json', manifestBytes);
    for (const a of [...attestations].sort((x, y) => compareStrings(x.name, y.name)))
      await addBuffer(pack, a.name, a.bytes);
    for (const b of [...blobs].sort((x, y) => compareStrings(x.sha256, y.sha256))) await addBlob(pack, b);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await sink.catch(() => {});
    throw err instanceof SyncError
      ? err
      : new SyncError('SYNC_BUNDLE_FAILED', `writing ${dest} failed: ${(err as Error).message}`, { cause: err });
  }
  try {
    await sink;
  } catch (cause) {
    throw new SyncError('SYNC_BUNDLE_FAILED', `writing ${dest} failed: ${(cause as Error).message}`, { cause });
  }
  // Durable before the caller renames it into place.
  const fh = await open(dest, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { sha256: hasher.result!.digests.sha256!, size: hasher.result!.size };
}

function addBuffer(pack: tar.Pack, name: string, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    // Fixed header fields shared with the importer, which accepts nothing else (see transferTarHeader).
    pack.entry(transferTarHeader(name, bytes.byteLength), Buffer.from(bytes), (err) => (err ? reject(err) : resolve()));
  });
}

type EntrySink = ReturnType<tar.Pack['entry']>;

function openEntry(pack: tar.Pack, blob: BundleBlob): { sink: EntrySink; finished: Promise<void> } {
  let sink!: EntrySink;
  const finished = new Promise<void>((resolve, reject) => {
    sink = pack.entry(transferTarHeader(`blobs/sha256/${blob.sha256}`, blob.size), (err) =>
      err ? reject(err) : resolve(),
    );
  });
  finished.catch(() => {}); // observed by the caller; avoid an unhandled rejection while it is still writing
  // Destroying the entry (a staged blob that changed) emits 'error' on it; unheard, that is an uncaught
  // exception that kills the process instead of failing the sync. The callback above reports it.
  (sink as unknown as NodeJS.EventEmitter).on('error', () => {});
  return { sink, finished };
}

async function write(sink: EntrySink, buf: Buffer): Promise<void> {
  if (!sink.write(buf)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
}

/** A sealed blob: exactly `size` bytes from offset 0, the next read in flight while this chunk is written. */
async function addSealedBlob(pack: tar.Pack, blob: BundleBlob & { sealed: FileHandle }): Promise<void> {
  const file = blob.sealed;
  const { size } = await file.stat();
  if (size !== blob.size)
    throw new SyncError('SYNC_BUNDLE_FAILED', `staged blob ${blob.sha256} is ${size} bytes, expected ${blob.size}`);
  const { sink, finished } = openEntry(pack, blob);
  const readAt = async (pos: number): Promise<Buffer> => {
    const buf = Buffer.allocUnsafe(Math.min(SEALED_READ, blob.size - pos));
    const { bytesRead } = await file.read(buf, 0, buf.length, pos);
    if (bytesRead !== buf.length) throw new SyncError('SYNC_BUNDLE_FAILED', `staged blob ${blob.sha256}: short read`);
    return buf;
  };
  let pos = 0;
  let next = blob.size > 0 ? readAt(0) : undefined;
  try {
    while (next) {
      const buf = await next;
      pos += buf.length;
      next = pos < blob.size ? readAt(pos) : undefined;
      await write(sink, buf);
    }
  } catch (err) {
    await next?.catch(() => undefined);
    sink.destroy(err as Error);
    await finished.catch(() => {});
    throw err;
  }
  sink.end(undefined); // streamx's typings want an argument; undefined = no final chunk
  await finished;
}

async function addBlob(pack: tar.Pack, blob: BundleBlob): Promise<void> {
  if (blob.sealed) return addSealedBlob(pack, blob);
  const { sink, finished } = openEntry(pack, blob);
  const check = new MultiHasher(['sha256']);
  for await (const chunk of createReadStream(blob.path, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    check.update(buf);
    if (check.size > blob.size) break;
    await write(sink, buf);
  }
  const got = check.digest();
  if (got.size !== blob.size || got.digests.sha256 !== blob.sha256) {
    sink.destroy(new Error('staged blob changed'));
    await finished.catch(() => {});
    throw new SyncError(
      'SYNC_BUNDLE_FAILED',
      `staged blob ${blob.sha256} changed on disk since it was verified (now ${got.size} bytes, sha256 ${got.digests.sha256})`,
    );
  }
  sink.end(undefined); // streamx's typings want an argument; undefined = no final chunk
  await finished;
}
