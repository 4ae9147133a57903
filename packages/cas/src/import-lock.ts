import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CasError } from './errors.js';

/** Contents of `staging/import.lock`: who holds the store's single import slot. */
export interface ImportLockHolder {
  pid: number;
  bootId: string | null;
  importId: string;
  startedAt: string;
}

export const IMPORT_LOCK_FILE = 'import.lock';

// Imports this process holds right now: a lock naming our own pid is live only if it is in here.
const activeImports = new Set<string>();

let cachedBootId: string | null | undefined;
async function bootId(): Promise<string | null> {
  if (cachedBootId === undefined) {
    cachedBootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
      (s) => s.trim() || null,
      () => null,
    );
  }
  return cachedBootId;
}

export function newImportId(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(6).toString('hex')}`;
}

/**
 * A cross-process lock file (O_EXCL create). Stale when its process is gone: a different boot, or our pid
 * without a matching active import, or `kill(pid, 0)` answering ESRCH.
 */
export class ImportLock {
  private released = false;

  private constructor(
    private readonly path: string,
    readonly holder: ImportLockHolder,
  ) {}

  /** Takes the lock or returns the live holder. A stale lock is left in place for the caller to recover. */
  static async tryAcquire(
    stagingDir: string,
    importId: string,
  ): Promise<ImportLock | { heldBy: ImportLockHolder | null; stale: boolean }> {
    const path = join(stagingDir, IMPORT_LOCK_FILE);
    const holder: ImportLockHolder = {
      pid: process.pid,
      bootId: await bootId(),
      importId,
      startedAt: new Date().toISOString(),
    };
    // The lock must never exist half-written (a kill -9 between create and write would leave an empty lock that
    // nobody can judge), so the holder is written and fsynced to a private temp file first and then published
    // with link(2), which fails atomically with EEXIST when the slot is taken.
    const temp = join(stagingDir, `${IMPORT_LOCK_FILE}.${process.pid}.${importId}.tmp`);
    const fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(holder)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(temp, path);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') {
        await unlink(temp).catch(() => undefined);
        throw err;
      }
      await unlink(temp).catch(() => undefined);
      const current = await readHolder(path);
      return { heldBy: current.holder, stale: !(await isLive(current)) };
    }
    await unlink(temp);
    await syncDir(stagingDir);
    activeImports.add(importId);
    return new ImportLock(path, holder);
  }

  /**
   * Removes a lock judged stale (after recovering what its holder left behind). Re-reads it first and leaves it
   * alone if someone else took the slot meanwhile.
   */
  static async breakStale(stagingDir: string, judged: ImportLockHolder | null): Promise<void> {
    const path = join(stagingDir, IMPORT_LOCK_FILE);
    const now = await readHolder(path);
    if ((now.holder?.importId ?? null) !== (judged?.importId ?? null)) return;
    await unlink(path).catch((err: unknown) => {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    activeImports.delete(this.holder.importId);
    await unlink(this.path).catch(() => undefined);
    await syncDir(join(this.path, '..')).catch(() => undefined);
  }
}

export function lockedError(holder: ImportLockHolder | null): CasError {
  return new CasError(
    'IMPORT_LOCKED',
    holder
      ? `another import (${holder.importId}, pid ${holder.pid}, started ${holder.startedAt}) is in progress on this store`
      : 'another import is starting on this store',
    { details: holder ? { ...holder } : {} },
  );
}

async function readHolder(path: string): Promise<{ holder: ImportLockHolder | null; mtimeMs: number }> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    try {
      const v = JSON.parse(text) as Partial<ImportLockHolder>;
      if (typeof v.pid === 'number' && typeof v.importId === 'string') {
        return {
          holder: {
            pid: v.pid,
            bootId: typeof v.bootId === 'string' ? v.bootId : null,
            importId: v.importId,
            startedAt: String(v.startedAt ?? ''),
          },
          mtimeMs: st.mtimeMs,
        };
      }
    } catch {
      // fall through: unreadable lock
    }
    return { holder: null, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return { holder: null, mtimeMs: 0 };
    throw err;
  }
}

async function isLive(current: { holder: ImportLockHolder | null; mtimeMs: number }): Promise<boolean> {
  const { holder } = current;
  // Locks are published complete (link of a fsynced file), so an empty or garbled one is damage, not a holder
  // mid-write: stale. A lock that vanished meanwhile (mtime 0) is also not live.
  if (!holder) return false;
  const ours = await bootId();
  if (holder.bootId && ours && holder.bootId !== ours) return false;
  if (holder.pid === process.pid) return activeImports.has(holder.importId);
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/** Removes temp lock files left by processes killed before they could link or unlink them. */
export async function removeStaleLockTemps(stagingDir: string): Promise<number> {
  let removed = 0;
  for (const name of await readdir(stagingDir)) {
    if (!name.startsWith(`${IMPORT_LOCK_FILE}.`) || !name.endsWith('.tmp')) continue;
    // Only a dead process's temp file: a live one may be about to link it.
    const pid = Number(name.slice(IMPORT_LOCK_FILE.length + 1).split('.')[0]);
    if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await unlink(join(stagingDir, name)).catch(() => undefined);
    removed++;
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
