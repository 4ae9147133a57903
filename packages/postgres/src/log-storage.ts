import { TlogError, type LogStorage, type NewEntryRow, type NodeCoord, type StoredEntry } from '@airlock/tlog';
import type pg from 'pg';
import { pgModule } from './pg-module.js';
import { newPool, parsePgUrl, pgQuery, toPgError, type PgTarget } from './connection.js';
import { migrate } from './migrate.js';

// Session advisory lock held by the writer for its lifetime: one log process per database (the in-memory Merkle
// frontier assumes a single writer). Released by PostgreSQL when the process dies.
const WRITER_LOCK = '7019776397468233986';

interface EntryRow {
  log_index: string;
  leaf_hash: Buffer;
  body: Buffer;
  integrated_time: string;
  kind: string;
  api_version: string;
  set_sig: Buffer;
}

function toEntry(r: EntryRow): StoredEntry {
  return {
    logIndex: Number(r.log_index),
    leafHash: r.leaf_hash,
    body: r.body,
    integratedTime: Number(r.integrated_time),
    kind: r.kind,
    apiVersion: r.api_version,
    signedEntryTimestamp: r.set_sig,
  };
}

/**
 * The transparency log's storage on PostgreSQL (packages/tlog's LogStorage). `writeBatch` is one transaction
 * with `synchronous_commit = on` forced, committed on the writer's connection before it resolves: an acknowledged
 * entry is durable in PostgreSQL (WAL flushed) whatever the server's default. The writer's connection holds an
 * advisory lock, so a second log process on the same database fails with TLOG_STORE_LOCKED.
 */
