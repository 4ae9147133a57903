import { AirlockError } from '@airlock/core';
import type pg from 'pg';
import { pgModule } from './pg-module.js';
import { PgError } from './errors.js';

/**
 * A parsed connection string. The string is operator configuration and holds the password: only `display`
 * (user@host:port/db) ever reaches a log line or an error message.
 */
export interface PgTarget {
  config: pg.PoolConfig;
  display: string;
  /** Strings to scrub from any message we pass on (the password, raw and URL-encoded). */
  secrets: string[];
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

export function parsePgUrl(url: string): PgTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PgError('PG_URL_INVALID', 'the --index value is not a valid postgres:// URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new PgError('PG_URL_INVALID', `the index URL must start with postgres://, not ${u.protocol}//`);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!u.hostname || !database)
    throw new PgError('PG_URL_INVALID', 'the postgres:// URL needs a host and a database (postgres://user@host/db)');
  const password = decodeURIComponent(u.password);
  const user = decodeURIComponent(u.username);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = u.port ? Number(u.port) : 5432;
  const config: pg.PoolConfig = { host, port, database, user: user || undefined, password: password || undefined };
  const ssl = u.searchParams.get('sslmode');
  if (ssl && ssl !== 'disable') config.ssl = { rejectUnauthorized: ssl === 'verify-full' || ssl === 'verify-ca' };
  return {
    config,
    display: `${user ? `${user}@` : ''}${host}:${port}/${database}`,
    secrets: [password, u.password, url].filter((s) => s.length > 0),
  };
}

export function redact(message: string, secrets: readonly string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'EAI_AGAIN']);

/** A driver error as a PgError with the secret scrubbed; our own typed errors pass through. */
export function toPgError(err: unknown, target: PgTarget, what: string): Error {
  if (err instanceof AirlockError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const msg = redact(String(e.message ?? err), target.secrets);
  if (UNREACHABLE.has(code) || /timeout|Connection terminated/i.test(msg))
    return new PgError('PG_UNREACHABLE', `PostgreSQL at ${target.display} is unreachable (${what}): ${msg}`);
  if (code === '28P01' || code === '28000')
    return new PgError('PG_AUTH_FAILED', `PostgreSQL at ${target.display} refused the login (${what}): ${msg}`);
  return new PgError('PG_QUERY_FAILED', `PostgreSQL at ${target.display}: ${what} failed: ${msg}`, {
    details: code ? { sqlstate: code } : {},
  });
}

export function newPool(target: PgTarget, max = 4): pg.Pool {
  const pool = new (pgModule().Pool)({ ...target.config, max, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  return pool;
}

/** One pooled query; any failure becomes a typed PgError naming `what` (never the password). */
export async function pgQuery<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  target: PgTarget,
  sql: string,
  params: unknown[],
  what: string,
): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(sql, params);
  } catch (err) {
    throw toPgError(err, target, what);
  }
}
