import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { SyncError } from '../errors.js';
import { compareStrings } from '../manifest.js';
import {
  BufferPool,
  encodeTransferHeader,
  HashingFileWriter,
  TAR_CHUNK,
  TAR_END,
  tarPadding,
} from './tar-file-writer.js';

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

/**
 * Writes the transfer bundle tar to `dest`:
 *   manifest.json, then attestations/* (sorted), then blobs/sha256/<hex> (sorted by hex).
 * The manifest comes first so an importer streaming the tar can check the signature and each blob as it arrives.
 * The tar is written directly (headers byte-identical to tar-stream's, see encodeTransferHeader) and hashed as it
 * is written; blobs are read in 4 MiB chunks, the next read and the previous write in flight while this thread
 * hashes, through a few reused buffers (constant memory). Named staged files are re-hashed on the way in, so one
 * that changed since it was verified fails the write instead of shipping. Returns the bundle's sha256 and size.
 */
export async function writeBundle(
  dest: string,
  manifestBytes: Uint8Array,
  attestations: readonly BundleFile[],
  blobs: readonly BundleBlob[],
): Promise<{ sha256: string; size: number }> {
  let file: FileHandle;
  try {
    file = await open(dest, 'w', 0o644);
  } catch (cause) {
    throw bundleError(dest, cause);
  }
  try {
    const out = new HashingFileWriter(file);
    const pool = new BufferPool();
    await addBuffer(out, 'manifest.json', manifestBytes);
    for (const a of [...attestations].sort((x, y) => compareStrings(x.name, y.name)))
      await addBuffer(out, a.name, a.bytes);
    for (const b of [...blobs].sort((x, y) => compareStrings(x.sha256, y.sha256))) await addBlob(out, pool, b);
    await out.push(TAR_END);
    const written = await out.finish();
    // Durable before the caller renames it into place.
    await file.sync();
    return written;
  } catch (err) {
    throw err instanceof SyncError ? err : bundleError(dest, err);
  } finally {
    await file.close().catch(() => undefined);
  }
}

function bundleError(dest: string, cause: unknown): SyncError {
  return new SyncError('SYNC_BUNDLE_FAILED', `writing ${dest} failed: ${(cause as Error).message}`, { cause });
}

async function addBuffer(out: HashingFileWriter, name: string, bytes: Uint8Array): Promise<void> {
  await out.push(encodeTransferHeader(name, bytes.byteLength));
  await out.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  await out.push(tarPadding(bytes.byteLength));
}

/** `data` is a view of the pooled buffer `whole`, handed back to the pool once written. */
interface Chunk {
  data: Buffer;
  whole: Buffer;
}

/** Reads exactly `size` bytes of `file` in TAR_CHUNK pieces, one read ahead of the consumer. */
async function* chunks(file: FileHandle, size: number, pool: BufferPool, what: string): AsyncGenerator<Chunk> {
  const readAt = async (pos: number): Promise<Chunk> => {
    const buf = pool.take();
    const want = Math.min(TAR_CHUNK, size - pos);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await file.read(buf, got, want - got, pos + got);
      if (bytesRead === 0) throw new SyncError('SYNC_BUNDLE_FAILED', `staged blob ${what}: short read`);
      got += bytesRead;
    }
    return { data: buf.subarray(0, want), whole: buf };
  };
  let pos = 0;
  let next = size > 0 ? readAt(0) : undefined;
  try {
    while (next) {
      const chunk = await next;
      pos += chunk.data.length;
      next = pos < size ? readAt(pos) : undefined;
      yield chunk;
    }
  } finally {
    await next?.catch(() => undefined);
  }
}

async function addBlob(out: HashingFileWriter, pool: BufferPool, blob: BundleBlob): Promise<void> {
  const file = blob.sealed ?? (await open(blob.path, 'r'));
  try {
    const { size } = await file.stat();
    if (size !== blob.size) {
      throw new SyncError(
        'SYNC_BUNDLE_FAILED',
        blob.sealed
          ? `staged blob ${blob.sha256} is ${size} bytes, expected ${blob.size}`
          : `staged blob ${blob.sha256} changed on disk since it was verified (now ${size} bytes, expected ${blob.size})`,
      );
    }
    // A sealed file is unreachable by name since before its first byte: what was verified is what is read.
    const check = blob.sealed ? undefined : createHash('sha256');
    await out.push(encodeTransferHeader(`blobs/sha256/${blob.sha256}`, blob.size));
    for await (const { data, whole } of chunks(file, blob.size, pool, blob.sha256)) {
      check?.update(data);
      await out.push(data, () => pool.give(whole));
    }
    const got = check?.digest('hex');
    if (got !== undefined && got !== blob.sha256) {
      throw new SyncError(
        'SYNC_BUNDLE_FAILED',
        `staged blob ${blob.sha256} changed on disk since it was verified (now sha256 ${got})`,
      );
    }
    await out.push(tarPadding(blob.size));
  } finally {
    if (!blob.sealed) await file.close();
  }
}
