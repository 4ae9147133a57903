import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  BlobSource,
  BlobStore,
  ByteRange,
  PutExpectation,
  PutResult,
  StagedBlob,
  VerifiedRead,
  VerifyResult,
} from './blob-store.js';
import { assertSha256Hex, isSha256Hex } from './digest-utils.js';
import { CasError } from './errors.js';
import { checkDigestAndSize, FsBlobStore, type FsBlobStoreOptions } from './fs-blob-store.js';
import { ImportLock, lockedError, newImportId, removeStaleLockTemps } from './import-lock.js';
import { MirrorIndex, type ApplySnapshotInput } from './mirror-index.js';
import type { ManifestBlob, SnapshotInfo, SnapshotManifest, SnapshotRecord } from './types.js';
import { validateEntry, validateManifestBlobs, validateSnapshotInfo } from './validate.js';

/** Files and directories of a mirror store directory (besides the blob store's own layout). */
export const MIRROR_STORE_LAYOUT = {
  index: 'index.sqlite',
  staging: 'staging',
} as const;

/** Points of `commit` where the fault-injection hook runs (crash tests kill the process there). */
export type CommitStage = 'blobs-flushed' | 'blobs-checked' | 'in-transaction' | 'committed' | 'released';

/** A publish batch closes at this many blobs or bytes (fewer, larger batches share more syncs). */
const BATCH_BLOBS = 512;
const BATCH_BYTES = 64 * 1024 * 1024;
/** Two batches publish while the next one is staged: the syncs of one overlap the writes of the next. */
const MAX_BATCHES_IN_FLIGHT = 2;
/** Backends without batches: puts at a time, and the memory they may hold. */
const MAX_PUTS_IN_FLIGHT = 16;
const MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
const CONCURRENT_PUT_MAX_BYTES = 8 * 1024 * 1024;

export interface MirrorStoreOptions {
  /**
   * Make a new, empty store when `dir` holds none (default true). The CLI passes false for every command but
   * `mirror import --create`, so a mistyped path is an error rather than a silently empty mirror.
   */
  create?: boolean;
  /** Storage backend; defaults to an FsBlobStore in the store directory. */
  blobStore?: BlobStore;
  /** Options for the default FsBlobStore. */
  fs?: FsBlobStoreOptions;
  /** Clean up after an interrupted import when no live import holds the store (default true). */
  recover?: boolean;
  /** How long a commit waits for another process's SQLite write lock (default 10 s). */
  busyTimeoutMs?: number;
  /**
   * A shared index (PostgreSQL) instead of the embedded `index.sqlite`: it is authoritative and publishes
   * snapshots; the store reads its synchronous read model `local`.
   */
  sharedIndex?: SharedIndex;
  /** Test seam: runs at each commit stage (synchronously; `in-transaction` runs inside the SQLite transaction). */
  faultInjection?: { onCommitStage?: (stage: CommitStage, importId: string) => void };
}

/**
 * An index shared by several processes/hosts. `local` is a synchronous read model the backend keeps current
 * (LISTEN/NOTIFY or polling); writes go to the backend first and reach `local` from it.
 */
export interface SharedIndex {
  readonly local: MirrorIndex;
  /** Brings `local` up to date with everything committed so far. */
  refresh(): Promise<void>;
  /** The publish transaction: order checks, snapshot, blobs, entries, head; all or nothing; durable once resolved. */
  applySnapshot(input: ApplySnapshotInput): Promise<SnapshotRecord>;
  /** Whether a store was created in the shared index (the `create: false` check). */
  hasStore(): Promise<boolean>;
  /** Records that the store exists (idempotent). */
  createStore(): Promise<void>;
  /** Flushes pending writes and disconnects. */
  close(): Promise<void>;
}

export interface CommitInput {
  /** The transfer manifest (already verified by the importer); kept verbatim for audit. */
  manifest: SnapshotManifest;
  /** The signed attestations of the bundle (Sigstore bundles), kept verbatim for audit. */
  signedBundles: unknown;
  /** The entries to publish (transfer-manifest entry shape); validated again here. */
  entries: readonly unknown[];
  /** Accept a snapshot whose `previous` is not the current head (an explicit operator decision). */
  allowGap?: boolean;
}

export interface RecoveryReport {
  /** Journals of interrupted imports that were processed. */
  journals: number;
  /** Blobs those imports had added that no committed snapshot references (deleted). */
  removedBlobs: string[];
  /** Partial uploads removed from the blob store's temp area. */
  removedPartials: number;
  /** Set when recovery did not run because a live import holds the store. */
  skipped?: 'import-in-progress';
}

