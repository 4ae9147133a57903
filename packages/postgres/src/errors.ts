import { AirlockError } from '@airlock/core';

/** Stable codes of the PostgreSQL backends. */
export type PgErrorCode =
  | 'PG_URL_INVALID' // not a postgres:// connection string
  | 'PG_UNREACHABLE' // connection refused, timed out, host unknown
  | 'PG_AUTH_FAILED'
  | 'PG_SCHEMA_NEWER' // the database has migrations this build does not know
  | 'PG_MIGRATION_CHANGED' // an applied migration's file differs from what was applied
  | 'PG_MIGRATION_FAILED'
  | 'PG_QUERY_FAILED';

export class PgError extends AirlockError<PgErrorCode> {}
