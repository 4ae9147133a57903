import {
  CasError,
  MirrorIndex,
  snapshotOrderError,
  type ApplySnapshotInput,
  type BlobState,
  type Ecosystem,
  type EntryDigests,
  type MirrorEntryInput,
  type SharedIndex,
  type SnapshotRecord,
} from '@airlock/cas';
import type pg from 'pg';
import { pgModule } from './pg-module.js';
import { newPool, parsePgUrl, pgQuery, toPgError, type PgTarget } from './connection.js';
import { migrate } from './migrate.js';

/** NOTIFY channel: the payload is the new head's sequence. */
export const MIRROR_CHANNEL = 'airlock_mirror';
// pg_advisory_xact_lock key of the publish transaction: one publisher at a time, order checks see the real head.
const PUBLISH_LOCK = '7019776397468233985';
/** Default polling interval: the bound on how late a replica sees a snapshot if a NOTIFY is lost. */
export const DEFAULT_POLL_MS = 2000;

export interface PgMirrorIndexOptions {
  /** Follow the database (LISTEN + polling) so the read model sees other processes' snapshots (servers). */
  follow?: boolean;
  /** Polling fallback interval in ms (default 2000). */
  pollMs?: number;
  /**
   * LISTEN for new snapshots besides polling (default true). Off behind a pooler that cannot LISTEN (PgBouncer in
   * transaction mode): then polling alone bounds the delay.
   */
  listen?: boolean;
  /** Called after the read model moved to a new head (tests, logs). */
  onHead?: (sequence: number) => void;
}

interface SnapshotRow {
  sequence: string;
  id: string;
  previous: string | null;
  created_at: string;
  imported_at: string;
  gap_allowed: boolean;
  manifest: string;
  signed_bundles: string;
}

interface EntryRow {
  ecosystem: string;
  name: string;
  version: string | null;
  filename: string;
  size: string;
  digests: string;
  purl: string | null;
  urls: string;
  metadata: string;
}

/**
 * The mirror index on PostgreSQL. PostgreSQL is authoritative: publication is one transaction there (advisory
 * lock, order checks, rows, head, NOTIFY). Each process keeps a synchronous read model (an in-memory SQLite
 * MirrorIndex, the same code the embedded backend serves from), filled by replaying committed snapshots in
 * order and kept current by LISTEN/NOTIFY with a polling fallback.
 */
