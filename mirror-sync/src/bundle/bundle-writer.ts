import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { canonicalTarHeader, MultiHasher } from '@airlock/core';
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

/** Bytes per read of a blob; three reused buffers of this size per bundle. */
const COPY_CHUNK = 4 << 20;
/** Bytes written between write-behind flushes. */
const FLUSH_EVERY = 64 << 20;
const BLOCK = 512;
/** tar-stream's pack ends an archive with two zero blocks and no record padding; the importer expects exactly that. */
const ZEROS = Buffer.alloc(2 * BLOCK);

/**
 * Writes the transfer bundle tar to `dest`:
 *   manifest.json, then attestations/* (sorted), then blobs/sha256/<hex> (sorted by hex).
 * The manifest comes first so an importer streaming the tar can check the signature and each blob as it arrives.
 * Byte for byte what tar-stream's pack writes for these entries (canonicalTarHeader, zero padding, two end blocks),
 * written with positional I/O: each blob is read in large chunks into two reused buffers, the next read and the
 * last write in flight (libuv's threadpool, the other core) while this thread hashes. Named staged files are
 * re-hashed on the way in, so one that changed since it was verified fails the write instead of shipping.
 * Returns the bundle's sha256 and size; the file is fsynced before this returns.
 */
export async function writeBundle(
  dest: string,
  manifestBytes: Uint8Array,
  attestations: readonly BundleFile[],
  blobs: readonly BundleBlob[],
): Promise<{ sha256: string; size: number }> {
  let file: FileHandle;
  try {
    file = await open(dest, 'w');
  } catch (cause) {
    throw bundleFailed(dest, cause);
  }
  const out = new TarOut(file);
  try {
    await out.addBytes('manifest.json', manifestBytes);
    for (const a of [...attestations].sort((x, y) => compareStrings(x.name, y.name)))
      await out.addBytes(a.name, a.bytes);
    const copier = new BlobCopier(out);
    for (const b of [...blobs].sort((x, y) => compareStrings(x.sha256, y.sha256))) await copier.add(b);
    await out.put(ZEROS);
    // Durable before the caller renames it into place.
    await out.sync();
  } catch (err) {
    throw err instanceof SyncError ? err : bundleFailed(dest, err);
  } finally {
    await out.settle();
    await file.close().catch(() => undefined);
  }
  return { sha256: out.digest(), size: out.position };
}

function bundleFailed(dest: string, cause: unknown): SyncError {
  return new SyncError('SYNC_BUNDLE_FAILED', `writing ${dest} failed: ${(cause as Error).message}`, { cause });
}

/** The tar file being written: appends at `position`, hashing every byte in the order it lands in the file. */
class TarOut {
  position = 0;
  private readonly hash: Hash = createHash('sha256');
  private flushedTo = 0;
  private flushInFlight = false;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly file: FileHandle) {}

  digest(): string {
    return this.hash.digest('hex');
  }

  /** The entry's header; fails when a plain ustar header cannot hold the name (the importer takes nothing else). */
  header(name: string, size: number): Buffer {
    const h = canonicalTarHeader(name, size);
    if (!h) throw new SyncError('SYNC_BUNDLE_FAILED', `'${name}' (${size} bytes) does not fit a ustar header`);
    return h;
  }

  /** Zero padding behind an entry of `size` bytes, up to the next 512-byte block. */
  padding(size: number): Buffer {
    return ZEROS.subarray(0, (BLOCK - (size % BLOCK)) % BLOCK);
  }

  async addBytes(name: string, bytes: Uint8Array): Promise<void> {
    await this.put(Buffer.concat([this.header(name, bytes.byteLength), bytes, this.padding(bytes.byteLength)]));
  }

  /** Hashes and writes `buf` at the end of the file. */
  put(buf: Uint8Array): Promise<void> {
    this.hashNext(buf);
    return this.writeNext(buf);
  }

  /** Hashes the next bytes of the file; `writeNext` must follow with the same bytes, in the same order. */
  hashNext(buf: Uint8Array): void {
    this.hash.update(buf);
  }

  /**
   * Writes `buf` at the end of the file. The position moves on at once, so the next write may be issued before
   * this one completes; `buf` may be reused only once the returned promise settles.
   */
  writeNext(buf: Uint8Array): Promise<void> {
    const at = this.position;
    this.position += buf.byteLength;
    const done = writeFully(this.file, buf, at);
    this.flushBehind(at + buf.byteLength);
    return done;
  }

  /** Waits for a write-behind flush still running (on failure, before the file is closed). */
  async settle(): Promise<void> {
    await this.flushing.catch(() => undefined);
  }

  /** The final fsync, after any write-behind flush still running (whose error it reports). */
  async sync(): Promise<void> {
    await this.flushing;
    await this.file.sync();
  }

  /**
   * Starts an fdatasync every FLUSH_EVERY bytes (one at a time, not awaited here) so the disk writes the bundle
   * while it is being produced, rather than all of it in the final fsync. Durability still rests on `sync()`.
   */
  private flushBehind(end: number): void {
    if (end - this.flushedTo < FLUSH_EVERY || this.flushInFlight) return;
    this.flushedTo = end;
    this.flushInFlight = true;
    this.flushing = this.flushing.then(() =>
      this.file.datasync().finally(() => {
        this.flushInFlight = false;
      }),
    );
    this.flushing.catch(() => {}); // reported by sync(); avoid an unhandled rejection meanwhile
  }
}

