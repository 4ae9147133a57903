import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import type { SyncState } from '@airlock/schemas';
import { SyncError } from './errors.js';
import { assertSchema } from './schemas.js';

export type { SyncState };

/**
 * The sync job's memory between runs (schemas/sync-state.v1.schema.json): the last snapshot it produced, so the
 * next one extends it (`previous` = that id, `sequence` + 1). Written only after the bundle is complete.
 */

const MAX_STATE_BYTES = 64 * 1024;

export async function readSyncState(path: string): Promise<SyncState | undefined> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_STATE_BYTES)
      throw new SyncError('SYNC_STATE_INVALID', `${path}: state file larger than ${MAX_STATE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err instanceof SyncError
      ? err
      : new SyncError('SYNC_STATE_INVALID', `${path}: cannot read state file: ${(err as Error).message}`, {
          cause: err,
        });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new SyncError('SYNC_STATE_INVALID', `${path}: state file is not JSON`, { cause });
  }
  assertSchema('sync-state.v1', data, `state file ${path}`, (k) => k, 'SYNC_STATE_INVALID');
  return data;
}

/** Atomic replace: temp file in the same directory, fsync, rename. A crash leaves the old state or the new one. */
export async function writeSyncState(path: string, state: SyncState): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SyncError('SYNC_STATE_INVALID', `${path}: cannot write state file: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
