import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { PgError } from './errors.js';

/** Versioned migrations shipped in packages/postgres/migrations (NNN_name.sql), applied in order. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

// pg_advisory_lock key: one migrator at a time across every process using the database.
const MIGRATE_LOCK = 0x6169726c6f636b01n;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => {
      const sql = readFileSync(`${dir}/${f}`, 'utf8');
      return {
        version: Number(f.slice(0, 3)),
        name: f.slice(4, -4),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

/**
 * Applies the migrations not yet recorded in `schema_migrations`, each in its own transaction, under an
 * advisory lock (concurrent starters wait, then find them applied). Refuses a database that is newer than this
 * build or whose applied migrations were edited afterwards. Returns the versions applied now.
 */
export async function migrate(pool: pg.Pool, migrations = loadMigrations()): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK.toString()]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const applied = new Map(
        (
          await client.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations')
        ).rows.map((r) => [r.version, r.checksum]),
      );
      const known = new Set(migrations.map((m) => m.version));
      const newer = [...applied.keys()].filter((v) => !known.has(v));
      if (newer.length > 0)
        throw new PgError(
          'PG_SCHEMA_NEWER',
          `the database has migration(s) ${newer.join(', ')} this build does not know; upgrade airlock`,
        );
      const done: number[] = [];
      for (const m of migrations) {
        const sum = applied.get(m.version);
        if (sum !== undefined) {
          if (sum !== m.checksum)
            throw new PgError(
              'PG_MIGRATION_CHANGED',
              `migration ${m.version}_${m.name} differs from the one applied to this database`,
            );
          continue;
        }
        await applyOne(client, m);
        done.push(m.version);
      }
      return done;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK.toString()]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

async function applyOne(client: pg.PoolClient, m: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(m.sql);
    await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
      m.version,
      m.name,
      m.checksum,
    ]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new PgError('PG_MIGRATION_FAILED', `migration ${m.version}_${m.name} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
