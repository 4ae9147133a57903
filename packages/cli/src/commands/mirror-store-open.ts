/**
 * Where a mirror store lives, from operator flags: `--store DIR` (blobs and index in one directory) or
 * `--store s3://bucket/prefix --index DIR` (blobs in an S3-compatible object store, endpoint and credentials from
 * AWS_* variables or `--s3-config FILE`; the index, import journal and lock in DIR). Mirror worker processes open
 * the store through `openMirrorStoreForWorker`, with the same flags and the environment they inherit.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MirrorStore } from '@airlock/cas';
import { acquirePgImportLock, isPostgresUrl, PgMirrorIndex, type PgImportLock } from '@airlock/postgres';
import { isS3Url, openS3BlobStore, S3Error, type S3BlobStore } from '@airlock/s3';
import { UsageError } from '../output.js';
import { parseDuration } from './cli-flags.js';

export interface StoreFlags {
  store: string;
  index?: string;
  s3Config?: string;
  /** With --index postgres://… and --store s3://…: the local directory of the import journal and lock. */
  stateDir?: string;
  /** With --index postgres://…, serving: polling interval besides LISTEN/NOTIFY. */
  indexPoll?: string;
  /** commander's `--no-index-listen`: poll only. */
  indexListen?: boolean;
}

export interface OpenStoreOptions {
  /** `mirror import --create`: make the store (and the bucket) when there is none. */
  create?: boolean;
  /** Clean up after an interrupted import (default true; workers pass false). */
  recover?: boolean;
  /** Serving: keep following a shared (PostgreSQL) index for new snapshots. */
  follow?: boolean;
}

/** The help text shared by every mirror command's --store. */
export const STORE_FLAG_HELP = 'mirror store: a directory, or s3://bucket/prefix (then --index DIR)';
export const INDEX_FLAG_HELP =
  'postgres://user@host:port/db (password from PGPASSWORD), or with --store s3://…: directory of the index, import journal and lock';
export const STATE_DIR_FLAG_HELP =
  'with --store s3://… --index postgres://…: local directory of the import journal and lock';
export const S3_CONFIG_FLAG_HELP =
  'JSON file with endpoint, region, accessKeyId, secretAccessKey (default: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)';

/** Human name of the store for messages (never carries credentials: they are not part of the flags). */
export function storeLabel(flags: StoreFlags): string {
  if (flags.index !== undefined && isPostgresUrl(flags.index)) return `${flags.store} (index on PostgreSQL)`;
  return isS3Url(flags.store) ? `${flags.store} (index ${flags.index ?? '?'})` : flags.store;
}

/**
 * With --index postgres://…: the import slot shared by every host using the database (import and fsck take it
 * besides the state directory's file lock, which only serialises processes sharing that directory).
 */
export async function sharedImportLock(flags: StoreFlags): Promise<PgImportLock | undefined> {
  return flags.index !== undefined && isPostgresUrl(flags.index) ? acquirePgImportLock(flags.index) : undefined;
}

/**
 * Opens a store. Without `create` it must already exist: a mistyped --store/--index must not serve or check an
 * empty mirror. Configuration mistakes are usage errors (exit 2); an unreachable object store exits 3.
 */
export async function openMirrorStore(flags: StoreFlags, options: OpenStoreOptions = {}): Promise<MirrorStore> {
  const create = options.create ?? false;
  const recover = options.recover ?? true;
  if (flags.index !== undefined && isPostgresUrl(flags.index)) return openWithPostgresIndex(flags, options);
  if (flags.stateDir !== undefined) throw new UsageError('--state-dir is only for --index postgres://…');
  if (!isS3Url(flags.store)) {
    if (flags.index !== undefined)
      throw new UsageError('--index is only for --store s3://… (a directory store keeps its index inside)');
    if (flags.s3Config !== undefined) throw new UsageError('--s3-config is only for --store s3://…');
    if (!create && !(await MirrorStore.exists(flags.store)))
      throw new UsageError(`no mirror store at ${flags.store} (use \`airlock mirror import --create\` to make one)`);
    return MirrorStore.open(flags.store, { create, recover });
  }
  if (flags.index === undefined)
    throw new UsageError(`--store ${flags.store} needs --index DIR (where the index, journal and lock live)`);
  if (!create && !(await MirrorStore.exists(flags.index)))
    throw new UsageError(
      `no mirror index at ${flags.index} for ${flags.store} (use \`airlock mirror import --create\` to make one)`,
    );
  const blobStore = await openBlobStore(flags, create);
  try {
    return await MirrorStore.open(flags.index, { create, recover, blobStore });
  } catch (err) {
    blobStore.close();
    throw err;
  }
}

