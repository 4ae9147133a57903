import Database from 'better-sqlite3';
import { TlogError } from './errors.js';
import type { NodeReader, TreeNode } from './merkle.js';

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

export class LogStore implements NodeReader {
  private readonly stmts;

  private constructor(private readonly db: Database.Database) {
    this.stmts = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      getNode: db.prepare<[number, number], { hash: Buffer }>('SELECT hash FROM nodes WHERE level = ? AND idx = ?'),
      getLeaf: db.prepare<[number], { leaf_hash: Buffer }>('SELECT leaf_hash FROM entries WHERE log_index = ?'),
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

  static open(path: string): LogStore {
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
    return new LogStore(db);
  }

  getMeta(key: string): string | undefined {
    return this.stmts.getMeta.get(key)?.value;
  }

  /** Sets a metadata value (own transaction). */
  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  /** Number of entries, checked against the size recorded by the last committed append. */
  treeSize(): number {
    const { n, c } = this.stmts.maxIndex.get()!;
    const size = n === null ? 0 : n + 1;
    if (c !== size)
      throw new TlogError('TLOG_STORE_CORRUPT', `log entries are not dense: ${c} rows but highest index ${size - 1}`);
    const recorded = Number(this.getMeta('tree_size') ?? '0');
    if (recorded !== size)
      throw new TlogError('TLOG_STORE_CORRUPT', `log database records tree size ${recorded} but holds ${size} entries`);
    return size;
  }

  getNode(level: number, index: number): Buffer {
    const row = level === 0 ? this.stmts.getLeaf.get(index) : this.stmts.getNode.get(level, index);
    const hash = row && ('hash' in row ? row.hash : row.leaf_hash);
    if (!hash)
      throw new TlogError('TLOG_STORE_CORRUPT', `log database is missing tree node (level ${level}, index ${index})`);
    return hash;
  }

  getEntryByIndex(index: number): StoredEntry | undefined {
    const row = this.stmts.byIndex.get(index);
    return row && toEntry(row);
  }

  getEntryByLeafHash(leafHash: Buffer): StoredEntry | undefined {
    const row = this.stmts.byLeaf.get(leafHash);
    return row && toEntry(row);
  }

  indexOfLeafHash(leafHash: Buffer): number | undefined {
    return this.stmts.indexOfLeaf.get(leafHash)?.log_index;
  }

  /** Log indices under a search key, ascending, at most `limit`. */
  search(key: string, limit: number): number[] {
    return this.stmts.search.all(key, limit).map((r) => r.log_index);
  }

  /**
   * Appends entries (with the tree nodes they complete) in ONE transaction, committed (fsynced) before this
   * returns. Either all rows land or none do.
   */
  appendBatch(rows: readonly NewEntryRow[], newTreeSize: number): void {
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

  /** Runs `fn` in one transaction (used to initialize metadata atomically). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