/**
 * The mirror's store: a BlobStore (bytes) + a MirrorIndex (what is published) + atomic snapshot publication.
 * Blobs put during an import land in the CAS but stay invisible until `commit` references them in the same
 * SQLite transaction that moves the head.
 */
export class MirrorStore {
  private closed = false;
  private readonly sessions = new Set<ImportSession>();

  private constructor(
    readonly dir: string,
    readonly blobs: BlobStore,
    readonly index: MirrorIndex,
    private readonly options: MirrorStoreOptions,
  ) {}

  static async open(dir: string, options: MirrorStoreOptions = {}): Promise<MirrorStore> {
    const shared = options.sharedIndex;
    // With a shared index, `dir` only holds this host's import journal and lock: the index says whether a store is there.
    const present = shared ? await shared.hasStore() : await MirrorStore.exists(dir);
    if (options.create === false && !present)
      throw new CasError('STORE_MISSING', `no mirror store at ${dir}`, { details: { dir } });
    await mkdir(join(dir, MIRROR_STORE_LAYOUT.staging), { recursive: true });
    if (shared && !present) await shared.createStore();
    const blobs = options.blobStore ?? (await FsBlobStore.open(dir, options.fs));
    const index =
      shared?.local ??
      MirrorIndex.open(join(dir, MIRROR_STORE_LAYOUT.index), { busyTimeoutMs: options.busyTimeoutMs ?? 10_000 });
    const store = new MirrorStore(dir, blobs, index, options);
    if (options.recover !== false) {
      try {
        await store.recover();
      } catch (err) {
        await store.closeIndex();
        throw err;
      }
    }
    return store;
  }

  /** A store is there when its index is: an empty or unrelated directory is not a store. */
  static async exists(dir: string): Promise<boolean> {
    const st = await stat(join(dir, MIRROR_STORE_LAYOUT.index)).catch(() => undefined);
    return st?.isFile() === true;
  }

  get stagingDir(): string {
    return join(this.dir, MIRROR_STORE_LAYOUT.staging);
  }

  head(): SnapshotRecord | undefined {
    this.assertOpen();
    return this.index.head();
  }

  /** Throws SNAPSHOT_REPLAY / SNAPSHOT_ROLLBACK / SNAPSHOT_GAP early, before an importer streams any blob. */
  checkSnapshotOrder(snapshot: SnapshotInfo, options: { allowGap?: boolean } = {}): void {
    this.assertOpen();
    this.index.checkSnapshotOrder(validateSnapshotInfo(snapshot), options.allowGap ?? false);
  }

  /**
   * Starts an import (one per store across processes: IMPORT_LOCKED otherwise). Leftovers of a crashed import
   * are cleaned first.
   */
  async beginImport(): Promise<ImportSession> {
    this.assertOpen();
    const id = newImportId();
    const lock = await this.acquireLock(id);
    let journal: FileHandle | undefined;
    try {
      await this.cleanStaging(id);
      journal = await open(
        join(this.stagingDir, `${id}.journal`),
        constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_EXCL,
        0o600,
      );
      await syncDir(this.stagingDir);
    } catch (err) {
      await journal?.close();
      await lock.release();
      throw err;
    }
    const session = new ImportSession(this, id, lock, journal, this.options.faultInjection?.onCommitStage);
    this.sessions.add(session);
    return session;
  }

  /** Removes what an interrupted import left (unreferenced new blobs, partial uploads), unless one is live. */
  async recover(): Promise<RecoveryReport> {
    this.assertOpen();
    const id = newImportId();
    let lock: ImportLock;
    try {
      lock = await this.acquireLock(id);
    } catch (err) {
      if (err instanceof CasError && err.code === 'IMPORT_LOCKED')
        return { journals: 0, removedBlobs: [], removedPartials: 0, skipped: 'import-in-progress' };
      throw err;
    }
    try {
      return await this.cleanStaging(id);
    } finally {
      await lock.release();
    }
  }

