import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fsync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import {
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type {
  BlobSource,
  BlobStat,
  BlobStore,
  ByteRange,
  PutExpectation,
  PutOptions,
  PutResult,
  QuarantineRecord,
  StagedBlob,
  VerifiedRead,
  VerifyResult,
} from './blob-store.js';
import { assertSha256Hex, isSha256Hex } from './digest-utils.js';
import { CasError } from './errors.js';
import { VerifiedCache } from './verified-cache.js';
import { SmallBlobCache } from './small-blob-cache.js';

export interface FsBlobStoreOptions {
  /** Largest blob `put` accepts (default 16 GiB). */
  maxBlobSize?: number;
  /** fsync files and directories (default true). Turning it off is only for throwaway stores. */
  fsync?: boolean;
  /** Observer called after each fsync (file = the temporary copy, dir = the directory holding a rename). */
  onSync?: (kind: 'file' | 'dir', path: string) => void;
  /** Observer called right after a blob's name appears (crash and ordering tests). */
  onLink?: (path: string) => void;
  /** Size of the verified-cache (default 200 000 blobs). */
  verifiedCacheEntries?: number;
  /**
   * Memory budget for the bytes of small verified blobs (default 64 MiB; 0 disables). A hit still costs one
   * lstat per read: the bytes are served only while the file's change token is the one they were verified under.
   */
  memoryCacheBytes?: number;
  /** Blobs up to this size are read whole and may be kept in memory (default 1 MiB). */
  smallBlobBytes?: number;
}

/** On-disk layout below the store root. Everything lives on one filesystem so renames are atomic. */
export const FS_BLOB_LAYOUT = {
  blobs: join('blobs', 'sha256'),
  tmp: 'tmp',
  quarantine: 'quarantine',
} as const;

const DEFAULT_MAX_BLOB_SIZE = 16 * 1024 ** 3;
const HASH_BUFFER_BYTES = 1 << 20;
const STREAM_HIGH_WATER_MARK = 256 * 1024;
const SHARDS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
// Blob names never come from a symlink: a planted link must not make the server read outside the store.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;

/**
 * Filesystem backend of the BlobStore port: `blobs/sha256/<aa>/<hex>`, written as temp file → fsync → link into
 * place (never overwrites) → fsync directory; final files are mode 0444. Reads are verified against the name
 * once per file version (see VerifiedCache).
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  private readonly quarantineDir: string;
  private readonly maxBlobSize: number;
  private readonly doFsync: boolean;
  private readonly onSync: ((kind: 'file' | 'dir', path: string) => void) | undefined;
  private readonly onLink: ((path: string) => void) | undefined;
  private readonly verified: VerifiedCache;
  private readonly memory: SmallBlobCache<HeldFile>;
  private readonly smallBlobBytes: number;
  /** Temp files of staged blobs, until published or discarded. */
  private readonly staged = new Map<StagedBlob, StagedFile>();
  /** Temp names: this store's unique prefix and a counter (open's O_EXCL refuses any clash anyway). */
  private readonly tmpPrefix = `${process.pid}-${Date.now()}-${randomBytes(8).toString('hex')}`;
  private tmpCounter = 0;
  private readonly createsReadOnly = umaskKeepsReadOnly();
  /** Loads in flight, so concurrent first reads of one blob hash it once. */
  private readonly loading = new Map<string, Promise<Buffer | undefined>>();

  private constructor(root: string, options: FsBlobStoreOptions) {
    this.root = root;
    this.blobsDir = join(root, FS_BLOB_LAYOUT.blobs);
    this.tmpDir = join(root, FS_BLOB_LAYOUT.tmp);
    this.quarantineDir = join(root, FS_BLOB_LAYOUT.quarantine);
    this.maxBlobSize = options.maxBlobSize ?? DEFAULT_MAX_BLOB_SIZE;
    this.doFsync = options.fsync ?? true;
    this.onSync = options.onSync;
    this.onLink = options.onLink;
    this.verified = new VerifiedCache(options.verifiedCacheEntries);
    this.memory = new SmallBlobCache<HeldFile>(options.memoryCacheBytes ?? 64 * 1024 * 1024);
    this.smallBlobBytes = options.smallBlobBytes ?? 1024 * 1024;
  }

  /** Opens (creating when needed) a store rooted at `root`; all 256 shard directories exist afterwards. */
  static async open(root: string, options: FsBlobStoreOptions = {}): Promise<FsBlobStore> {
    const store = new FsBlobStore(root, options);
    await mkdir(store.blobsDir, { recursive: true });
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(store.quarantineDir, { recursive: true });
    const existing = new Set(await readdir(store.blobsDir));
    const missing = SHARDS.filter((s) => !existing.has(s));
    if (missing.length > 0) {
      for (const shard of missing) await mkdir(join(store.blobsDir, shard), { recursive: true });
      await store.syncDir(store.blobsDir);
      await store.syncDir(join(root, 'blobs'));
      await store.syncDir(root);
    }
    return store;
  }

  /** Path of a blob's final file (it may not exist). */
  pathOf(sha256: string): string {
    assertSha256Hex(sha256);
    return join(this.blobsDir, sha256.slice(0, 2), sha256);
  }

  localPath(sha256: string): string | undefined {
    return this.pathOf(sha256);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined;
  }

  async stat(sha256: string): Promise<BlobStat | undefined> {
    try {
      // Synchronous like readSmallVerified's lstat: cached metadata, cheaper than a threadpool round trip.
      const st = statSync(this.pathOf(sha256));
      return st.isFile() ? { size: st.size } : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    const fh = await this.openBlobFile(sha256);
    try {
      const st = await fh.stat();
      if (range) checkRange(range, st.size);
      return fh.createReadStream({
        ...(range ? { start: range.start, end: range.end } : {}),
        highWaterMark: STREAM_HIGH_WATER_MARK,
      });
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async openVerifiedRead(sha256: string, range?: ByteRange): Promise<VerifiedRead> {
    const small = await this.readSmallVerified(sha256);
    if (small) {
      if (range) checkRange(range, small.length);
      return bufferedRead(sha256, small.length, range, range ? small.subarray(range.start, range.end + 1) : small);
    }
    return this.streamVerified(sha256, range);
  }

  /**
   * The memory hit of `readSmallVerified` without a promise: the bytes while one lstat shows the very file they were
   * verified from (device, inode, size, mtime and ctime in ns, compared field by field: building the token string
   * costs more than the lstat). Undefined on a miss or any change, even a missing file: the caller then takes
   * `openVerifiedRead`, which re-verifies, quarantines and reports.
   */
  cachedVerifiedSync(sha256: string): Buffer | undefined {
    const held = this.memory.peek(sha256);
    const f = held?.meta;
    if (f === undefined) return undefined;
    let st;
    try {
      st = lstatSync(f.path, HELD_LSTAT);
    } catch {
      return undefined; // EACCES, ENOTDIR…: the async path reports it
    }
    if (
      st === undefined ||
      st.ctimeNs !== f.ctimeNs ||
      st.mtimeNs !== f.mtimeNs ||
      st.ino !== f.ino ||
      st.size !== f.size ||
      st.dev !== f.dev ||
      !st.isFile()
    )
      return undefined;
    return held!.bytes;
  }

  /**
   * Small blobs: one lstat when the verified bytes are in memory; otherwise open, read whole, hash, close.
   * Undefined for blobs too big for this path (streamed instead). The lstat is synchronous on purpose: on a local
   * filesystem it is a few µs of cached metadata, an async one costs a threadpool round trip per request (nginx
   * stats in its event loop too).
   */
  private async readSmallVerified(sha256: string): Promise<Buffer | undefined> {
    const path = this.pathOf(sha256);
    let st;
    try {
      st = lstatSync(path, { bigint: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw await this.missingError(sha256);
      throw err;
    }
    if (!st.isFile() || st.size > BigInt(this.smallBlobBytes)) return undefined;
    const hit = this.memory.get(sha256, tokenOf(st));
    if (hit) return hit;
    let load = this.loading.get(sha256);
    if (!load) {
      load = this.loadSmall(sha256).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, load);
    }
    return load;
  }

  private async loadSmall(sha256: string): Promise<Buffer | undefined> {
    const fh = await this.openBlobFile(sha256);
    let bytes: Buffer;
    let stable: string | undefined;
    let held: HeldFile | undefined;
    try {
      const before = await fh.stat({ bigint: true });
      if (!before.isFile()) throw new CasError('CAS_CORRUPT', `blob sha256:${sha256} is not a regular file`);
      if (before.size > BigInt(this.smallBlobBytes)) return undefined; // replaced since the lstat: stream it instead
      bytes = await readWhole(fh, Number(before.size));
      const after = await fh.stat({ bigint: true });
      if (tokenOf(after) === tokenOf(before)) {
        stable = tokenOf(after);
        held = heldFile(this.pathOf(sha256), after);
      }
    } finally {
      await fh.close();
    }
    // Verified before under the same change token (inode, size, mtime, ctime): the same trust the streaming path
    // gives, and it spares re-hashing every small blob that fell out of the memory cache on each request.
    if (stable !== undefined && this.verified.isVerified(sha256, stable)) {
      this.memory.set(sha256, stable, bytes, held);
      return bytes;
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) {
      this.verified.forget(sha256);
      await this.quarantine(sha256, `verify-on-read: content hashes to sha256:${actual}`);
      throw corruptError(sha256, actual);
    }
    if (stable !== undefined) {
      this.verified.remember(sha256, stable);
      this.memory.set(sha256, stable, bytes, held);
    }
    return bytes;
  }

  private async streamVerified(sha256: string, range?: ByteRange): Promise<VerifiedRead> {
    const fh = await this.openBlobFile(sha256);
    let size: number;
    try {
      // The token comes from the open descriptor, so it describes exactly the file we are about to stream.
      const result = await this.verifyHandle(sha256, fh, false);
      size = result.size;
      if (!result.ok) {
        await fh.close();
        await this.quarantine(sha256, `verify-on-read: content hashes to sha256:${result.actual ?? '?'}`);
        throw corruptError(sha256, result.actual);
      }
      if (range) checkRange(range, size);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    const stream = fh.createReadStream({
      ...(range ? { start: range.start, end: range.end } : {}),
      highWaterMark: STREAM_HIGH_WATER_MARK,
    });
    return { sha256, size, ...(range ? { range } : {}), stream };
  }

  async verify(sha256: string, options: { force?: boolean } = {}): Promise<VerifyResult> {
    const fh = await this.openBlobFile(sha256);
    let result: VerifyResult;
    try {
      result = await this.verifyHandle(sha256, fh, options.force ?? false);
    } finally {
      await fh.close();
    }
    if (!result.ok) await this.quarantine(sha256, `verify: content hashes to sha256:${result.actual ?? '?'}`);
    return result;
  }

  async put(source: BlobSource, expected?: PutExpectation, options: PutOptions = {}): Promise<PutResult> {
    const staged = await this.stage(source, expected, options);
    const [result] = await this.publishStaged([staged], async (names) => {
      for (const name of names) await options.beforePublish?.(name);
    });
    return result!;
  }

  /**
   * Writes the bytes to a temporary file while hashing them and checks digest, size and limit (the partial copy
   * is deleted on any refusal). Nothing is synced or visible yet: hand the result to `publishStaged`.
   */
  async stage(source: BlobSource, expected?: PutExpectation, options: { maxSize?: number } = {}): Promise<StagedBlob> {
    checkExpectation(expected);
    const limit = Math.min(options.maxSize ?? this.maxBlobSize, this.maxBlobSize);
    const tmp = join(this.tmpDir, `${this.tmpPrefix}-${this.tmpCounter++}.partial`);
    // Small blobs are written with synchronous calls: page-cache writes of a few KiB take microseconds, while each
    // threadpool round trip costs far more (and waits behind the fsyncs of the batch being published).
    const small = expected?.size !== undefined && expected.size <= this.smallBlobBytes;
    // Created read-only (the descriptor is still writable): spares an fchmod per blob, a journaled metadata change.
    const fd = openSync(tmp, 'wx', 0o444);
    try {
      const { sha256, size } = await writeHashed(fd, small, source, expected, limit);
      if (!this.createsReadOnly) fchmodSync(fd, 0o444);
      const staged: StagedBlob = { sha256, size };
      this.staged.set(staged, { tmp, fd });
      return staged;
    } catch (err) {
      closeQuietly(fd);
      unlinkQuietly(tmp);
      throw err;
    }
  }

  /**
   * Makes a batch durable and visible: every temp file fsynced (concurrently, so the filesystem can commit them
   * in one journal transaction), then `beforePublish` with every name of the batch, then each linked into place
   * (never overwriting; a name already there goes the careful single path: kept if intact, healed if not), then
   * one fsync per touched shard directory. When it resolves every name in the batch is durable; a crash before
   * that leaves only names `beforePublish` was told about.
   */
  async publishStaged(
    batch: readonly StagedBlob[],
    beforePublish: (sha256s: readonly string[]) => Promise<void>,
  ): Promise<PutResult[]> {
    const files = batch.map((b) => this.takeStaged(b));
    try {
      await Promise.all(files.map((f) => this.syncAndClose(f)));
      await beforePublish(batch.map((b) => b.sha256));
      const shards = new Set<string>();
      const results: PutResult[] = [];
      for (let i = 0; i < batch.length; i++) {
        const { sha256, size } = batch[i]!;
        results.push(await this.linkStaged(files[i]!.tmp, sha256, size, shards));
      }
      await Promise.all([...shards].map((dir) => this.syncDir(dir)));
      return results;
    } finally {
      for (const f of files) dropTemp(f);
    }
  }

  /** Deletes staged blobs that will not be published. */
  async discardStaged(batch: readonly StagedBlob[]): Promise<void> {
    for (const b of batch) dropTemp(this.takeStaged(b));
    return Promise.resolve();
  }

  private takeStaged(blob: StagedBlob): StagedFile {
    const file = this.staged.get(blob);
    if (!file) throw new CasError('CAS_INVALID_SOURCE', `sha256:${blob.sha256} was not staged by this store`);
    this.staged.delete(blob);
    return file;
  }

  private async syncAndClose(file: StagedFile): Promise<void> {
    if (this.doFsync) {
      await fsyncAsync(file.fd);
      this.onSync?.('file', file.tmp);
    }
    closeSync(file.fd);
    file.closed = true;
  }

  /** Links one synced temp file into place; a name taken meanwhile falls back to the careful single path. */
  private async linkStaged(tmp: string, sha256: string, size: number, shards: Set<string>): Promise<PutResult> {
    try {
      linkOrRenameSync(tmp, this.pathOf(sha256));
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
      return this.publish(tmp, sha256, size); // already stored (kept or healed there), or named twice in the batch
    }
    this.onLink?.(this.pathOf(sha256));
    shards.add(join(this.blobsDir, sha256.slice(0, 2)));
    return { sha256, size, created: true };
  }

  async quarantine(sha256: string, reason: string): Promise<boolean> {
    const from = this.pathOf(sha256);
    this.verified.forget(sha256);
    this.memory.forget(sha256);
    const dir = join(this.quarantineDir, sha256);
    await mkdir(dir, { recursive: true });
    const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
    try {
      await rename(from, join(dir, `${stamp}.blob`));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    const record: QuarantineRecord = { sha256, reason, quarantinedAt: new Date().toISOString() };
    await writeFile(join(dir, `${stamp}.json`), `${JSON.stringify(record)}\n`, { mode: 0o444 });
    await this.syncDir(dir);
    await this.syncDir(join(this.blobsDir, sha256.slice(0, 2)));
    return true;
  }

  async isQuarantined(sha256: string): Promise<boolean> {
    assertSha256Hex(sha256);
    try {
      return (await stat(join(this.quarantineDir, sha256))).isDirectory();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Why and when a blob was quarantined (one record per quarantine event, oldest first). */
  async quarantineRecords(sha256: string): Promise<QuarantineRecord[]> {
    assertSha256Hex(sha256);
    const dir = join(this.quarantineDir, sha256);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: QuarantineRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const parsed: unknown = JSON.parse(await readFile(join(dir, name), 'utf8'));
      if (typeof parsed === 'object' && parsed !== null) {
        const r = parsed as Record<string, unknown>;
        out.push({ sha256, reason: String(r['reason'] ?? ''), quarantinedAt: String(r['quarantinedAt'] ?? '') });
      }
    }
    return out;
  }

  async delete(sha256: string): Promise<boolean> {
    const path = this.pathOf(sha256);
    this.verified.forget(sha256);
    this.memory.forget(sha256);
    try {
      await unlink(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    await this.syncDir(join(this.blobsDir, sha256.slice(0, 2)));
    return true;
  }

  async *list(): AsyncIterable<string> {
    const shards = (await readdir(this.blobsDir)).filter((s) => /^[0-9a-f]{2}$/.test(s)).sort();
    for (const shard of shards) {
      const names = (await readdir(join(this.blobsDir, shard)))
        .filter((n) => isSha256Hex(n) && n.startsWith(shard))
        .sort();
      yield* names;
    }
  }

  async removePartialUploads(): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.tmpDir)) {
      await unlink(join(this.tmpDir, name)).catch(() => undefined);
      removed++;
    }
    if (removed > 0) await this.syncDir(this.tmpDir);
    return removed;
  }

  /** Makes a verified temp file visible under its digest; write-once (link never overwrites). */
  private async publish(tmp: string, sha256: string, size: number): Promise<PutResult> {
    const final = this.pathOf(sha256);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.has(sha256)) {
        const existing = await this.verify(sha256).catch((err: unknown) => {
          if (err instanceof CasError && (err.code === 'CAS_NOT_FOUND' || err.code === 'CAS_QUARANTINED'))
            return undefined;
          throw err;
        });
        if (existing?.ok) return { sha256, size, created: false };
        // The old copy was corrupt (now quarantined by verify) or vanished: this put heals it.
      }
      try {
        await linkOrRename(tmp, final);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) continue; // a concurrent put won; check its copy
        throw err;
      }
      this.onLink?.(final);
      await this.syncDir(join(this.blobsDir, sha256.slice(0, 2)));
      return { sha256, size, created: true };
    }
    throw new CasError(
      'CAS_CORRUPT',
      `could not publish blob sha256:${sha256}: the stored copy keeps failing verification`,
    );
  }

  private async missingError(sha256: string): Promise<CasError> {
    if (await this.isQuarantined(sha256)) {
      return new CasError('CAS_QUARANTINED', `blob sha256:${sha256} was quarantined after failing verification`, {
        details: { sha256 },
      });
    }
    return new CasError('CAS_NOT_FOUND', `blob sha256:${sha256} is not in the store`, { details: { sha256 } });
  }

  private async openBlobFile(sha256: string): Promise<FileHandle> {
    const path = this.pathOf(sha256);
    try {
      return await open(path, READ_FLAGS);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw await this.missingError(sha256);
      if (isErrno(err, 'ELOOP'))
        throw new CasError('CAS_CORRUPT', `blob sha256:${sha256} is a symlink, refusing to follow it`);
      throw err;
    }
  }

  private async verifyHandle(sha256: string, fh: FileHandle, force: boolean): Promise<VerifyResult> {
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) throw new CasError('CAS_CORRUPT', `blob sha256:${sha256} is not a regular file`);
    const token = tokenOf(before);
    const size = Number(before.size);
    if (!force && this.verified.isVerified(sha256, token)) return { sha256, ok: true, size, cached: true };
    const actual = await hashHandle(fh);
    if (actual !== sha256) {
      this.verified.forget(sha256);
      return { sha256, ok: false, size, actual, cached: false };
    }
    const after = await fh.stat({ bigint: true });
    // Only cache when nothing touched the file while it was being hashed.
    if (tokenOf(after) === token) this.verified.remember(sha256, token);
    return { sha256, ok: true, size, cached: false };
  }

  private async syncDir(dir: string): Promise<void> {
    if (!this.doFsync) return;
    // Only the fsync goes to the threadpool: open and close of a directory are quick metadata calls.
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
    this.onSync?.('dir', dir);
  }
}

interface StagedFile {
  tmp: string;
  fd: number;
  closed?: boolean;
}

/**
 * Whether files created with mode 0444 get exactly 0444 (a umask that strips read bits needs the fchmod). Read
 * from /proc: process.umask() sets the mask to 0 for a moment, racing files other threads create. Unknown → false.
 */
function umaskKeepsReadOnly(): boolean {
  try {
    const line = /^Umask:\s+([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return line !== null && (0o444 & ~parseInt(line[1]!, 8)) === 0o444;
  } catch {
    return false;
  }
}

function dropTemp(file: StagedFile): void {
  if (!file.closed) closeQuietly(file.fd);
  unlinkQuietly(file.tmp);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed or never opened: nothing to release
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already; a leftover would be removed by removePartialUploads
  }
}

const fsyncAsync = promisify(fsync);
const writeAsync = promisify(write);

function checkExpectation(expected: PutExpectation | undefined): void {
  if (expected === undefined) return;
  assertSha256Hex(expected.sha256, 'expected sha256');
  if (expected.size !== undefined && !(Number.isSafeInteger(expected.size) && expected.size >= 0)) {
    throw new CasError(
      'CAS_SIZE_MISMATCH',
      `expected size must be a non-negative integer, got ${String(expected.size)}`,
    );
  }
}

/** Copies `source` into `fd` while hashing it; refuses a wrong digest or size, or bytes over `limit`. */
async function writeHashed(
  fd: number,
  sync: boolean,
  source: BlobSource,
  expected: PutExpectation | undefined,
  limit: number,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source as AsyncIterable<unknown> | Iterable<unknown>) {
    if (!(chunk instanceof Uint8Array)) {
      throw new CasError('CAS_INVALID_SOURCE', `put() needs a byte stream; got a chunk of type ${typeof chunk}`);
    }
    size += chunk.byteLength;
    if (expected?.size !== undefined && size > expected.size) {
      throw new CasError(
        'CAS_SIZE_MISMATCH',
        `blob sha256:${expected.sha256} is larger than the expected ${expected.size} bytes`,
      );
    }
    if (size > limit) throw new CasError('CAS_SIZE_LIMIT', `blob exceeds the size limit of ${limit} bytes`);
    hash.update(chunk);
    if (sync) writeFullySync(fd, chunk);
    else await writeFully(fd, chunk);
  }
  const sha256 = hash.digest('hex');
  checkDigestAndSize(sha256, size, expected);
  return { sha256, size };
}

/** The checks every put makes once all bytes are in (shared with callers that hash in memory). */
export function checkDigestAndSize(sha256: string, size: number, expected: PutExpectation | undefined): void {
  if (expected !== undefined && sha256 !== expected.sha256) {
    throw new CasError(
      'CAS_DIGEST_MISMATCH',
      `blob content hashes to sha256:${sha256}, expected sha256:${expected.sha256}`,
      { details: { expected: expected.sha256, actual: sha256, size } },
    );
  }
  if (expected?.size !== undefined && size !== expected.size) {
    throw new CasError('CAS_SIZE_MISMATCH', `blob sha256:${sha256} has ${size} bytes, expected ${expected.size}`, {
      details: { expected: expected.size, actual: size },
    });
  }
}

/** Change token of a file version: any write moves ctime (which userspace cannot set back). */
type TokenFields = { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint };

function tokenOf(st: TokenFields): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** `cachedVerifiedSync`'s lstat options, one object for every call. */
const HELD_LSTAT = { bigint: true, throwIfNoEntry: false } as const;

/** A memory-held blob's file: its path and the change token's fields, for `cachedVerifiedSync`. */
interface HeldFile extends TokenFields {
  path: string;
}

function heldFile(path: string, st: TokenFields): HeldFile {
  return { path, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

function bufferedRead(sha256: string, size: number, range: ByteRange | undefined, bytes: Buffer): VerifiedRead {
  let stream: Readable | undefined;
  return {
    sha256,
    size,
    ...(range ? { range } : {}),
    bytes,
    get stream(): Readable {
      stream ??= Readable.from([bytes], { objectMode: false });
      return stream;
    },
  };
}

async function readWhole(fh: FileHandle, expected: number): Promise<Buffer> {
  // Read to EOF (not just `expected` bytes), so bytes appended after the stat are hashed too.
  const chunks: Buffer[] = [];
  let position = 0;
  let buf = Buffer.allocUnsafe(Math.max(expected, 1) + 1);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, position);
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    position += bytesRead;
    if (bytesRead === buf.length) buf = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
    else buf = buf.subarray(bytesRead);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function corruptError(sha256: string, actual: string | undefined): CasError {
  return new CasError(
    'CAS_CORRUPT',
    `blob sha256:${sha256} failed verification (content hashes to sha256:${actual ?? '?'}); it has been quarantined and will not be served`,
    { details: { sha256, actual } },
  );
}

export function checkRange(range: ByteRange, size: number): void {
  const ok =
    Number.isSafeInteger(range.start) &&
    Number.isSafeInteger(range.end) &&
    range.start >= 0 &&
    range.end >= range.start &&
    range.end < size;
  if (!ok) {
    throw new CasError(
      'CAS_INVALID_RANGE',
      `range ${range.start}-${range.end} is not satisfiable for a blob of ${size} bytes`,
      {
        details: { size },
      },
    );
  }
}

async function hashHandle(fh: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
  let position = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, position);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

async function writeFully(fd: number, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength)
    offset += (await writeAsync(fd, chunk, offset, chunk.byteLength - offset)).bytesWritten;
}

function writeFullySync(fd: number, chunk: Uint8Array): void {
  let offset = 0;
  while (offset < chunk.byteLength) offset += writeSync(fd, chunk, offset, chunk.byteLength - offset);
}

function linkOrRenameSync(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (err) {
    // Filesystems without hard links: rename is still atomic, but can replace (see linkOrRename).
    if (isErrno(err, 'EPERM') || isErrno(err, 'ENOTSUP') || isErrno(err, 'EOPNOTSUPP')) {
      if (existsSync(to)) throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' });
      renameSync(from, to);
      return;
    }
    throw err;
  }
}

async function linkOrRename(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    // Filesystems without hard links: rename is still atomic, but can replace; publish() checked existence first.
    if (isErrno(err, 'EPERM') || isErrno(err, 'ENOTSUP') || isErrno(err, 'EOPNOTSUPP')) {
      await rename(from, to);
      return;
    }
    throw err;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