export class PgLogStorage implements LogStorage {
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly writer: pg.Client,
    private readonly target: PgTarget,
  ) {}

  static async open(url: string): Promise<PgLogStorage> {
    const target = parsePgUrl(url);
    const pool = newPool(target);
    const writer = new (pgModule().Client)({ ...target.config, connectionTimeoutMillis: 10_000 });
    writer.on('error', () => undefined); // surfaces on the next query
    try {
      await migrate(pool);
      await writer.connect();
      const got = await writer.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [WRITER_LOCK]);
      if (!got.rows[0]?.ok)
        throw new TlogError('TLOG_STORE_LOCKED', `the log database ${target.display} is in use by another process`);
    } catch (err) {
      await writer.end().catch(() => undefined);
      await pool.end().catch(() => undefined);
      throw toPgError(err, target, 'opening the log storage');
    }
    return new PgLogStorage(pool, writer, target);
  }

  async initialize(identity: { logId: string; treeId: string }): Promise<{ treeId: string }> {
    return this.inWriterTransaction('initializing the log', async (c) => {
      const meta = await c.query<{ key: string; value: string }>('SELECT key, value FROM tlog_meta');
      const m = new Map(meta.rows.map((r) => [r.key, r.value]));
      const logId = m.get('log_id');
      if (logId === undefined) await setMeta(c, 'log_id', identity.logId);
      else if (logId !== identity.logId) {
        throw new TlogError(
          'TLOG_KEY_MISMATCH',
          `this log was created with the signing key whose log ID is ${logId}, but the configured key has log ID ${identity.logId}`,
        );
      }
      let treeId = m.get('tree_id');
      if (treeId === undefined) {
        treeId = identity.treeId;
        await setMeta(c, 'tree_id', treeId);
        await setMeta(c, 'tree_size', '0');
      }
      return { treeId };
    });
  }

  async treeSize(): Promise<number> {
    const r = await this.query<{ n: string | null; c: string; recorded: string | null }>(
      `SELECT max(log_index) AS n, count(*) AS c, (SELECT value FROM tlog_meta WHERE key = 'tree_size') AS recorded
       FROM tlog_entries`,
      [],
      'reading the tree size',
    );
    const row = r.rows[0]!;
    const size = row.n === null ? 0 : Number(row.n) + 1;
    if (Number(row.c) !== size)
      throw new TlogError(
        'TLOG_STORE_CORRUPT',
        `log entries are not dense: ${row.c} rows but highest index ${size - 1}`,
      );
    if (Number(row.recorded ?? '0') !== size)
      throw new TlogError(
        'TLOG_STORE_CORRUPT',
        `log database records tree size ${row.recorded ?? 0} but holds ${size} entries`,
      );
    return size;
  }

  async getNodes(coords: readonly NodeCoord[]): Promise<Buffer[]> {
    if (coords.length === 0) return [];
    const r = await this.query<{ i: string; hash: Buffer | null }>(
      `SELECT c.i, coalesce(n.hash, e.leaf_hash) AS hash
       FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS c(level, idx, i)
       LEFT JOIN tlog_nodes n ON c.level > 0 AND n.level = c.level AND n.idx = c.idx
       LEFT JOIN tlog_entries e ON c.level = 0 AND e.log_index = c.idx
       ORDER BY c.i`,
      [coords.map((c) => c.level), coords.map((c) => c.index)],
      'reading tree nodes',
    );
    return r.rows.map((row, k) => {
      if (!row.hash) {
        const c = coords[k]!;
        throw new TlogError(
          'TLOG_STORE_CORRUPT',
          `log database is missing tree node (level ${c.level}, index ${c.index})`,
        );
      }
      return row.hash;
    });
  }

  async getEntryByIndex(index: number): Promise<StoredEntry | undefined> {
    const r = await this.query<EntryRow>(
      'SELECT * FROM tlog_entries WHERE log_index = $1',
      [index],
      'reading an entry',
    );
    return r.rows[0] && toEntry(r.rows[0]);
  }

  async getEntryByLeafHash(leafHash: Buffer): Promise<StoredEntry | undefined> {
    const r = await this.query<EntryRow>(
      'SELECT * FROM tlog_entries WHERE leaf_hash = $1',
      [leafHash],
      'reading an entry',
    );
    return r.rows[0] && toEntry(r.rows[0]);
  }

  async getEntryRange(start: number, count: number): Promise<StoredEntry[]> {
    const r = await this.query<EntryRow>(
      'SELECT * FROM tlog_entries WHERE log_index >= $1 ORDER BY log_index LIMIT $2',
      [start, count],
      'reading entries',
    );
    return r.rows.map(toEntry);
  }

  async findLeafHashes(leafHashes: readonly Buffer[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (leafHashes.length === 0) return found;
    const r = await this.query<{ leaf_hash: Buffer; log_index: string }>(
      'SELECT leaf_hash, log_index FROM tlog_entries WHERE leaf_hash = ANY($1::bytea[])',
      [leafHashes],
      'deduplicating entries',
    );
    for (const row of r.rows) found.set(row.leaf_hash.toString('hex'), Number(row.log_index));
    return found;
  }

  async search(key: string, limit: number): Promise<number[]> {
    const r = await this.query<{ log_index: string }>(
      'SELECT log_index FROM tlog_search WHERE key = $1 ORDER BY log_index LIMIT $2',
      [key, limit],
      'searching the log',
    );
    return r.rows.map((row) => Number(row.log_index));
  }

  /** THE batch commit: entries, nodes, search keys and the new tree size in one durable transaction. */
  async writeBatch(rows: readonly NewEntryRow[], newTreeSize: number): Promise<void> {
    await this.inWriterTransaction('appending to the log', async (c) => {
      await c.query('SET LOCAL synchronous_commit = on');
      await c.query(
        `INSERT INTO tlog_entries (log_index, leaf_hash, body, integrated_time, kind, api_version, set_sig)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], $5::text[], $6::text[], $7::bytea[])`,
        [
          rows.map((r) => r.logIndex),
          rows.map((r) => r.leafHash),
          rows.map((r) => r.body),
          rows.map((r) => r.integratedTime),
          rows.map((r) => r.kind),
          rows.map((r) => r.apiVersion),
          rows.map((r) => r.signedEntryTimestamp),
        ],
      );
      const nodes = rows.flatMap((r) => r.nodes);
      if (nodes.length > 0)
        await c.query(
          'INSERT INTO tlog_nodes (level, idx, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])',
          [nodes.map((n) => n.level), nodes.map((n) => n.index), nodes.map((n) => n.hash)],
        );
      const keys = rows.flatMap((r) => r.indexKeys.map((k) => [k, r.logIndex] as const));
      if (keys.length > 0)
        await c.query(
          `INSERT INTO tlog_search (key, log_index) SELECT * FROM unnest($1::text[], $2::bigint[])
           ON CONFLICT DO NOTHING`,
          [keys.map((k) => k[0]), keys.map((k) => k[1])],
        );
      await setMeta(c, 'tree_size', String(newTreeSize));
    });
  }

  /** Nothing to do: `writeBatch` resolves only once its transaction is durable (synchronous_commit = on). */
  async sync(): Promise<void> {
    if (this.closed) throw new TlogError('TLOG_CLOSED', 'the log storage is closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.end().catch(() => undefined); // also releases the advisory lock
    await this.pool.end().catch(() => undefined);
  }

  private async inWriterTransaction<T>(what: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    if (this.closed) throw new TlogError('TLOG_CLOSED', 'the log storage is closed');
    try {
      await this.writer.query('BEGIN');
      try {
        const out = await fn(this.writer);
        await this.writer.query('COMMIT');
        return out;
      } catch (err) {
        await this.writer.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
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

async function setMeta(c: pg.Client, key: string, value: string): Promise<void> {
  await c.query(
    'INSERT INTO tlog_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    [key, value],
  );
}