  /** Runs `fn` holding the import slot (fsck uses it so staged blobs are never mistaken for orphans). */
  async withImportLock<T>(fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    const id = newImportId();
    const lock = await this.acquireLock(id);
    try {
      await this.cleanStaging(id);
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /**
   * Verified read of a blob (verify-on-read with the backend's cache). A blob whose bytes no longer match is
   * quarantined, marked in the index, and the caller gets CAS_CORRUPT; afterwards CAS_QUARANTINED.
   */
  async openBlob(sha256: string, range?: ByteRange): Promise<VerifiedRead> {
    this.assertOpen();
    try {
      return await this.blobs.openVerifiedRead(sha256, range);
    } catch (err) {
      if (err instanceof CasError && (err.code === 'CAS_CORRUPT' || err.code === 'CAS_QUARANTINED'))
        this.markQuarantined(sha256);
      throw err;
    }
  }

  /**
   * The whole verified bytes of a blob the backend holds in memory and can vouch for synchronously (see
   * BlobStore.cachedVerifiedSync); undefined otherwise, or when closed: then use `openBlob`.
   */
  cachedBlobSync(sha256: string): Buffer | undefined {
    return this.closed ? undefined : this.blobs.cachedVerifiedSync?.(sha256);
  }

  async verifyBlob(sha256: string, options: { force?: boolean } = {}): Promise<VerifyResult> {
    this.assertOpen();
    const result = await this.blobs.verify(sha256, options);
    if (!result.ok) this.markQuarantined(sha256);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const s of [...this.sessions]) await s.abort().catch(() => undefined);
    this.closed = true;
    await this.closeIndex();
  }

  private async closeIndex(): Promise<void> {
    if (this.options.sharedIndex) await this.options.sharedIndex.close();
    else this.index.close();
  }

  /** @internal The publish transaction, on the shared index when there is one. */
  async publish(input: ApplySnapshotInput): Promise<SnapshotRecord> {
    const shared = this.options.sharedIndex;
    if (!shared) return this.index.applySnapshot(input);
    // The read model may lag another host's import: order checks see the latest head first.
    return shared.applySnapshot(input);
  }

  /** Catches the read model up with a shared index (no-op for the embedded one). */
  async refresh(): Promise<void> {
    await this.options.sharedIndex?.refresh();
  }

  /** @internal */
  forgetSession(session: ImportSession): void {
    this.sessions.delete(session);
  }

  /** @internal Deletes blobs a session created that no committed snapshot references. */
  async removeUnreferenced(candidates: Iterable<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const sha of candidates) {
      if (!isSha256Hex(sha) || this.index.isReferenced(sha)) continue;
      if (await this.blobs.delete(sha)) removed.push(sha);
    }
    return removed;
  }

  private markQuarantined(sha256: string): void {
    try {
      if (this.index.getBlob(sha256)?.state === 'ok') this.index.setBlobState(sha256, 'quarantined');
    } catch {
      // The blob store's quarantine is authoritative; fsck reconciles the index if this write lost a lock race.
    }
  }

  private async acquireLock(id: string): Promise<ImportLock> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const got = await ImportLock.tryAcquire(this.stagingDir, id);
      if (got instanceof ImportLock) return got;
      if (!got.stale) throw lockedError(got.heldBy);
      // The holder died: its leftovers are cleaned once we hold the lock ourselves.
      await ImportLock.breakStale(this.stagingDir, got.heldBy);
    }
    throw lockedError(null);
  }

  /** With the import slot held: every journal but ours belongs to a dead import. */
  private async cleanStaging(ownId: string): Promise<RecoveryReport> {
    const report: RecoveryReport = { journals: 0, removedBlobs: [], removedPartials: 0 };
    for (const name of await readdir(this.stagingDir)) {
      if (!name.endsWith('.journal') || name === `${ownId}.journal`) continue;
      const path = join(this.stagingDir, name);
      const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 0);
      report.removedBlobs.push(...(await this.removeUnreferenced(lines)));
      await unlink(path);
      report.journals++;
    }
    report.removedPartials = (await this.blobs.removePartialUploads?.()) ?? 0;
    const lockTemps = await removeStaleLockTemps(this.stagingDir);
    if (report.journals > 0 || lockTemps > 0) await syncDir(this.stagingDir);
    return report;
  }

  private assertOpen(): void {
    if (this.closed) throw new CasError('STORE_CLOSED', `mirror store ${this.dir} is closed`);
  }
}

type SessionState = 'open' | 'committing' | 'committed' | 'aborted';

/**
 * One import: `put` blobs (journaled before they become visible in the CAS), then `commit` (one transaction) or
 * `abort`. If `commit` throws, nothing was published and the session stays open: retry or `abort()`.
 */
