/**
 * Where `tlog serve` and `up` keep the log, from operator flags: metadata in PostgreSQL (`--index postgres://…`,
 * password from PGPASSWORD) and tiles in a directory or an S3 bucket (`--tiles s3://bucket/prefix`, endpoint and
 * credentials from AWS_* or `--s3-config`, as for the mirror). Configuration mistakes are usage errors.
 */
import type { PgLogStorage } from '@airlock/postgres';
import type { TileStore } from '@airlock/tlog';
import { UsageError } from '../output.js';

export const TLOG_INDEX_HELP =
  "the log's entries and tree in PostgreSQL (postgres://user@host:port/db; password from PGPASSWORD) instead of SQLite in --data";
export const TLOG_TILES_HELP =
  'publish the C2SP tlog-tiles and checkpoint here: a directory, or s3://bucket/prefix (the bucket must exist; default DATA/tiles)';
export const TLOG_S3_CONFIG_HELP =
  'with --tiles s3://…: JSON file with endpoint, region, accessKeyId, secretAccessKey (default: AWS_* variables)';

/** PostgreSQL codes that mean the operator's --index is wrong (exit 2), not that the server is down. */
export const PG_INPUT_CODES = new Set(['PG_URL_INVALID', 'PG_SCHEMA_NEWER', 'PG_MIGRATION_CHANGED']);
/** S3 codes that mean the operator's --tiles/--s3-config is wrong (exit 2). */
export const S3_INPUT_CODES = new Set(['S3_CONFIG_INVALID', 'S3_CREDENTIALS_MISSING', 'S3_BUCKET_MISSING']);

export async function openPgLogStorage(url: string): Promise<PgLogStorage> {
  // Loaded here: the PostgreSQL storage pulls in the log and mirror libraries, which `--help` does not need.
  const { isPostgresUrl, PgLogStorage } = await import('@airlock/postgres');
  if (!isPostgresUrl(url)) throw new UsageError('--index must be a postgres:// URL');
  return PgLogStorage.open(url);
}

export interface TileTarget {
  tiles: string | TileStore;
  close(): void;
}

/** `--tiles DIR|s3://…` → the log's tile store; the bucket is checked now, not at the first append. */
export async function openTileTarget(tiles: string, s3Config?: string): Promise<TileTarget> {
  const { isS3Url, openS3BlobStore, parseS3Url, resolveS3Connection, S3TileStore } = await import('@airlock/s3');
  if (!isS3Url(tiles)) {
    if (s3Config !== undefined) throw new UsageError('--s3-config is only for --tiles s3://…');
    return { tiles, close: () => undefined };
  }
  const configFile = s3Config !== undefined ? { configFile: s3Config } : {};
  (await openS3BlobStore(tiles, configFile)).close(); // HeadBucket: S3_BUCKET_MISSING / _UNREACHABLE / _ACCESS_DENIED
  const store = new S3TileStore(parseS3Url(tiles), resolveS3Connection(configFile));
  return { tiles: store, close: () => store.close() };
}

/** Whether a PostgreSQL or S3 error was caused by the operator's flags (exit 2). */
export function backendInputExit(err: unknown): boolean {
  const code = String((err as { code?: unknown }).code ?? '');
  // By code alone: these codes are only ever S3Error's/PgError's, and matching by class would load both libraries.
  return PG_INPUT_CODES.has(code) || S3_INPUT_CODES.has(code);
}
