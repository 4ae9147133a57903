import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { TlogError } from '../errors.js';
import { fsyncDir } from '../signing-key.js';
import { CHECKPOINT_PATH, TILE_PATH_PATTERN } from './layout.js';

/**
 * Where tiles go. Tiles and entry bundles are immutable (write-once: a second put of the same path must carry the
 * same bytes); the checkpoint is the one object that is replaced. A directory any static server can serve, or an
 * object store (the S3 backend implements the same three methods).
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

function writeDurably(path: string, bytes: Uint8Array): string {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Tiles as files under `root` (POSIX, like rekor-server-posix). Each file is written to a temp name, fsynced and
 * linked into place (never overwritten), then its directory is fsynced: a tile a checkpoint points at survives a
 * power loss. The checkpoint is written last, by rename.
 */
export class FsTileStore implements TileStore {
  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  async put(path: string, bytes: Uint8Array): Promise<void> {
    checkPath(path);
    const target = join(this.root, path);
    const existing = await this.get(path);
    if (existing) {
      if (existing.equals(bytes)) return;
      throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path} already exists with different contents`);
    }
    mkdirSync(dirname(target), { recursive: true });
    const tmp = writeDurably(target, bytes);
    try {
      linkSync(tmp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!readFileSync(target).equals(bytes))
        throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path} already exists with different contents`);
    } finally {
      unlinkSync(tmp);
    }
    fsyncDir(dirname(target));
  }

  async putCheckpoint(bytes: Uint8Array): Promise<void> {
    const target = join(this.root, CHECKPOINT_PATH);
    renameSync(writeDurably(target, bytes), target);
    fsyncDir(this.root);
  }

  async get(path: string): Promise<Buffer | undefined> {
    checkPath(path);
    try {
      return readFileSync(join(this.root, path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}