export class ImportSession {
  private state: SessionState = 'open';
  private readonly putSizes = new Map<string, number>();
  private readonly created = new Set<string>();
  private journalTail: Promise<void> = Promise.resolve();
  /** Digests waiting for the next journal write (group commit: one fdatasync for all of them). */
  private journalPending: string[] = [];
  private journalNext: Promise<void> | undefined;
  /** Staged blobs not yet handed to a publish batch, and their bytes. */
  private batch: StagedBlob[] = [];
  private batchBytes = 0;
  /** Publishes (batches, or single puts of a backend without batches) running in the background. */
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightBytes = 0;
  /** Whether the index held any blob when this session first asked (see isPublished). */
  private indexHasBlobs: boolean | undefined;
  /** The first background failure: every later put, flush and commit throws it. */
  private failure: { error: unknown } | undefined;

  /** @internal use MirrorStore.beginImport */
  constructor(
    private readonly store: MirrorStore,
    readonly id: string,
    private readonly lock: ImportLock,
    private readonly journal: FileHandle,
    private readonly onStage: ((stage: CommitStage, importId: string) => void) | undefined,
  ) {}

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Blobs put so far in this session (sha256 → size). */
  get blobs(): ReadonlyMap<string, number> {
    return this.putSizes;
  }

  /** Stores one blob; see BlobStore.put. The blob is invisible to readers until `commit`. */
  async put(source: BlobSource, expected?: PutExpectation, options: { maxSize?: number } = {}): Promise<PutResult> {
    this.assertOpen();
    const result = await this.store.blobs.put(source, expected, {
      ...options,
      beforePublish: (sha256) => this.appendJournal([sha256]),
    });
    this.putSizes.set(result.sha256, result.size);
    if (result.created) this.created.add(result.sha256);
    return result;
  }

  /** Blobs this session added to the store so far (published; see `flush`). */
  get newBlobs(): number {
    return this.created.size;
  }

  /**
   * Stores one blob like `put`, but returns once its bytes are consumed and checked (a wrong digest or size
   * throws here): making it durable and visible happens in the background, batched (one fsync per file, all of a
   * batch at once, one journal sync and one fsync per directory for the batch) or, on backends without batches,
   * as several puts at a time. `flush` (and `commit`, which calls it) waits for all of it. A blob already
   * published and intact in the index is only hashed, not written again.
   */
  async putBatched(source: BlobSource, expected: PutExpectation, options: { maxSize?: number } = {}): Promise<void> {
    this.assertOpen();
    this.throwFailure();
    assertSha256Hex(expected.sha256, 'expected sha256');
    if (await this.isPublished(expected)) {
      await hashOnly(source, expected, options.maxSize);
      this.putSizes.set(expected.sha256, expected.size!);
      return;
    }
    const blobs = this.store.blobs;
    if (blobs.stage && blobs.publishStaged) {
      const staged = await blobs.stage(source, expected, options);
      this.putSizes.set(staged.sha256, staged.size);
      this.batch.push(staged);
      this.batchBytes += staged.size;
      if (this.batch.length >= BATCH_BLOBS || this.batchBytes >= BATCH_BYTES) await this.startBatch();
      return;
    }
    await this.putConcurrently(source, expected, options);
  }

  /** Waits until every blob handed to `putBatched` is durable and visible; throws the first failure. */
  async flush(): Promise<void> {
    if (this.batch.length > 0) await this.startBatch();
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    this.throwFailure();
  }

  /**
   * Publishes the snapshot: validates it, checks that every referenced blob is present with the right size, then
   * in one SQLite transaction re-checks the order rules (SNAPSHOT_REPLAY / SNAPSHOT_ROLLBACK / SNAPSHOT_GAP),
   * inserts the snapshot, its blobs and entries and moves the head.
   */
  async commit(input: CommitInput): Promise<SnapshotRecord> {
    this.assertOpen();
    this.state = 'committing';
    let record: SnapshotRecord;
    let referenced: Set<string>;
    try {
      // Every blob durable and visible before the index can name it.
      await this.flush();
      this.onStage?.('blobs-flushed', this.id);
      if (
        typeof input !== 'object' ||
        input === null ||
        typeof input.manifest !== 'object' ||
        input.manifest === null
      ) {
        throw new CasError('SNAPSHOT_INVALID', 'commit() needs { manifest, signedBundles, entries }');
      }
      if (!Array.isArray(input.entries))
        throw new CasError('INDEX_INVALID_INPUT', 'commit(): entries must be an array');
      const snapshot = validateSnapshotInfo(input.manifest.snapshot);
      const manifestBlobs = validateManifestBlobs(input.manifest.blobs);
      const entries = input.entries.map((e, i) => validateEntry(e, `entries[${i}]`));
      const allowGap = input.allowGap ?? false;
      await this.store.refresh();
      this.store.index.checkSnapshotOrder(snapshot, allowGap);
      const blobs = await this.checkBlobs(manifestBlobs, entries);
      referenced = new Set(blobs.map((b) => b.sha256));
      this.onStage?.('blobs-checked', this.id);
      record = await this.store.publish({
        snapshot,
        manifestJson: JSON.stringify(input.manifest),
        signedBundlesJson: JSON.stringify(input.signedBundles ?? null),
        blobs,
        entries,
        allowGap,
        importedAt: new Date().toISOString(),
        inTransaction: () => this.onStage?.('in-transaction', this.id),
      });
    } catch (err) {
      this.state = 'open';
      throw err;
    }
    this.state = 'committed';
    this.onStage?.('committed', this.id);
    // Blobs put but not referenced by the snapshot are garbage: the blob set stays "exactly what is referenced".
    // Those the committed snapshot names are referenced without asking the index (one query per blob otherwise).
    await this.store.removeUnreferenced([...this.created].filter((sha) => !referenced.has(sha)));
    await this.finish();
    this.onStage?.('released', this.id);
    return record;
  }