export class PgMirrorIndex implements SharedIndex {
  readonly local: MirrorIndex;
  private stateVersion = '0';
  private refreshing: Promise<void> | undefined;
  private again = false;
  private writes: Promise<void> = Promise.resolve();
  private writeError: Error | undefined;
  private listener: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly target: PgTarget,
    private readonly options: PgMirrorIndexOptions,
  ) {
    this.local = MirrorIndex.open(':memory:');
    this.local.onBlobState = (sha256, state) => this.writeBlobState(sha256, state);
  }

  /** Connects, applies pending migrations, loads the read model; with `follow`, starts following. */
  static async open(url: string, options: PgMirrorIndexOptions = {}): Promise<PgMirrorIndex> {
    const target = parsePgUrl(url);
    const pool = newPool(target);
    const index = new PgMirrorIndex(pool, target, options);
    try {
      await migrate(pool).catch((err: unknown) => {
        throw toPgError(err, target, 'applying migrations');
      });
      await index.refresh();
      if (options.follow) await index.follow();
    } catch (err) {
      await index.close().catch(() => undefined);
      throw err;
    }
    return index;
  }

  /** user@host:port/db — never the password. */
  get display(): string {
    return this.target.display;
  }

  async hasStore(): Promise<boolean> {
    const r = await this.query<{ n: string }>('SELECT count(*) AS n FROM mirror_stores', [], 'reading the store');
    return Number(r.rows[0]?.n ?? 0) > 0;
  }

  async createStore(): Promise<void> {
    await this.query(
      'INSERT INTO mirror_stores (singleton) VALUES (1) ON CONFLICT DO NOTHING',
      [],
      'creating the store',
    );
  }

  /** Replays every snapshot committed after the read model's head, then blob state changes. Serialised. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        await this.pull();
      } while (this.again && !this.closed);
    };
    this.refreshing = run().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  async applySnapshot(input: ApplySnapshotInput): Promise<SnapshotRecord> {
    this.assertWritesOk();
    const client = await this.connect('publishing a snapshot');
    let record: SnapshotRecord;
    try {
      await client.query('BEGIN');
      try {
        record = await this.publishIn(client, input);
        input.inTransaction?.();
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw toPgError(err, this.target, 'publishing a snapshot');
    } finally {
      client.release();
    }
    await this.refresh();
    return record;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.refreshing?.catch(() => undefined);
    await this.writes;
    await this.listener?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
    this.local.close();
    if (this.writeError) throw this.writeError;
  }

  private async publishIn(client: pg.PoolClient, input: ApplySnapshotInput): Promise<SnapshotRecord> {
    const { snapshot } = input;
    await client.query('SELECT pg_advisory_xact_lock($1)', [PUBLISH_LOCK]);
    const headRow = (
      await client.query<SnapshotRow>(
        'SELECT s.* FROM mirror_head h JOIN mirror_snapshots s ON s.sequence = h.sequence WHERE h.singleton = 1',
      )
    ).rows[0];
    const head = headRow ? toRecord(headRow) : undefined;
    const seen = await client.query('SELECT 1 FROM mirror_snapshots WHERE id = $1', [snapshot.id]);
    const orderErr = snapshotOrderError(snapshot, head, (seen.rowCount ?? 0) > 0, input.allowGap);
    if (orderErr) throw orderErr;
    const gapAllowed = snapshot.previous !== (head?.id ?? null);
    await client.query(
      `INSERT INTO mirror_snapshots (sequence, id, previous, created_at, imported_at, gap_allowed, manifest, signed_bundles)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        snapshot.sequence,
        snapshot.id,
        snapshot.previous,
        snapshot.createdAt,
        input.importedAt,
        gapAllowed,
        input.manifestJson,
        input.signedBundlesJson,
      ],
    );
    await insertBlobs(client, input);
    await insertEntries(client, input);
    await client.query(
      `INSERT INTO mirror_head (singleton, sequence) VALUES (1, $1)
       ON CONFLICT (singleton) DO UPDATE SET sequence = excluded.sequence`,
      [snapshot.sequence],
    );
    await client.query('INSERT INTO mirror_stores (singleton) VALUES (1) ON CONFLICT DO NOTHING');
    // Delivered to listeners only when (and if) the transaction commits.
    await client.query('SELECT pg_notify($1, $2)', [MIRROR_CHANNEL, String(snapshot.sequence)]);
    return {
      id: snapshot.id,
      sequence: snapshot.sequence,
      previous: snapshot.previous,
      createdAt: snapshot.createdAt,
      importedAt: input.importedAt,
      gapAllowed,
    };
  }

  private async pull(): Promise<void> {
    if (this.closed) return;
    const client = await this.connect('reading the index');
    try {
      // One consistent view: the snapshots and the blob states belong to the same moment.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const from = this.local.headSequence();
      const snaps = await client.query<SnapshotRow>(
        `SELECT * FROM mirror_snapshots WHERE sequence > $1
           AND sequence <= (SELECT sequence FROM mirror_head WHERE singleton = 1) ORDER BY sequence`,
        [from],
      );
      const before = this.local.headSequence();
      for (const row of snaps.rows) await this.replay(client, row);
      const states = await client.query<{ sha256: string; state: string; state_version: string }>(
        'SELECT sha256, state, state_version FROM mirror_blobs WHERE state_version > $1 ORDER BY state_version',
        [this.stateVersion],
      );
      for (const s of states.rows) {
        this.local.applyBlobState(s.sha256, s.state === 'ok' ? 'ok' : 'quarantined');
        this.stateVersion = s.state_version;
      }
      await client.query('COMMIT');
      const after = this.local.headSequence();
      if (after !== before) this.options.onHead?.(after);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw toPgError(err, this.target, 'reading the index');
    } finally {
      client.release();
    }
  }

  private async replay(client: pg.PoolClient, row: SnapshotRow): Promise<void> {
    const sequence = Number(row.sequence);
    const blobs = await client.query<{ sha256: string; size: string }>(
      `SELECT sb.sha256, b.size FROM mirror_snapshot_blobs sb JOIN mirror_blobs b ON b.sha256 = sb.sha256
       WHERE sb.sequence = $1 ORDER BY sb.sha256`,
      [sequence],
    );
    const entries = await client.query<EntryRow>(
      `SELECT ecosystem, name, version, filename, size, digests, purl, urls, metadata FROM mirror_entries
       WHERE added_in = $1 ORDER BY id`,
      [sequence],
    );
    // Already checked and committed on PostgreSQL: the read model takes it as it is (gaps included).
    this.local.applySnapshot({
      snapshot: { id: row.id, sequence, previous: row.previous, createdAt: row.created_at },
      manifestJson: row.manifest,
      signedBundlesJson: row.signed_bundles,
      blobs: blobs.rows.map((b) => ({ sha256: b.sha256, size: Number(b.size) })),
      entries: entries.rows.map(toEntryInput),
      allowGap: true,
      importedAt: row.imported_at,
    });
  }

  private async follow(): Promise<void> {
    const poll = Math.max(50, this.options.pollMs ?? DEFAULT_POLL_MS);
    const listen = this.options.listen !== false;
    this.timer = setInterval(() => {
      void this.refresh().catch(() => undefined);
      if (listen && !this.listener) void this.listen().catch(() => undefined);
    }, poll);
    this.timer.unref();
    if (listen) await this.listen().catch(() => undefined); // polling covers a listener that cannot connect
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new (pgModule().Client)({ ...this.target.config });
    client.on('error', () => {
      // Dropped: polling keeps the replica current; the next tick reconnects.
      if (this.listener === client) this.listener = undefined;
      void client.end().catch(() => undefined);
    });
    client.on('notification', () => void this.refresh().catch(() => undefined));
    await client.connect();
    await client.query(`LISTEN ${MIRROR_CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.listener = client;
    // A snapshot committed while we were not listening is picked up now rather than at the next poll.
    await this.refresh();
  }

  private writeBlobState(sha256: string, state: BlobState): void {
    // Serialised, awaited by close(): the quarantine mark reaches PostgreSQL and then every replica.
    this.writes = this.writes.then(async () => {
      try {
        await this.pool.query(
          `UPDATE mirror_blobs SET state = $1, state_version = nextval('mirror_blob_state_version')
           WHERE sha256 = $2 AND state <> $1`,
          [state, sha256],
        );
      } catch (err) {
        this.writeError ??= toPgError(err, this.target, `recording blob ${sha256} as ${state}`);
      }
    });
  }

  private assertWritesOk(): void {
    if (this.writeError) throw this.writeError;
  }

  private async connect(what: string): Promise<pg.PoolClient> {
    if (this.closed) throw new CasError('STORE_CLOSED', `the index at ${this.target.display} is closed`);
    try {
      return await this.pool.connect();
    } catch (err) {
      throw toPgError(err, this.target, what);
    }
  }

  private async query<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[],
    what: string,
  ): Promise<pg.QueryResult<R>> {
    return pgQuery<R>(this.pool, this.target, sql, params, what);
  }
}

async function insertBlobs(client: pg.PoolClient, input: ApplySnapshotInput): Promise<void> {
  const shas = input.blobs.map((b) => b.sha256);
  const sizes = input.blobs.map((b) => b.size);
  const existing = await client.query<{ sha256: string; size: string }>(
    'SELECT sha256, size FROM mirror_blobs WHERE sha256 = ANY($1::text[])',
    [shas],
  );
  const want = new Map(input.blobs.map((b) => [b.sha256, b.size]));
  for (const e of existing.rows) {
    if (Number(e.size) !== want.get(e.sha256)) {
      throw new CasError(
        'INDEX_INVALID_INPUT',
        `blob sha256:${e.sha256} has size ${want.get(e.sha256)} but the index recorded ${e.size}`,
      );
    }
  }
  const seq = input.snapshot.sequence;
  await client.query(
    `INSERT INTO mirror_blobs (sha256, size, state, added_in)
     SELECT s, z, 'ok', $3 FROM unnest($1::text[], $2::bigint[]) AS t(s, z)
     ON CONFLICT (sha256) DO UPDATE SET state = 'ok', state_version = nextval('mirror_blob_state_version')
     WHERE mirror_blobs.state <> 'ok'`,
    [shas, sizes, seq],
  );
  await client.query(
    `INSERT INTO mirror_snapshot_blobs (sequence, sha256) SELECT $2, s FROM unnest($1::text[]) AS t(s)
     ON CONFLICT DO NOTHING`,
    [shas, seq],
  );
}

/** npm and PyPI files are immutable: the same name+version+file can never change content (also within a batch). */
async function checkEntryConflicts(client: pg.PoolClient, input: ApplySnapshotInput): Promise<void> {
  const immutable = input.entries.filter((e) => e.ecosystem === 'npm' || e.ecosystem === 'pypi');
  const key = (e: MirrorEntryInput): string => JSON.stringify([e.ecosystem, e.name, e.version ?? '', e.filename]);
  const batch = new Map<string, string>();
  let clash: { e: MirrorEntryInput; sha256: string } | undefined;
  for (const e of immutable) {
    const prior = batch.get(key(e));
    if (prior !== undefined && prior !== e.digests.sha256) clash ??= { e, sha256: prior };
    if (prior === undefined) batch.set(key(e), e.digests.sha256);
  }
  if (!clash && immutable.length > 0) {
    const r = await client.query<{ i: number; sha256: string }>(
      `SELECT n.i::int AS i, x.sha256 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
         WITH ORDINALITY AS n(ecosystem, name, version, filename, sha256, i)
       JOIN mirror_entries x ON x.ecosystem = n.ecosystem AND x.name = n.name
         AND coalesce(x.version, '') = n.version AND x.filename = n.filename AND x.sha256 <> n.sha256
       ORDER BY n.i LIMIT 1`,
      [
        immutable.map((e) => e.ecosystem),
        immutable.map((e) => e.name),
        immutable.map((e) => e.version ?? ''),
        immutable.map((e) => e.filename),
        immutable.map((e) => e.digests.sha256),
      ],
    );
    const hit = r.rows[0];
    if (hit) clash = { e: immutable[hit.i - 1]!, sha256: hit.sha256 };
  }
  if (clash) {
    const { e, sha256 } = clash;
    throw new CasError(
      'IMPORT_ENTRY_CONFLICT',
      `${e.ecosystem} ${e.name}@${e.version ?? ''} ${e.filename} is already published with sha256:${sha256}; refusing to replace it with sha256:${e.digests.sha256}`,
      { details: { ecosystem: e.ecosystem, name: e.name, version: e.version, filename: e.filename } },
    );
  }
}

