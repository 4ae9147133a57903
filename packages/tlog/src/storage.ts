import { closeSync, fstatSync, fsyncSync, openSync, readSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { TlogError } from './errors.js';
import type { AsyncNodeReader, NodeCoord, TreeNode } from './merkle.js';

/**
 * SQLite storage for the log (better-sqlite3, synchronous). WAL with `synchronous=FULL` so a committed
 * transaction survives power loss; `locking_mode=EXCLUSIVE` so a second process cannot open the same log and
 * sequence entries behind this one's back (the in-memory Merkle frontier assumes a single writer).
 *
 * Tables: `entries` (one row per leaf: index, leaf hash = UUID, canonical body, integrated time, kind, SET),
 * `nodes` (perfect-subtree hashes above the leaves; level-0 nodes are the entries' leaf hashes),
 * `search_index` (artifact digests and signer fingerprints → log index), `meta` (tree ID, log ID, tree size).
 */

const SCHEMA_VERSION = '1';
const DEFAULT_CHECKPOINT_WAL_BYTES = 16 * 1024 * 1024;
// SQLite's WAL format (sqlite.org/fileformat2.html#walformat): a 32-byte header whose bytes 16..23 are the salts of
// the current generation, then frames of a 24-byte header (bytes 8..15: the frame's salts) and one page.
const WAL_HEADER_BYTES = 32;
const WAL_FRAME_HEADER_BYTES = 24;
const WAL_SALTS_AT = 16;
const FRAME_SALTS_AT = 8;

export interface SqliteStorageOptions {
  /** Checkpoint once this many bytes of WAL were written since the last checkpoint. Default 16 MiB. */
  checkpointWalBytes?: number;
}

export interface StoredEntry {
  logIndex: number;
  leafHash: Buffer;
  body: Buffer;
  integratedTime: number;
  kind: string;
  apiVersion: string;
  /** The signed entry timestamp, fixed at integration so every read returns the same one. */
  signedEntryTimestamp: Buffer;
}

export interface NewEntryRow extends StoredEntry {
  indexKeys: readonly string[];
  /** Perfect-subtree nodes (level ≥ 1) this append completes. */
  nodes: readonly TreeNode[];
}

/**
 * What the log needs from its storage (SQLite here; PostgreSQL in @airlock/postgres). All methods may be
 * asynchronous. Contract:
 * - single writer: the log calls `writeBatch` one batch at a time, in order, and never concurrently (nor `sync`);
 * - `writeBatch` is atomic — after a crash either all of the batch (entries, nodes, index keys, new tree size) is
 *   there or none — but need not be durable when it resolves; `sync` makes DURABLE every batch whose `writeBatch`
 *   resolved before `sync` was called (a durable-on-commit storage implements it as a no-op). The log may write the
 *   next batch while a `sync` runs; a rejected `sync` leaves those batches' durability unknown (the log stops);
 * - reads may see rows of a batch that is not durable yet; the log never asks for them (it bounds every read by its
 *   durable tree size);
 * - `getNodes` rejects (TLOG_STORE_CORRUPT) when a node is missing; level 0 are the leaf hashes.
 */
export interface LogStorage extends AsyncNodeReader {
  /**
   * First open: records `logId` and `treeId` (tree size 0). Later opens: returns the stored values, and rejects
   * with TLOG_KEY_MISMATCH when the stored log ID differs from `logId`. Atomic and durable.
   */
  initialize(identity: { logId: string; treeId: string }): Promise<{ treeId: string }>;
  /** The durable tree size, checked against the stored entries (TLOG_STORE_CORRUPT when inconsistent). */
  treeSize(): Promise<number>;
  getEntryByIndex(index: number): Promise<StoredEntry | undefined>;
  getEntryByLeafHash(leafHash: Buffer): Promise<StoredEntry | undefined>;
  /** Entries [start, start+count) in index order (tile catch-up, monitors). */
  getEntryRange(start: number, count: number): Promise<StoredEntry[]>;
  /** Which of these leaf hashes are already logged: hex leaf hash → log index (deduplication, one query). */
  findLeafHashes(leafHashes: readonly Buffer[]): Promise<Map<string, number>>;
  /** Log indices under a search key, ascending, at most `limit`. */
  search(key: string, limit: number): Promise<number[]>;
  /** Atomically writes one batch (see the contract above: durable after the next `sync`). */
  writeBatch(rows: readonly NewEntryRow[], newTreeSize: number): Promise<void>;
  /** Makes every batch written before this call durable (see the contract above). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

interface EntryRow {
  log_index: number;
  leaf_hash: Buffer;
  body: Buffer;
  integrated_time: number;
  kind: string;
  api_version: string;
  set_sig: Buffer;
}

function toEntry(r: EntryRow): StoredEntry {
  return {
    logIndex: r.log_index,
    leafHash: r.leaf_hash,
    body: r.body,
    integratedTime: r.integrated_time,
    kind: r.kind,
    apiVersion: r.api_version,
    signedEntryTimestamp: r.set_sig,
  };
}

export class SqliteLogStorage implements LogStorage {
  private readonly stmts;
  /** Transactions written, and how many of them an fdatasync of the WAL made durable. */
  private writes = 0;
  private synced = 0;
  /** The checkpoint in progress: writes wait for it. */
  private checkpointing: Promise<void> | undefined;
  /** Why a sync or checkpoint failed: then nothing more is written. */
  private failure: unknown;

  private constructor(
    private readonly db: Database.Database,
    private readonly path: string,
    private readonly wal: FileHandle,
    private readonly main: FileHandle,
    /** Offset of the WAL frame whose presence in the current generation means the checkpoint size is reached. */
    private readonly checkpointFrameAt: number,
  ) {
    this.stmts = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      getNode: db.prepare<[number, number], { hash: Buffer }>('SELECT hash FROM nodes WHERE level = ? AND idx = ?'),
      getLeaf: db.prepare<[number], { leaf_hash: Buffer }>('SELECT leaf_hash FROM entries WHERE log_index = ?'),
      range: db.prepare<[number, number], EntryRow>(
        'SELECT * FROM entries WHERE log_index >= ? ORDER BY log_index LIMIT ?',
      ),
      putNode: db.prepare<[number, number, Buffer]>('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)'),
      putEntry: db.prepare<[number, Buffer, Buffer, number, string, string, Buffer]>(
        'INSERT INTO entries (log_index, leaf_hash, body, integrated_time, kind, api_version, set_sig) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      putIndex: db.prepare<[string, number]>('INSERT OR IGNORE INTO search_index (key, log_index) VALUES (?, ?)'),
      byIndex: db.prepare<[number], EntryRow>('SELECT * FROM entries WHERE log_index = ?'),
      byLeaf: db.prepare<[Buffer], EntryRow>('SELECT * FROM entries WHERE leaf_hash = ?'),
      indexOfLeaf: db.prepare<[Buffer], { log_index: number }>('SELECT log_index FROM entries WHERE leaf_hash = ?'),
      search: db.prepare<[string, number], { log_index: number }>(
        'SELECT log_index FROM search_index WHERE key = ? ORDER BY log_index LIMIT ?',
      ),
      maxIndex: db.prepare<[], { n: number | null; c: number }>(
        'SELECT MAX(log_index) AS n, COUNT(*) AS c FROM entries',
      ),
    };
  }

  static async open(path: string, options: SqliteStorageOptions = {}): Promise<SqliteLogStorage> {
    const walBytes = options.checkpointWalBytes ?? DEFAULT_CHECKPOINT_WAL_BYTES;
    if (!Number.isSafeInteger(walBytes) || walBytes < 1)
      throw new TlogError('TLOG_INVALID_OPTION', 'checkpointWalBytes must be a positive integer');
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new TlogError('TLOG_STORE_CORRUPT', `cannot open the log database ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      db.pragma('busy_timeout = 0');
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Take the write lock now (and keep it, EXCLUSIVE mode): a second opener fails here, not mid-append.
      db.exec('BEGIN IMMEDIATE');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS entries (
          log_index INTEGER PRIMARY KEY,
          leaf_hash BLOB NOT NULL UNIQUE,
          body BLOB NOT NULL,
          integrated_time INTEGER NOT NULL,
          kind TEXT NOT NULL,
          api_version TEXT NOT NULL,
          set_sig BLOB NOT NULL
        );
        CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS search_index (key TEXT NOT NULL, log_index INTEGER NOT NULL, PRIMARY KEY (key, log_index)) WITHOUT ROWID;
      `);
      const version = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
      if (!version) db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(SCHEMA_VERSION);
      else if (version.value !== SCHEMA_VERSION)
        throw new TlogError(
          'TLOG_STORE_CORRUPT',
          `log database schema version ${version.value} is not supported (expected ${SCHEMA_VERSION})`,
        );
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
      if (err instanceof TlogError) throw err;
      const code = (err as { code?: string }).code ?? '';
      if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
        throw new TlogError('TLOG_STORE_LOCKED', `the log database ${path} is in use by another process`, {
          cause: err,
        });
      }
      throw new TlogError('TLOG_STORE_CORRUPT', `cannot open the log database ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    // From here on SQLite only write()s (synchronous=OFF) and this class makes commits durable itself, with an
    // fdatasync of the WAL off the event loop (see sync). Checkpoints are manual so the database file is
    // fsynced before SQLite may overwrite the WAL (see checkpointIfLarge).
    db.pragma('synchronous = OFF');
    db.pragma('wal_autocheckpoint = 0');
    // The WAL exists now (created by the schema transaction); make its directory entry durable once.
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    const [wal, main] = await Promise.all([open(`${path}-wal`, 'r+'), open(path, 'r+')]);
    const frameBytes = WAL_FRAME_HEADER_BYTES + Number(db.pragma('page_size', { simple: true }));
    const frames = Math.max(1, Math.floor((walBytes - WAL_HEADER_BYTES) / frameBytes));
    return new SqliteLogStorage(db, path, wal, main, WAL_HEADER_BYTES + (frames - 1) * frameBytes);
  }

  private getMeta(key: string): string | undefined {
    return this.stmts.getMeta.get(key)?.value;
  }

  async initialize(identity: { logId: string; treeId: string }): Promise<{ treeId: string }> {
    const run = this.db.transaction(() => {
      const logId = this.getMeta('log_id');
      if (logId === undefined) this.stmts.setMeta.run('log_id', identity.logId);
      else if (logId !== identity.logId) {
        throw new TlogError(
          'TLOG_KEY_MISMATCH',
          `this log was created with the signing key whose log ID is ${logId}, but the configured key has log ID ${identity.logId}`,
        );
      }
      let id = this.getMeta('tree_id');
      if (id === undefined) {
        id = identity.treeId;
        this.stmts.setMeta.run('tree_id', id);
        this.stmts.setMeta.run('tree_size', '0');
      }
      return { treeId: id };
    });
    const result = run.immediate();
    await this.wal.datasync();
    return result;
  }

  async treeSize(): Promise<number> {
    const { n, c } = this.stmts.maxIndex.get()!;
    const size = n === null ? 0 : n + 1;
    if (c !== size)
      throw new TlogError('TLOG_STORE_CORRUPT', `log entries are not dense: ${c} rows but highest index ${size - 1}`);
    const recorded = Number(this.getMeta('tree_size') ?? '0');
    if (recorded !== size)
      throw new TlogError('TLOG_STORE_CORRUPT', `log database records tree size ${recorded} but holds ${size} entries`);
    return size;
  }

  /** One node, synchronously (in-process readers: the bench, tests). */
  getNode(level: number, index: number): Buffer {
    const row = level === 0 ? this.stmts.getLeaf.get(index) : this.stmts.getNode.get(level, index);
    const hash = row && ('hash' in row ? row.hash : row.leaf_hash);
    if (!hash)
      throw new TlogError('TLOG_STORE_CORRUPT', `log database is missing tree node (level ${level}, index ${index})`);
    return hash;
  }

  async getNodes(coords: readonly NodeCoord[]): Promise<Buffer[]> {
    return coords.map((c) => this.getNode(c.level, c.index));
  }

  async getEntryByIndex(index: number): Promise<StoredEntry | undefined> {
    const row = this.stmts.byIndex.get(index);
    return row && toEntry(row);
  }

  async getEntryByLeafHash(leafHash: Buffer): Promise<StoredEntry | undefined> {
    const row = this.stmts.byLeaf.get(leafHash);
    return row && toEntry(row);
  }

  async getEntryRange(start: number, count: number): Promise<StoredEntry[]> {
    return this.stmts.range.all(start, count).map(toEntry);
  }

  async findLeafHashes(leafHashes: readonly Buffer[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const h of leafHashes) {
      const i = this.stmts.indexOfLeaf.get(h)?.log_index;
      if (i !== undefined) found.set(h.toString('hex'), i);
    }
    return found;
  }

  async search(key: string, limit: number): Promise<number[]> {
    return this.stmts.search.all(key, limit).map((r) => r.log_index);
  }

  /** Writes one batch and makes it durable (`writeBatch` + `sync`: imports, tests). */
  async appendBatch(rows: readonly NewEntryRow[], newTreeSize: number): Promise<void> {
    await this.writeBatch(rows, newTreeSize);
    await this.sync();
  }

  /**
   * One transaction, written to the WAL (SQLite itself does not fsync: synchronous=OFF); durable after the next
   * `sync`. Waits for a checkpoint in progress: its transaction could restart the WAL before the checkpointed pages
   * are durable in the database file.
   */
  async writeBatch(rows: readonly NewEntryRow[], newTreeSize: number): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
    this.assertUsable();
    this.insertBatch(rows, newTreeSize);
    this.writes++;
  }

  private insertBatch(rows: readonly NewEntryRow[], newTreeSize: number): void {
    const run = this.db.transaction(() => {
      for (const r of rows) {
        this.stmts.putEntry.run(
          r.logIndex,
          r.leafHash,
          r.body,
          r.integratedTime,
          r.kind,
          r.apiVersion,
          r.signedEntryTimestamp,
        );
        for (const n of r.nodes) this.stmts.putNode.run(n.level, n.index, n.hash);
        for (const k of r.indexKeys) this.stmts.putIndex.run(k, r.logIndex);
      }
      this.stmts.setMeta.run('tree_size', String(newTreeSize));
    });
    run.immediate();
  }

  /**
   * fdatasync of the WAL on the libuv thread pool: every transaction written before the call is durable when it
   * resolves (the guarantee of `synchronous=FULL`), and the event loop keeps serving — and writing the next batch
   * — during the fsync. A crash before it loses only unacknowledged batches. After a failure (the page cache's
   * state is unknown) the storage refuses every further write and sync.
   */
  async sync(): Promise<void> {
    this.assertUsable();
    const covered = this.writes;
    try {
      await this.wal.datasync();
    } catch (err) {
      throw this.fail(err);
    }
    this.synced = Math.max(this.synced, covered);
    if (this.walReachedCheckpointSize()) await this.checkpoint();
  }

  /** One checkpoint at a time; writes wait for it (see writeBatch). */
  private checkpoint(): Promise<void> {
    this.checkpointing ??= this.runCheckpoint().finally(() => (this.checkpointing = undefined));
    return this.checkpointing;
  }

  /**
   * Copies the WAL into the database file, then fsyncs the database file BEFORE the next write transaction lets
   * SQLite restart (overwrite) the WAL — so a committed page is always durable in one of them. Only durable frames
   * may be copied (a page of a lost transaction in the database file, under older WAL frames, would mix two
   * states): transactions written since the last fdatasync are made durable first (no write starts meanwhile).
   */
  private async runCheckpoint(): Promise<void> {
    try {
      if (this.writes > this.synced) {
        const covered = this.writes;
        await this.wal.datasync();
        this.synced = covered;
      }
      this.db.pragma('wal_checkpoint(PASSIVE)');
      await this.main.datasync();
    } catch (err) {
      throw this.fail(err);
    }
    // The WAL we fsync must be the one SQLite writes (it never unlinks it while open in EXCLUSIVE mode).
    if (fstatSync(this.wal.fd).ino !== statSync(`${this.path}-wal`).ino)
      throw this.fail(new TlogError('TLOG_STORE_CORRUPT', `the WAL of ${this.path} was replaced underneath the log`));
  }

  /** Marks the storage failed (fail closed: no more writes or syncs) and returns the error to throw. */
  private fail(err: unknown): TlogError {
    this.failure ??= err;
    return err instanceof TlogError ? err : this.failedError();
  }

  private failedError(): TlogError {
    return new TlogError('TLOG_STORE_FAILED', `a write to ${this.path} could not be made durable`, {
      cause: this.failure,
    });
  }

  private assertUsable(): void {
    if (this.failure !== undefined) throw this.failedError();
  }

  /**
   * Whether the current WAL generation reaches `checkpointWalBytes`: its frame at that offset carries the salts of
   * the WAL header. Not the file's size — SQLite reuses the file after a checkpoint without shrinking it, so once
   * it had grown that large the size said "checkpoint" after every batch (a checkpoint and an fsync of the database
   * file per batch). Two small preads of pages the kernel has cached, made directly: no thread-pool trip.
   */
  private walReachedCheckpointSize(): boolean {
    const frame = Buffer.alloc(8);
    if (readSync(this.wal.fd, frame, 0, 8, this.checkpointFrameAt + FRAME_SALTS_AT) < 8) return false;
    const header = Buffer.alloc(8);
    if (readSync(this.wal.fd, header, 0, 8, WAL_SALTS_AT) < 8) return false;
    return frame.equals(header);
  }

  async close(): Promise<void> {
    await this.checkpointing?.catch(() => undefined);
    if (this.db.open) {
      // Closing, SQLite checkpoints the WAL into the database file and deletes the WAL. With synchronous=OFF it would
      // not fsync the database file in between, and entries durable only in the WAL could be lost to a power cut
      // after a clean close. (After a failed sync nothing is known to be durable: no promise to keep.)
      if (this.failure === undefined) this.db.pragma('synchronous = FULL');
      this.db.close();
    }
    await Promise.allSettled([this.wal.close(), this.main.close()]);
  }
}
