import type { Readable } from 'node:stream';

/** Bytes to store: a stream, an async iterable of chunks, or an array of chunks. */
export type BlobSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Readable;

/** An inclusive byte range, as HTTP `Range: bytes=start-end` names it. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobStat {
  size: number;
}

/** What the caller already knows about the bytes it is about to `put` (from a signed manifest). */
export interface PutExpectation {
  sha256: string;
  size?: number;
}

export interface PutOptions {
  /** Refuse (and delete the partial copy) once more than this many bytes arrive. */
  maxSize?: number;
  /**
   * Called once the bytes are hashed and durable in a temporary file, just before a *new* blob becomes visible
   * under its name. The import journal uses it to record the blob before it can exist (crash recovery).
   */
  beforePublish?: (sha256: string) => Promise<void> | void;
}

export interface PutResult {
  sha256: string;
  size: number;
  /** False when the store already held a good copy (write-once: the put verified the bytes and did nothing). */
  created: boolean;
}

/** A blob whose bytes were written and checked but are neither durable nor visible yet (batched writes). */
export interface StagedBlob {
  readonly sha256: string;
  readonly size: number;
}

/** A read whose bytes were checked against the name (now or earlier, with the file unchanged since). */
export interface VerifiedRead {
  sha256: string;
  /** Size of the whole blob. */
  size: number;
  /** The range being read, when one was asked for. */
  range?: ByteRange;
  /** The bytes (of the range) when the backend had them in memory: small blobs, served without a stream. */
  bytes?: Buffer;
  /** The bytes as a stream (wraps `bytes` when present). Consume or destroy it. */
  readonly stream: Readable;
}

export interface VerifyResult {
  sha256: string;
  ok: boolean;
  size: number;
  /** The digest the stored bytes actually have (only when `ok` is false and it was computed). */
  actual?: string;
  /** True when the answer came from the verified-cache without reading the bytes. */
  cached: boolean;
}

export interface QuarantineRecord {
  sha256: string;
  reason: string;
  quarantinedAt: string;
}

/**
 * The storage port: a write-once, content-addressed blob store keyed by sha256 (lowercase hex). Backends: the
 * filesystem now; an S3 backend (conditional `If-None-Match: *` puts, object checksums) must fit without touching
 * callers, so nothing here exposes paths or file descriptors.
 *
 * Errors are `CasError`s: CAS_INVALID_DIGEST, CAS_DIGEST_MISMATCH, CAS_SIZE_MISMATCH, CAS_SIZE_LIMIT,
 * CAS_NOT_FOUND, CAS_QUARANTINED, CAS_CORRUPT, CAS_INVALID_RANGE.
 */
export interface BlobStore {
  has(sha256: string): Promise<boolean>;
  stat(sha256: string): Promise<BlobStat | undefined>;
  /** Raw read, not verified. Prefer `openVerifiedRead` for anything that leaves the process. */
  openRead(sha256: string, range?: ByteRange): Promise<Readable>;
  /**
   * Read that refuses bytes that no longer match the name: a mismatch quarantines the blob and throws
   * CAS_CORRUPT. Backends may cache a positive answer while the object provably did not change.
   */
  openVerifiedRead(sha256: string, range?: ByteRange): Promise<VerifiedRead>;
  /** Checks the stored bytes (cached unless `force`); a mismatch quarantines the blob and returns ok=false. */
  verify(sha256: string, options?: { force?: boolean }): Promise<VerifyResult>;
  /** Hashes while writing; refuses and deletes the partial copy on digest/size mismatch or over the size limit. */
  put(source: BlobSource, expected?: PutExpectation, options?: PutOptions): Promise<PutResult>;
  /** Moves the blob out of the served namespace for good (kept for forensics). False if it was not there. */
  quarantine(sha256: string, reason: string): Promise<boolean>;
  isQuarantined(sha256: string): Promise<boolean>;
  /** Garbage collection only (unreferenced blobs of an interrupted import, fsck orphans). */
  delete(sha256: string): Promise<boolean>;
  /** Every stored blob name, in ascending order. */
  list(): AsyncIterable<string>;
  /**
   * Batched writes (optional; the import session uses them when present): `stage` consumes and checks the bytes
   * like `put` but leaves them in a temporary place; `publishStaged` makes a batch durable and visible with
   * shared syncs, calling `beforePublish` once with every digest about to become visible first; `discardStaged`
   * drops staged blobs that will not be published.
   */
  stage?(source: BlobSource, expected?: PutExpectation, options?: { maxSize?: number }): Promise<StagedBlob>;
  publishStaged?(
    batch: readonly StagedBlob[],
    beforePublish: (sha256s: readonly string[]) => Promise<void>,
  ): Promise<PutResult[]>;
  discardStaged?(batch: readonly StagedBlob[]): Promise<void>;
  /** Removes partial uploads left by a crash. Only call while no put is in flight. */
  removePartialUploads?(): Promise<number>;
  /** Path of the blob on a local filesystem, when the backend has one (hardlink exports). */
  localPath?(sha256: string): string | undefined;
  /**
   * The whole verified bytes of a blob already held in memory, without a promise (the mirror's hot path), only
   * while the backend can tell synchronously that the stored object is the one they were verified from; else
   * undefined, and the caller uses `openVerifiedRead`, which re-checks and reports errors.
   */
  cachedVerifiedSync?(sha256: string): Buffer | undefined;
}
