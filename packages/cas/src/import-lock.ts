import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
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
  static async tryAcquire(stagingDir: string, importId: string): Promise<ImportLock | { heldBy: ImportLockHolder | null; stale: boolean }> {
    const path = join(stagingDir, IMPORT_LOCK_FILE);
    const holder: ImportLockHolder = { pid: process.pid, bootId: await bootId(), importId, startedAt: new Date().toISOString() };
    let fh;
    try {
      fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
      const current = await readHolder(path);
      return { heldBy: current.holder, stale: !(await isLive(current)) };
    }
    try {
      await fh.writeFile(`${JSON.stringify(holder)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
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
          holder: { pid: v.pid, bootId: typeof v.bootId === 'string' ? v.bootId : null, importId: v.importId, startedAt: String(v.startedAt ?? '') },
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
  // An empty/garbled lock is a holder that crashed between create and write, unless it is brand new.
  if (!holder) return current.mtimeMs > 0 && Date.now() - current.mtimeMs < 10_000;
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

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