async function openBlobStore(flags: StoreFlags, create: boolean): Promise<S3BlobStore> {
  try {
    return await openS3BlobStore(flags.store, {
      ...(flags.s3Config !== undefined ? { configFile: flags.s3Config } : {}),
      createBucket: create,
    });
  } catch (err) {
    if (err instanceof S3Error && (err.code === 'S3_CONFIG_INVALID' || err.code === 'S3_CREDENTIALS_MISSING'))
      throw new UsageError(err.message);
    throw err;
  }
}

/**
 * `--index postgres://…`: the index and snapshot history in PostgreSQL (authoritative; this process serves from a
 * read model it keeps current), blobs in the --store directory or S3. The URL is never printed.
 */
async function openWithPostgresIndex(flags: StoreFlags, options: OpenStoreOptions): Promise<MirrorStore> {
  const s3 = isS3Url(flags.store);
  if (!s3 && flags.s3Config !== undefined) throw new UsageError('--s3-config is only for --store s3://…');
  const dir = s3 ? flags.stateDir : flags.store;
  if (dir === undefined)
    throw new UsageError(
      `--store ${flags.store} with --index postgres://… needs --state-dir DIR (import journal and lock)`,
    );
  // A mistyped directory store must not serve an empty blob set under a populated index.
  if (!s3 && !options.create && !existsSync(join(dir, 'blobs')))
    throw new UsageError(`no mirror store at ${dir} (use \`airlock mirror import --create\` to make one)`);
  const pollMs = flags.indexPoll === undefined ? undefined : parseDuration('--index-poll', flags.indexPoll);
  const sharedIndex = await PgMirrorIndex.open(flags.index!, {
    follow: options.follow === true,
    listen: flags.indexListen !== false,
    ...(pollMs !== undefined ? { pollMs } : {}),
  });
  let blobStore: S3BlobStore | undefined;
  try {
    if (s3) blobStore = await openBlobStore(flags, options.create ?? false);
    return await MirrorStore.open(dir, {
      create: options.create ?? false,
      recover: options.recover ?? true,
      sharedIndex,
      ...(blobStore ? { blobStore } : {}),
    });
  } catch (err) {
    blobStore?.close();
    await sharedIndex.close().catch(() => undefined);
    if ((err as { code?: unknown }).code === 'STORE_MISSING')
      throw new UsageError(
        `no mirror store at ${flags.store} with index ${sharedIndex.display} (use \`airlock mirror import --create\` to make one)`,
      );
    throw err;
  }
}

/** The worker-process entry (see startMirrorServer's `workerStore`): the primary's flags, no recovery. */
export async function openMirrorStoreForWorker(args: unknown): Promise<MirrorStore> {
  const a = args as Partial<Record<keyof StoreFlags, unknown>> | null;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const store = str(a?.store);
  if (store === undefined) throw new UsageError('worker store arguments lack `store`');
  const flags: StoreFlags = { store };
  for (const k of ['index', 's3Config', 'stateDir', 'indexPoll'] as const) {
    const v = str(a?.[k]);
    if (v !== undefined) flags[k] = v;
  }
  if (a?.indexListen === false) flags.indexListen = false;
  return openMirrorStore(flags, { recover: false, follow: true });
}

/** What a worker needs to open the same store (this module and the flags); a directory store needs nothing. */
export function workerStoreOf(flags: StoreFlags): { module: string; args: StoreFlags } | undefined {
  const pgIndex = flags.index !== undefined && isPostgresUrl(flags.index);
  if (!isS3Url(flags.store) && !pgIndex) return undefined;
  // Sent over the IPC channel, never argv: the index URL may carry a password.
  return {
    module: new URL('./mirror-store-open.js', import.meta.url).href,
    args: {
      store: flags.store,
      ...(flags.index !== undefined ? { index: flags.index } : {}),
      ...(flags.s3Config !== undefined ? { s3Config: flags.s3Config } : {}),
      ...(flags.stateDir !== undefined ? { stateDir: flags.stateDir } : {}),
      ...(flags.indexPoll !== undefined ? { indexPoll: flags.indexPoll } : {}),
      ...(flags.indexListen === false ? { indexListen: false } : {}),
    },
  };
}
