import { mkdirSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { TlogError } from '../errors.js';
import { CHECKPOINT_PATH, TILE_PATH_PATTERN } from './layout.js';

/**
 * Where tiles go. Tiles and entry bundles are immutable (write-once: a second put of the same path must carry the
 * same bytes); the checkpoint is the one object that is replaced. A directory any static server can serve, or an
 * object store (the S3 backend implements the same three methods). The log's tile writer calls `put` for all of a
 * batch's tiles concurrently, then `putCheckpoint` once they all resolved.
 */
export interface TileStore {
  put(path: string, bytes: Uint8Array): Promise<void>;
  putCheckpoint(bytes: Uint8Array): Promise<void>;
  /** The bytes at a tile path or `checkpoint`, or undefined when absent. */
  get(path: string): Promise<Buffer | undefined>;
}

function checkPath(path: string): void {
  if (!TILE_PATH_PATTERN.test(path)) throw new TlogError('TLOG_BAD_REQUEST', `not a tile path: ${path.slice(0, 100)}`);
}

/** Writes `bytes` to a fresh temp file beside `path` and fdatasyncs it (off the event loop); returns its name. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<string> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.write(bytes);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** fsync a directory so a link/rename in it survives a power loss (best effort where unsupported). */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the data itself was fsynced.
  } finally {
    await fh?.close();
  }
}

/**
 * Tiles as files under `root` (POSIX, like rekor-server-posix). Each file is written to a temp name, fdatasynced
 * and linked into place (never overwritten), then its directory is fsynced: a tile a checkpoint points at survives
 * a power loss. The checkpoint is written last, by rename. All I/O is asynchronous (libuv's pool), so concurrent
 * puts of one batch overlap their fsyncs and the event loop keeps serving meanwhile.
 */
export class FsTileStore implements TileStore {
  /** Directories known to exist (tiles of one directory arrive 256 at a time). */
  private readonly made = new Set<string>();

  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  async put(path: string, bytes: Uint8Array): Promise<void> {
    checkPath(path);
    const target = join(this.root, path);
    const dir = dirname(target);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const tmp = await writeDurably(target, bytes);
    try {
      await link(tmp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Written before (catch-up after a crash): fine only with the same bytes.
      if (!(await readFile(target)).equals(bytes))
        throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path} already exists with different contents`);
    } finally {
      await unlink(tmp);
    }
    await syncDir(dir);
  }

  async putCheckpoint(bytes: Uint8Array): Promise<void> {
    const target = join(this.root, CHECKPOINT_PATH);
    await rename(await writeDurably(target, bytes), target);
    await syncDir(this.root);
  }

  async get(path: string): Promise<Buffer | undefined> {
    checkPath(path);
    try {
      return await readFile(join(this.root, path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}
