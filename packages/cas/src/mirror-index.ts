import Database from 'better-sqlite3';
import { CasError } from './errors.js';
import type {
  BlobRecord,
  BlobState,
  Ecosystem,
  EntryDigests,
  LookupAlgorithm,
  ManifestBlob,
  MirrorEntry,
  MirrorEntryInput,
  SnapshotDetail,
  SnapshotInfo,
  SnapshotRecord,
} from './types.js';

const SCHEMA_VERSION = '1';

// Entries and blobs carry the sequence of the snapshot that added them; readers only see rows at or below the
// head, so a snapshot becomes visible in the same transaction that moves the head (and WAL readers never see
// half of one).
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS snapshots (
  sequence INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  previous TEXT,
  created_at TEXT NOT NULL,
  imported_at TEXT NOT NULL,
  gap_allowed INTEGER NOT NULL DEFAULT 0,
  manifest TEXT NOT NULL,
  signed_bundles TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS head (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  sequence INTEGER NOT NULL REFERENCES snapshots(sequence)
) STRICT;
CREATE TABLE IF NOT EXISTS blobs (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('ok', 'quarantined')),
  added_in INTEGER NOT NULL REFERENCES snapshots(sequence)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot_blobs (
  sequence INTEGER NOT NULL REFERENCES snapshots(sequence),
  sha256 TEXT NOT NULL REFERENCES blobs(sha256),
  PRIMARY KEY (sequence, sha256)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY,
  ecosystem TEXT NOT NULL,
  name TEXT NOT NULL,
  version TEXT,
  filename TEXT NOT NULL,
  sha256 TEXT NOT NULL REFERENCES blobs(sha256),
  size INTEGER NOT NULL,
  sha512 TEXT,
  sha1 TEXT,
  digests TEXT NOT NULL,
  purl TEXT,
  urls TEXT NOT NULL,
  metadata TEXT NOT NULL,
  added_in INTEGER NOT NULL REFERENCES snapshots(sequence)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS entries_identity ON entries (ecosystem, name, coalesce(version, ''), filename, sha256);
CREATE INDEX IF NOT EXISTS entries_by_file ON entries (ecosystem, name, filename);
CREATE INDEX IF NOT EXISTS entries_by_sha256 ON entries (sha256);
CREATE INDEX IF NOT EXISTS entries_by_sha512 ON entries (sha512) WHERE sha512 IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_sha1 ON entries (sha1) WHERE sha1 IS NOT NULL;
`;

const HEAD = '(SELECT sequence FROM head WHERE singleton = 1)';
const ENTRY_COLUMNS = `e.ecosystem, e.name, e.version, e.filename, e.sha256, e.size, e.digests, e.purl, e.urls, e.metadata,
  e.added_in, s.created_at AS added_at`;

interface EntryRow {
  ecosystem: string;
  name: string;
  version: string | null;
  filename: string;
  sha256: string;
  size: number;
  digests: string;
  purl: string | null;
  urls: string;
  metadata: string;
  added_in: number;
  added_at: string;
}

interface SnapshotRow {
  sequence: number;
  id: string;
  previous: string | null;
  created_at: string;
  imported_at: string;
  gap_allowed: number;
  manifest?: string;
  signed_bundles?: string;
}

interface BlobRow {
  sha256: string;
  size: number;
  state: string;
  added_in: number;
}

export interface EntryQuery {
  ecosystem: Ecosystem;
  name: string;
  version?: string | null;
  filename?: string;
}

export interface ApplySnapshotInput {
  snapshot: SnapshotInfo;
  manifestJson: string;
  signedBundlesJson: string;
  /** Every blob the snapshot lists or references, with its verified size. */
  blobs: ManifestBlob[];
  entries: MirrorEntryInput[];
  allowGap: boolean;
  importedAt: string;
  /** Fault-injection seam: called inside the open transaction, just before it commits. */
  inTransaction?: () => void;
}

export interface MirrorIndexOptions {
  /** How long a writer waits for another process's write lock (default 10 s). */
  busyTimeoutMs?: number;
}

/**
 * The SQLite index of the mirror (WAL, synchronous=FULL): blobs, entries, the snapshot history with manifests and
 * signed bundles kept for audit, and the single `head`. All reads are "as of head".
 */
export class MirrorIndex {
  private readonly db: Database.Database;
  private readonly stmts;
  /** Set by a shared backend (PostgreSQL) whose read model this is: blob state changes are written through. */
  onBlobState?: (sha256: string, state: BlobState) => void;

  private constructor(db: Database.Database) {
    this.db = db;
    this.stmts = {
      head: db.prepare<[], SnapshotRow>(
        `SELECT s.sequence, s.id, s.previous, s.created_at, s.imported_at, s.gap_allowed FROM snapshots s WHERE s.sequence = ${HEAD}`,
      ),
      headSequence: db.prepare<[], { sequence: number }>('SELECT sequence FROM head WHERE singleton = 1'),
      snapshotById: db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE id = ?'),
      snapshotBySequence: db.prepare<[number], SnapshotRow>('SELECT * FROM snapshots WHERE sequence = ?'),
      snapshots: db.prepare<[], SnapshotRow>(
        'SELECT sequence, id, previous, created_at, imported_at, gap_allowed FROM snapshots ORDER BY sequence',
      ),
      entriesByName: db.prepare<[string, string], EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries e JOIN snapshots s ON s.sequence = e.added_in
         WHERE e.ecosystem = ? AND e.name = ? AND e.added_in <= ${HEAD} ORDER BY e.added_in, e.id`,
      ),
      entriesByFile: db.prepare<[string, string, string], EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries e JOIN snapshots s ON s.sequence = e.added_in
         WHERE e.ecosystem = ? AND e.name = ? AND e.filename = ? AND e.added_in <= ${HEAD} ORDER BY e.added_in, e.id`,
      ),
      entriesBySha256: db.prepare<[string], EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries e JOIN snapshots s ON s.sequence = e.added_in
         WHERE e.sha256 = ? AND e.added_in <= ${HEAD} ORDER BY e.added_in, e.id`,
      ),
      fileByName: db.prepare<[string, string, string], { sha256: string; size: number }>(
        `SELECT sha256, size FROM entries WHERE ecosystem = ? AND name = ? AND filename = ? AND added_in <= ${HEAD}
         ORDER BY added_in, id LIMIT 1`,
      ),
      fileBySha256: db.prepare<[string, string, string], { sha256: string; size: number }>(
        `SELECT sha256, size FROM entries WHERE sha256 = ? AND ecosystem = ? AND filename = ? AND added_in <= ${HEAD} LIMIT 1`,
      ),
      names: db.prepare<[string], { name: string }>(
        `SELECT DISTINCT name FROM entries WHERE ecosystem = ? AND added_in <= ${HEAD} ORDER BY name`,
      ),
      visibleBlob: db.prepare<[string], BlobRow>(`SELECT * FROM blobs WHERE sha256 = ? AND added_in <= ${HEAD}`),
      blobBySha512: db.prepare<[string], BlobRow>(
        `SELECT b.* FROM entries e JOIN blobs b ON b.sha256 = e.sha256 WHERE e.sha512 = ? AND e.added_in <= ${HEAD} LIMIT 1`,
      ),
      blobBySha1: db.prepare<[string], BlobRow>(
        `SELECT b.* FROM entries e JOIN blobs b ON b.sha256 = e.sha256 WHERE e.sha1 = ? AND e.added_in <= ${HEAD} LIMIT 1`,
      ),
      blob: db.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE sha256 = ?'),
      anyBlob: db.prepare<[], { one: number }>('SELECT 1 AS one FROM blobs LIMIT 1'),
      allBlobs: db.prepare<[], BlobRow>('SELECT * FROM blobs ORDER BY sha256'),
      visibleBlobs: db.prepare<[], BlobRow>(`SELECT * FROM blobs WHERE added_in <= ${HEAD} ORDER BY sha256`),
      setBlobState: db.prepare<[string, string]>('UPDATE blobs SET state = ? WHERE sha256 = ?'),
      insertSnapshot: db.prepare(
        `INSERT INTO snapshots (sequence, id, previous, created_at, imported_at, gap_allowed, manifest, signed_bundles)
         VALUES (@sequence, @id, @previous, @createdAt, @importedAt, @gapAllowed, @manifest, @signedBundles)`,
      ),
      upsertBlob: db.prepare<[string, number, number]>(
        `INSERT INTO blobs (sha256, size, state, added_in) VALUES (?, ?, 'ok', ?)
         ON CONFLICT (sha256) DO UPDATE SET state = 'ok'`,
      ),
      insertSnapshotBlob: db.prepare<[number, string]>(
        'INSERT OR IGNORE INTO snapshot_blobs (sequence, sha256) VALUES (?, ?)',
      ),
      conflictingEntry: db.prepare<[string, string, string | null, string, string], { sha256: string }>(
        `SELECT sha256 FROM entries WHERE ecosystem = ? AND name = ? AND coalesce(version, '') = coalesce(?, '')
         AND filename = ? AND sha256 != ? LIMIT 1`,
      ),
      insertEntry: db.prepare(
        `INSERT OR IGNORE INTO entries (ecosystem, name, version, filename, sha256, size, sha512, sha1, digests, purl, urls, metadata, added_in)
         VALUES (@ecosystem, @name, @version, @filename, @sha256, @size, @sha512, @sha1, @digests, @purl, @urls, @metadata, @addedIn)`,
      ),
      setHead: db.prepare<[number]>(
        'INSERT INTO head (singleton, sequence) VALUES (1, ?) ON CONFLICT (singleton) DO UPDATE SET sequence = excluded.sequence',
      ),
    };
  }

  /** Opens (creating when needed) the index database at `path`. */
  static open(path: string, options: MirrorIndexOptions = {}): MirrorIndex {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 10_000))}`);
      db.exec(SCHEMA);
      const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
      if (row === undefined)
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(SCHEMA_VERSION);
      else if (row.value !== SCHEMA_VERSION) {
        throw new CasError(
          'INDEX_SCHEMA_UNSUPPORTED',
          `index ${path} has schema version ${row.value}; this build reads version ${SCHEMA_VERSION}`,
        );
      }
      return new MirrorIndex(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The current snapshot, or undefined for an empty mirror. */
  head(): SnapshotRecord | undefined {
    const row = this.stmts.head.get();
    return row ? toSnapshotRecord(row) : undefined;
  }

  /** Sequence of the head snapshot, 0 when empty (cheap; servers key their caches on it). */
  headSequence(): number {
    return this.stmts.headSequence.get()?.sequence ?? 0;
  }

  getSnapshot(idOrSequence: string | number): SnapshotDetail | undefined {
    const row =
      typeof idOrSequence === 'number'
        ? this.stmts.snapshotBySequence.get(idOrSequence)
        : this.stmts.snapshotById.get(idOrSequence);
    if (!row) return undefined;
    return {
      ...toSnapshotRecord(row),
      manifest: JSON.parse(row.manifest ?? 'null') as unknown,
      signedBundles: JSON.parse(row.signed_bundles ?? 'null') as unknown,
    };
  }

  listSnapshots(): SnapshotRecord[] {
    return this.stmts.snapshots.all().map(toSnapshotRecord);
  }

  /** Entries visible at head for a name, optionally narrowed to a version and/or file name. */
  findEntries(query: EntryQuery): MirrorEntry[] {
    const rows =
      query.filename !== undefined
        ? this.stmts.entriesByFile.all(query.ecosystem, query.name, query.filename)
        : this.stmts.entriesByName.all(query.ecosystem, query.name);
    const out = rows.map(toEntry);
    return query.version === undefined ? out : out.filter((e) => e.version === query.version);
  }

  /** Fast path for file routes: the blob of (ecosystem, name, filename) at head, without parsing metadata. */
  findFile(ecosystem: Ecosystem, name: string, filename: string): { sha256: string; size: number } | undefined {
    return this.stmts.fileByName.get(ecosystem, name, filename);
  }

  /** Fast path: an entry of `ecosystem` at head with this blob and file name. */
  findFileBySha256(
    ecosystem: Ecosystem,
    sha256: string,
    filename: string,
  ): { sha256: string; size: number } | undefined {
    return this.stmts.fileBySha256.get(sha256, ecosystem, filename);
  }

  /** Entries visible at head whose blob is `sha256`. */
  findEntriesBySha256(sha256: string): MirrorEntry[] {
    return this.stmts.entriesBySha256.all(sha256).map(toEntry);
  }

  /** Distinct names of an ecosystem visible at head, sorted. */
  listNames(ecosystem: Ecosystem): string[] {
    return this.stmts.names.all(ecosystem).map((r) => r.name);
  }

  /**
   * The blob visible at head with this digest: sha256 matches any blob; sha512/sha1 match through the entries
   * that recorded them.
   */
  findBlobByDigest(algorithm: LookupAlgorithm, hex: string): BlobRecord | undefined {
    const h = hex.toLowerCase();
    const row =
      algorithm === 'sha256'
        ? this.stmts.visibleBlob.get(h)
        : algorithm === 'sha512'
          ? this.stmts.blobBySha512.get(h)
          : this.stmts.blobBySha1.get(h);
    return row ? toBlob(row) : undefined;
  }

  /** A blob visible at head (committed by the head snapshot or an earlier one). */
  getVisibleBlob(sha256: string): BlobRecord | undefined {
    const row = this.stmts.visibleBlob.get(sha256);
    return row ? toBlob(row) : undefined;
  }

  /** Any committed blob, visible or not. */
  getBlob(sha256: string): BlobRecord | undefined {
    const row = this.stmts.blob.get(sha256);
    return row ? toBlob(row) : undefined;
  }

  /** Whether any blob was ever committed (an empty index holds none to skip writing again). */
  hasBlobs(): boolean {
    return this.stmts.anyBlob.get() !== undefined;
  }

  /** True when a committed snapshot or entry references the blob (GC must keep it). */
  isReferenced(sha256: string): boolean {
    return this.stmts.blob.get(sha256) !== undefined;
  }

  /** Every committed blob, any state (an array: the connection must stay free for writes while callers work). */
  listBlobs(): BlobRecord[] {
    return this.stmts.allBlobs.all().map(toBlob);
  }

  /** Blobs visible at head, any state. */
  listVisibleBlobs(): BlobRecord[] {
    return this.stmts.visibleBlobs.all().map(toBlob);
  }

  setBlobState(sha256: string, state: BlobState): void {
    this.stmts.setBlobState.run(state, sha256);
    this.onBlobState?.(sha256, state);
  }

  /** Applies a state read from a shared backend (no write-through back to it). */
  applyBlobState(sha256: string, state: BlobState): void {
    this.stmts.setBlobState.run(state, sha256);
  }

  /**
   * Throws the typed error a commit of `snapshot` would hit (replay, rollback, gap); lets an importer refuse a
   * bundle before streaming its blobs. `commit` re-checks inside its write transaction.
   */
  checkSnapshotOrder(snapshot: SnapshotInfo, allowGap = false): void {
    const err = snapshotOrderError(
      snapshot,
      this.head(),
      this.stmts.snapshotById.get(snapshot.id) !== undefined,
      allowGap,
    );
    if (err) throw err;
  }

  /** One write transaction: order checks, snapshot row, blobs, entries, head. All or nothing. */
  applySnapshot(input: ApplySnapshotInput): SnapshotRecord {
    const run = this.db.transaction(() => {
      this.checkSnapshotOrder(input.snapshot, input.allowGap);
      const { snapshot } = input;
      const gapAllowed = snapshot.previous !== (this.head()?.id ?? null);
      this.stmts.insertSnapshot.run({
        sequence: snapshot.sequence,
        id: snapshot.id,
        previous: snapshot.previous,
        createdAt: snapshot.createdAt,
        importedAt: input.importedAt,
        gapAllowed: gapAllowed ? 1 : 0,
        manifest: input.manifestJson,
        signedBundles: input.signedBundlesJson,
      });
      for (const blob of input.blobs) {
        const existing = this.stmts.blob.get(blob.sha256);
        if (existing && existing.size !== blob.size) {
          throw new CasError(
            'INDEX_INVALID_INPUT',
            `blob sha256:${blob.sha256} has size ${blob.size} but the index recorded ${existing.size}`,
          );
        }
        this.stmts.upsertBlob.run(blob.sha256, blob.size, snapshot.sequence);
        this.stmts.insertSnapshotBlob.run(snapshot.sequence, blob.sha256);
      }
      for (const e of input.entries) {
        // npm and PyPI files are immutable: the same name+version+file can never change content.
        if (e.ecosystem === 'npm' || e.ecosystem === 'pypi') {
          const clash = this.stmts.conflictingEntry.get(e.ecosystem, e.name, e.version, e.filename, e.digests.sha256);
          if (clash) {
            throw new CasError(
              'IMPORT_ENTRY_CONFLICT',
              `${e.ecosystem} ${e.name}@${e.version ?? ''} ${e.filename} is already published with sha256:${clash.sha256}; refusing to replace it with sha256:${e.digests.sha256}`,
              { details: { ecosystem: e.ecosystem, name: e.name, version: e.version, filename: e.filename } },
            );
          }
        }
        this.stmts.insertEntry.run({
          ecosystem: e.ecosystem,
          name: e.name,
          version: e.version,
          filename: e.filename,
          sha256: e.digests.sha256,
          size: e.size,
          sha512: e.digests.sha512 ?? null,
          sha1: e.digests.sha1 ?? null,
          digests: JSON.stringify(e.digests),
          purl: e.purl ?? null,
          urls: JSON.stringify(e.urls ?? []),
          metadata: JSON.stringify(e.metadata ?? {}),
          addedIn: snapshot.sequence,
        });
      }
      this.stmts.setHead.run(snapshot.sequence);
      input.inTransaction?.();
      return {
        id: snapshot.id,
        sequence: snapshot.sequence,
        previous: snapshot.previous,
        createdAt: snapshot.createdAt,
        importedAt: input.importedAt,
        gapAllowed,
      } satisfies SnapshotRecord;
    });
    // IMMEDIATE: take the write lock before reading the head, so two importers cannot both pass the checks.
    return run.immediate();
  }
}

function toSnapshotRecord(row: SnapshotRow): SnapshotRecord {
  return {
    id: row.id,
    sequence: row.sequence,
    previous: row.previous,
    createdAt: row.created_at,
    importedAt: row.imported_at,
    gapAllowed: row.gap_allowed === 1,
  };
}

function toBlob(row: BlobRow): BlobRecord {
  return {
    sha256: row.sha256,
    size: row.size,
    state: row.state === 'ok' ? 'ok' : 'quarantined',
    addedIn: row.added_in,
  };
}

function toEntry(row: EntryRow): MirrorEntry {
  return {
    ecosystem: row.ecosystem as Ecosystem,
    name: row.name,
    version: row.version,
    filename: row.filename,
    sha256: row.sha256,
    size: row.size,
    digests: JSON.parse(row.digests) as EntryDigests,
    purl: row.purl,
    urls: JSON.parse(row.urls) as string[],
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    addedIn: row.added_in,
    addedAt: row.added_at,
  };
}

/**
 * The order rules of publication (shared with other index backends): the typed error a commit of `snapshot` on
 * top of `head` would hit, or undefined.
 */
export function snapshotOrderError(
  snapshot: SnapshotInfo,
  head: SnapshotRecord | undefined,
  alreadyImported: boolean,
  allowGap: boolean,
): CasError | undefined {
  if (alreadyImported) {
    return new CasError(
      'SNAPSHOT_REPLAY',
      `snapshot ${snapshot.id} (sequence ${snapshot.sequence}) was already imported`,
      {
        details: { id: snapshot.id, sequence: snapshot.sequence, head: head?.id ?? null },
      },
    );
  }
  if (head && snapshot.sequence <= head.sequence) {
    return new CasError(
      'SNAPSHOT_ROLLBACK',
      `snapshot sequence ${snapshot.sequence} is not newer than the head's sequence ${head.sequence}: refusing to roll back`,
      { details: { sequence: snapshot.sequence, headSequence: head.sequence, head: head.id } },
    );
  }
  const expectedPrevious = head ? head.id : null;
  if (snapshot.previous !== expectedPrevious && !allowGap) {
    return new CasError(
      'SNAPSHOT_GAP',
      head
        ? `snapshot ${snapshot.id} extends ${snapshot.previous ?? 'nothing'}, not the head ${head.id} (sequence ${head.sequence}); import the missing snapshots first or allow the gap explicitly`
        : `snapshot ${snapshot.id} extends ${snapshot.previous ?? 'nothing'} but this mirror is empty; import from the first snapshot or allow the gap explicitly`,
      { details: { previous: snapshot.previous, head: head?.id ?? null } },
    );
  }
  return undefined;
}