  /** Drops everything this import added to the CAS and releases the store. Idempotent. */
  async abort(): Promise<void> {
    if (this.state === 'aborted' || this.state === 'committed') return;
    this.state = 'aborted';
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    const unpublished = this.batch;
    this.batch = [];
    await this.store.blobs.discardStaged?.(unpublished).catch(() => undefined);
    await this.journalTail.catch(() => undefined);
    await this.store.removeUnreferenced(this.created);
    await this.finish();
  }

  private async checkBlobs(
    manifestBlobs: ManifestBlob[],
    entries: ReturnType<typeof validateEntry>[],
  ): Promise<ManifestBlob[]> {
    const sizes = new Map<string, number>();
    for (const b of manifestBlobs) sizes.set(b.sha256, b.size);
    for (const e of entries) {
      const listed = sizes.get(e.digests.sha256);
      if (listed !== undefined && listed !== e.size) {
        throw new CasError(
          'INDEX_INVALID_INPUT',
          `entry ${e.ecosystem} ${e.name} ${e.filename} has size ${e.size} but its blob sha256:${e.digests.sha256} is listed with ${listed}`,
        );
      }
      sizes.set(e.digests.sha256, e.size);
    }
    const out: ManifestBlob[] = [];
    for (const [sha256, size] of sizes) {
      let actual = this.putSizes.get(sha256);
      if (actual === undefined) {
        // Not in this bundle: must already be in the store, intact.
        const stat = await this.store.blobs.stat(sha256);
        if (!stat) {
          throw new CasError(
            'IMPORT_BLOB_MISSING',
            `blob sha256:${sha256} is referenced by the snapshot but is neither in this import nor in the store`,
            {
              details: { sha256 },
            },
          );
        }
        if (this.store.index.getBlob(sha256)?.state !== 'ok') {
          const verified = await this.store.verifyBlob(sha256);
          if (!verified.ok) {
            throw new CasError(
              'IMPORT_BLOB_MISSING',
              `blob sha256:${sha256} in the store failed verification (quarantined)`,
              { details: { sha256 } },
            );
          }
        }
        actual = stat.size;
      }
      if (actual !== size) {
        throw new CasError(
          'INDEX_INVALID_INPUT',
          `blob sha256:${sha256} has ${actual} bytes but the snapshot says ${size}`,
          {
            details: { sha256, actual, expected: size },
          },
        );
      }
      out.push({ sha256, size });
    }
    return out;
  }

  /**
   * Journal lines are durable before the blobs they name can exist. Group commit: digests that arrive while a
   * write is under way go out together in the next write, with one fdatasync.
   */
  private appendJournal(sha256s: readonly string[]): Promise<void> {
    for (const sha256 of sha256s) assertSha256Hex(sha256);
    this.journalPending.push(...sha256s);
    if (this.journalNext) return this.journalNext;
    const next = this.journalTail.then(async () => {
      this.journalNext = undefined;
      const lines = this.journalPending;
      this.journalPending = [];
      await this.journal.write(lines.map((l) => `${l}\n`).join(''));
      await this.journal.datasync();
    });
    this.journalNext = next;
    this.journalTail = next.catch(() => undefined);
    return next;
  }

