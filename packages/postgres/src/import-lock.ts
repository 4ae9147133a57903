import { hostname } from 'node:os';
import { CasError } from '@airlock/cas';
import type pg from 'pg';
import { pgModule } from './pg-module.js';
import { parsePgUrl, toPgError, type PgTarget } from './connection.js';

// Session advisory lock key of the mirror's import slot (advisory locks are per database: one mirror per database).
// Distinct from the publish, migration and log-writer keys.
const IMPORT_LOCK = '7019776397468233987';
// Shown in pg_stat_activity, so a refused importer can say who holds the slot.
const APP_PREFIX = 'airlock-mirror-import';

/** The held import slot. `release()` unlocks and closes the session (a dead process's session ends by itself). */
export interface PgImportLock {
  release(): Promise<void>;
}

/**
 * Takes the mirror's import slot across hosts: a session-level advisory lock on its own connection, held until
 * release. The per-directory file lock only serialises importers sharing one state directory; importers on
 * different hosts share only the database, and interleaved, one's recovery could delete a blob the other has
 * counted as present. Fails at once (no waiting) with IMPORT_LOCKED naming the holder, like the file lock.
 * TCP keepalive lets the server end the session of a holder whose host vanished.
 */
export async function acquirePgImportLock(url: string): Promise<PgImportLock> {
  const target = parsePgUrl(url);
  const me = `${APP_PREFIX} pid ${process.pid} on ${hostname()}`;
  const client = new (pgModule().Client)({
    ...target.config,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    application_name: me.slice(0, 63),
  });
  client.on('error', () => undefined); // a lost session loses the lock; the publish transaction still checks order
  try {
    await client.connect();
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [IMPORT_LOCK]);
    if (!got.rows[0]?.ok) throw lockedError(await holderOf(client), target);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw toPgError(err, target, 'taking the import lock');
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      await client.query('SELECT pg_advisory_unlock($1)', [IMPORT_LOCK]).catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** The holder's application_name and client address, if the server shows them to us. */
async function holderOf(client: pg.Client): Promise<string | undefined> {
  const r = await client
    .query<{ app: string | null; addr: string | null }>(
      `SELECT a.application_name AS app, host(a.client_addr) AS addr
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`,
      [IMPORT_LOCK],
    )
    .catch(() => undefined);
  const row = r?.rows[0];
  if (!row) return undefined;
  return `${row.app || 'unknown client'}${row.addr ? ` from ${row.addr}` : ''}`;
}

function lockedError(holder: string | undefined, target: PgTarget): CasError {
  return new CasError(
    'IMPORT_LOCKED',
    `another import (${holder ?? 'holder not visible'}) holds the import lock of the mirror in PostgreSQL at ${target.display}; try again when it has finished`,
    { details: holder ? { holder, database: target.display } : { database: target.display } },
  );
}