async function writeFully(file: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await file.write(buf, done, buf.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Copies blobs into the tar through three reused buffers: while this thread hashes chunk k, chunk k+1 is being read
 * and chunk k-1 written (libuv's threadpool).
 */
class BlobCopier {
  private readonly buffers = [0, 1, 2].map(() => Buffer.allocUnsafe(COPY_CHUNK));

  constructor(private readonly out: TarOut) {}

  async add(blob: BundleBlob): Promise<void> {
    const source = blob.sealed ?? (await open(blob.path, 'r'));
    try {
      const { size } = await source.stat();
      // A named file is checked again on the way in; a sealed one was verified as it was written and nobody else
      // can reach it, but a size that moved would still be a broken tar.
      if (blob.sealed && size !== blob.size)
        throw new SyncError('SYNC_BUNDLE_FAILED', `staged blob ${blob.sha256} is ${size} bytes, expected ${blob.size}`);
      const check = blob.sealed ? undefined : new MultiHasher(['sha256']);
      await this.out.put(this.out.header(`blobs/sha256/${blob.sha256}`, blob.size));
      await this.copy(source, blob, check);
      if (check) await verifyNamed(source, blob, check);
      await this.out.put(this.out.padding(blob.size));
    } finally {
      if (!blob.sealed) await source.close();
    }
  }

  /** Exactly `blob.size` bytes from offset 0 of `source` into the tar, each chunk hashed before it is written. */
  private async copy(source: FileHandle, blob: BundleBlob, check: MultiHasher | undefined): Promise<void> {
    let written: Promise<void> = Promise.resolve();
    let pos = 0;
    let turn = 0;
    let reading = blob.size > 0 ? readChunk(source, this.buffers[0]!, 0, blob) : undefined;
    try {
      while (reading) {
        const chunk = await reading;
        pos += chunk.length;
        turn = (turn + 1) % 3;
        // This buffer's last chunk (k-2) was written before chunk k-1's write was issued.
        reading = pos < blob.size ? readChunk(source, this.buffers[turn]!, pos, blob) : undefined;
        check?.update(chunk);
        this.out.hashNext(chunk);
        await written;
        written = this.out.writeNext(chunk);
      }
      await written;
    } catch (err) {
      await Promise.allSettled([written, reading]);
      throw err;
    }
  }
}

/** Reads the chunk of `blob` at `pos` into `buf`; a short read means the staged file shrank. */
async function readChunk(source: FileHandle, buf: Buffer, pos: number, blob: BundleBlob): Promise<Buffer> {
  const want = Math.min(buf.length, blob.size - pos);
  let got = 0;
  while (got < want) {
    const { bytesRead } = await source.read(buf, got, want - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got !== want) {
    if (blob.sealed) throw new SyncError('SYNC_BUNDLE_FAILED', `staged blob ${blob.sha256}: short read`);
    throw changedOnDisk(blob, (await source.stat()).size, undefined);
  }
  return buf.subarray(0, want);
}

/** A named staged file must still be exactly the verified bytes: same sha256 and nothing after `size`. */
async function verifyNamed(source: FileHandle, blob: BundleBlob, check: MultiHasher): Promise<void> {
  const got = check.digest();
  const { bytesRead } = await source.read(Buffer.alloc(1), 0, 1, blob.size);
  if (bytesRead !== 0) throw changedOnDisk(blob, (await source.stat()).size, undefined);
  if (got.digests.sha256 !== blob.sha256) throw changedOnDisk(blob, got.size, got.digests.sha256);
}

function changedOnDisk(blob: BundleBlob, size: number, sha256: string | undefined): SyncError {
  return new SyncError(
    'SYNC_BUNDLE_FAILED',
    `staged blob ${blob.sha256} changed on disk since it was verified (now ${size} bytes${sha256 ? `, sha256 ${sha256}` : ''})`,
  );
}