  /** An intact copy is already published (the same trust `checkBlobs` gives a blob the bundle does not carry). */
  private async isPublished(expected: PutExpectation): Promise<boolean> {
    // Asked once: no commit can add blobs while this session holds the import lock, and writing a blob that is
    // there after all is safe (the careful path keeps the intact copy). Spares a query per blob of a first import.
    this.indexHasBlobs ??= this.store.index.hasBlobs();
    if (!this.indexHasBlobs) return false;
    if (expected.size === undefined || this.store.index.getBlob(expected.sha256)?.state !== 'ok') return false;
    return (await this.store.blobs.stat(expected.sha256))?.size === expected.size;
  }

  /** Hands the current batch to a background publish, keeping at most MAX_BATCHES_IN_FLIGHT running. */
  private async startBatch(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    while (this.inFlight.size >= MAX_BATCHES_IN_FLIGHT) await Promise.race(this.inFlight);
    this.track(0, async () => {
      try {
        const results = await this.store.blobs.publishStaged!(batch, (names) => this.appendJournal(names));
        for (const r of results) if (r.created) this.created.add(r.sha256);
      } catch (err) {
        // Some may be linked: all were journaled or never appeared, and unreferenced ones go on abort.
        for (const b of batch) this.created.add(b.sha256);
        throw err;
      }
    });
  }

  /** Backends without batches (S3): small blobs are read into memory, checked, and put several at a time. */
  private async putConcurrently(source: BlobSource, expected: PutExpectation, options: { maxSize?: number }) {
    const size = expected.size;
    if (size === undefined || size > CONCURRENT_PUT_MAX_BYTES) {
      await this.put(source, expected, options);
      return;
    }
    const bytes = await readAll(source, expected, options.maxSize);
    this.putSizes.set(expected.sha256, size);
    while (this.inFlight.size >= MAX_PUTS_IN_FLIGHT || this.inFlightBytes + size > MAX_BYTES_IN_FLIGHT) {
      await Promise.race(this.inFlight);
    }
    this.throwFailure();
    this.track(size, async () => {
      try {
        const result = await this.store.blobs.put([bytes], expected, {
          ...options,
          beforePublish: (sha256) => this.appendJournal([sha256]),
        });
        if (result.created) this.created.add(result.sha256);
      } catch (err) {
        this.created.add(expected.sha256); // it may exist now: removed on abort unless a snapshot references it
        throw err;
      }
    });
  }

  /** Runs `work` in the background; its failure is kept for the next put, flush or commit. */
  private track(bytes: number, work: () => Promise<void>): void {
    this.inFlightBytes += bytes;
    const p: Promise<void> = work()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.inFlight.delete(p);
        this.inFlightBytes -= bytes;
      });
    this.inFlight.add(p);
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }

  private async finish(): Promise<void> {
    await this.journalTail.catch(() => undefined);
    await this.journal.close().catch(() => undefined);
    await unlink(join(this.store.stagingDir, `${this.id}.journal`)).catch(() => undefined);
    await this.lock.release();
    this.store.forgetSession(this);
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new CasError('IMPORT_CLOSED', `import ${this.id} is ${this.state}`);
  }
}

/** Consumes a blob already stored, hashing it so a bundle with other bytes under the name is still refused. */
async function hashOnly(source: BlobSource, expected: PutExpectation, maxSize: number | undefined): Promise<void> {
  await consume(source, expected, maxSize, undefined);
}

/** Reads a small blob into memory and checks it as a put would. */
async function readAll(source: BlobSource, expected: PutExpectation, maxSize: number | undefined): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  await consume(source, expected, maxSize, chunks);
  return Buffer.concat(chunks);
}

async function consume(
  source: BlobSource,
  expected: PutExpectation,
  maxSize: number | undefined,
  keep: Uint8Array[] | undefined,
): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source as AsyncIterable<unknown> | Iterable<unknown>) {
    if (!(chunk instanceof Uint8Array))
      throw new CasError('CAS_INVALID_SOURCE', `put() needs a byte stream; got a chunk of type ${typeof chunk}`);
    size += chunk.byteLength;
    if (expected.size !== undefined && size > expected.size)
      throw new CasError(
        'CAS_SIZE_MISMATCH',
        `blob sha256:${expected.sha256} is larger than the expected ${expected.size} bytes`,
      );
    if (maxSize !== undefined && size > maxSize)
      throw new CasError('CAS_SIZE_LIMIT', `blob exceeds the size limit of ${maxSize} bytes`);
    hash.update(chunk);
    keep?.push(chunk);
  }
  checkDigestAndSize(hash.digest('hex'), size, expected);
}

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