async function insertEntries(client: pg.PoolClient, input: ApplySnapshotInput): Promise<void> {
  await checkEntryConflicts(client, input);
  const es = input.entries;
  if (es.length === 0) return;
  const col = <T>(f: (e: MirrorEntryInput) => T): T[] => es.map(f);
  await client.query(
    `INSERT INTO mirror_entries (ecosystem, name, version, filename, sha256, size, sha512, sha1, digests, purl, urls, metadata, added_in)
     SELECT ecosystem, name, version, filename, sha256, size, sha512, sha1, digests, purl, urls, metadata, $13
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],
                 $9::text[], $10::text[], $11::text[], $12::text[])
       WITH ORDINALITY AS t(ecosystem, name, version, filename, sha256, size, sha512, sha1, digests, purl, urls, metadata, i)
     ORDER BY i
     ON CONFLICT DO NOTHING`,
    [
      col((e) => e.ecosystem),
      col((e) => e.name),
      col((e) => e.version),
      col((e) => e.filename),
      col((e) => e.digests.sha256),
      col((e) => e.size),
      col((e) => e.digests.sha512 ?? null),
      col((e) => e.digests.sha1 ?? null),
      col((e) => JSON.stringify(e.digests)),
      col((e) => e.purl ?? null),
      col((e) => JSON.stringify(e.urls ?? [])),
      col((e) => JSON.stringify(e.metadata ?? {})),
      input.snapshot.sequence,
    ],
  );
}

function toRecord(row: SnapshotRow): SnapshotRecord {
  return {
    id: row.id,
    sequence: Number(row.sequence),
    previous: row.previous,
    createdAt: row.created_at,
    importedAt: row.imported_at,
    gapAllowed: row.gap_allowed,
  };
}

function toEntryInput(r: EntryRow): MirrorEntryInput {
  return {
    ecosystem: r.ecosystem as Ecosystem,
    name: r.name,
    version: r.version,
    filename: r.filename,
    size: Number(r.size),
    digests: JSON.parse(r.digests) as EntryDigests,
    purl: r.purl,
    urls: JSON.parse(r.urls) as string[],
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
  };
}
