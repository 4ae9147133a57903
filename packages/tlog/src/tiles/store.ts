import {
  closeSync,
  existsSync,
  fdatasync,
  fsync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { TlogError, type TlogErrorCode } from '../errors.js';
import { CHECKPOINT_PATH, TILE_PATH_PATTERN } from './layout.js';

const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);

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
  /**
   * Optional: a publication at once. Every tile, then (if given) the checkpoint, which becomes visible only after
   * every tile is durable. `onReadable` is called once the tiles can be read (they may not be durable yet),
   * `onDurable` once they are durable (the checkpoint may not be written yet).
   * `replace`: tiles no durable checkpoint names (left by a crash mid-publication) may be overwritten — catch-up
   * only. Stores without it get `put`s, then `putCheckpoint`. The store may keep the tiles' bytes after it
   * resolves (to send only what a later, longer partial tile adds): callers must not modify them.
   */
  publish?(
    tiles: ReadonlyArray<readonly [string, Uint8Array]>,
    checkpoint: Uint8Array | undefined,
    options?: PublishOptions,
  ): Promise<void>;
}

export interface PublishOptions {
  onReadable?: () => void;
  onDurable?: () => void;
  replace?: boolean;
}

function checkPath(path: string): void {
  if (!TILE_PATH_PATTERN.test(path)) throw new TlogError('TLOG_BAD_REQUEST', `not a tile path: ${path.slice(0, 100)}`);
}

/** Writes `bytes` to a fresh temp file beside `path`; returns its name and open descriptor (not synced). */
function writeTemp(path: string, bytes: Uint8Array): { tmp: string; fd: number } {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  return { tmp, fd };
}

/**
 * Writes `bytes` to a fresh temp file beside `path` and fdatasyncs it; returns its name. Only the fdatasync leaves
 * the event loop: creating and writing a small file are page-cache operations, and each trip through the thread
 * pool (a context switch, costly in a VM) was more CPU than the call itself.
 */
async function writeDurably(path: string, bytes: Uint8Array): Promise<string> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    await fdatasyncAsync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Tiles as files under `root` (POSIX, like rekor-server-posix). Each file is written to a temp name, fdatasynced
 * and linked into place (never overwritten), then its directory is fsynced: a tile a checkpoint points at survives
 * a power loss. The checkpoint is written last, by rename. The fsyncs run on libuv's pool, so concurrent puts of
 * one batch overlap them and the event loop keeps serving meanwhile; the page-cache calls around them (create,
 * write, link, unlink) are made directly.
 */
export class FsTileStore implements TileStore {
  /** Directories known to exist (tiles of one directory arrive 256 at a time). */
  private readonly made = new Set<string>();
  private readonly thread: PublishThread | undefined;

  /** `thread`: run publications on a worker thread (default when the compiled worker exists). */
  constructor(
    readonly root: string,
    options: { thread?: boolean } = {},
  ) {
    mkdirSync(root, { recursive: true });
    if (options.thread ?? existsSync(PUBLISH_WORKER)) this.thread = new PublishThread(root);
  }

  /** Stops the publication thread (after the last publication: the caller flushes first). */
  async close(): Promise<void> {
    await this.thread?.close();
  }

  async put(path: string, bytes: Uint8Array): Promise<void> {
    const target = this.target(path);
    this.linkInto(await writeDurably(target, bytes), target, bytes, path);
    await this.syncDir(dirname(target));
  }

  /**
   * Two durable rounds instead of four per publication. The tiles are written to temp files and linked into place
   * at once (readable from the page cache: `onReadable`); then their data, their directories (each once) and the
   * checkpoint's temp file are synced together; then the checkpoint is renamed into place, so it never names a tile
   * that is not durable. A crash in between can leave a tile that no durable checkpoint names with wrong bytes:
   * catch-up rewrites those (`replace`).
   */
  async publish(
    tiles: ReadonlyArray<readonly [string, Uint8Array]>,
    checkpoint: Uint8Array | undefined,
    options: PublishOptions = {},
  ): Promise<void> {
    if (this.thread) return this.thread.publish(tiles, checkpoint, options);
    const targets = tiles.map(([path]) => this.target(path));
    const fds: number[] = [];
    let checkpointTmp: { tmp: string; fd: number } | undefined;
    try {
      tiles.forEach(([path, bytes], i) => {
        const { tmp, fd } = writeTemp(targets[i]!, bytes);
        fds.push(fd);
        this.linkInto(tmp, targets[i]!, bytes, path, options.replace === true);
      });
      options.onReadable?.();
      if (checkpoint) checkpointTmp = writeTemp(join(this.root, CHECKPOINT_PATH), checkpoint);
      await Promise.all([
        ...fds.map((fd) => fdatasyncAsync(fd)),
        ...[...new Set(targets.map((t) => dirname(t)))].map((d) => this.syncDir(d)),
        ...(checkpointTmp ? [fdatasyncAsync(checkpointTmp.fd)] : []),
      ]);
      options.onDurable?.();
    } catch (err) {
      if (checkpointTmp) unlinkSync(checkpointTmp.tmp);
      throw err;
    } finally {
      for (const fd of fds) closeSync(fd);
      if (checkpointTmp) closeSync(checkpointTmp.fd);
    }
    if (checkpointTmp) {
      renameSync(checkpointTmp.tmp, join(this.root, CHECKPOINT_PATH));
      await this.syncDir(this.root);
    }
  }

  /** The file of a tile path, its directory created once. */
  private target(path: string): string {
    checkPath(path);
    const target = join(this.root, path);
    const dir = dirname(target);
    if (!this.made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.made.add(dir);
    }
    return target;
  }

  /**
   * Links a temp file into place (never overwriting a tile, except with `replace`) and removes the temp name; the
   * caller fsyncs the directory.
   */
  private linkInto(tmp: string, target: string, bytes: Uint8Array, path: string, replace = false): void {
    try {
      linkSync(tmp, target);
    } catch (err) {
      // Written before (catch-up after a crash): fine with the same bytes; replaced when no checkpoint names it.
      const differs = (err as NodeJS.ErrnoException).code !== 'EEXIST' || !readFileSync(target).equals(bytes);
      if (differs && replace && (err as NodeJS.ErrnoException).code === 'EEXIST') return renameSync(tmp, target);
      if (differs) {
        unlinkSync(tmp);
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path} already exists with different contents`);
      }
    }
    unlinkSync(tmp);
  }

  async putCheckpoint(bytes: Uint8Array): Promise<void> {
    const target = join(this.root, CHECKPOINT_PATH);
    renameSync(await writeDurably(target, bytes), target);
    await this.syncDir(this.root);
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

  /** fsync a directory so a link/rename in it survives a power loss (best effort where unsupported). */
  private async syncDir(dir: string): Promise<void> {
    let fd: number | undefined;
    try {
      fd = openSync(dir, 'r');
      await fsyncAsync(fd);
    } catch {
      // Some filesystems refuse fsync on directories; the data itself was fsynced.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

const PUBLISH_WORKER = fileURLToPath(new URL('./publish-worker.js', import.meta.url));

/**
 * A tile as it crosses to the worker thread: whole, or (`prefix`) as the first `prefix` bytes of the last tile
 * sent for the same tile position (`tile/0/007.p/9` and `tile/0/007` share one) followed by `tail`.
 */
export type WireTile = [path: string, bytes: Uint8Array, prefix?: number];

/** One publication, as it crosses to the worker thread. */
export interface PublishRequest {
  id: number;
  tiles: WireTile[];
  checkpoint: Uint8Array | undefined;
  replace: boolean;
  /** Whether the caller wants the `readable` and `durable` replies. */
  wantReadable: boolean;
  wantDurable: boolean;
}
export type PublishReply =
  | { id: number; readable: true }
  | { id: number; durable: true }
  | { id: number; done: true }
  | { id: number; error: { message: string; code?: TlogErrorCode } };

interface InFlight {
  onReadable: (() => void) | undefined;
  onDurable: (() => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The worker thread that runs an `FsTileStore`'s publications; started at the first one, keeps the process alive only while one is in flight. */
class PublishThread {
  private worker: Worker | undefined;
  private readonly inflight = new Map<number, InFlight>();
  private nextId = 1;
  /** The last bytes sent per tile position: the worker holds the same (see `TileDeltas`). */
  private readonly sent = new TileDeltas();

  constructor(private readonly root: string) {}

  publish(
    tiles: ReadonlyArray<readonly [string, Uint8Array]>,
    checkpoint: Uint8Array | undefined,
    options: PublishOptions,
  ): Promise<void> {
    const id = this.nextId++;
    this.worker ??= this.spawn();
    const transfer: ArrayBuffer[] = [];
    const req: PublishRequest = {
      id,
      tiles: tiles.map(([path, bytes]) => this.sent.encode(path, bytes, transfer)),
      checkpoint,
      replace: options.replace === true,
      wantReadable: options.onReadable !== undefined,
      wantDurable: options.onDurable !== undefined,
    };
    return new Promise((resolve, reject) => {
      const worker = this.worker!;
      // Held open while a publication is in flight (its caller awaits it), never while idle.
      if (this.inflight.size === 0) worker.ref();
      this.inflight.set(id, { onReadable: options.onReadable, onDurable: options.onDurable, resolve, reject });
      worker.postMessage(req, transfer);
    });
  }

  /** Terminates the thread; a later publication would start a new one. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private spawn(): Worker {
    this.sent.clear(); // a new thread knows no earlier tiles
    const worker = new Worker(PUBLISH_WORKER, { workerData: this.root });
    worker.on('message', (r: PublishReply) => {
      const job = this.inflight.get(r.id);
      if (!job) return;
      if ('readable' in r) return job.onReadable?.();
      if ('durable' in r) return job.onDurable?.();
      this.inflight.delete(r.id);
      if (this.inflight.size === 0) this.worker?.unref();
      if ('done' in r) job.resolve();
      else job.reject(new TlogError(r.error.code ?? 'TLOG_STORE_CORRUPT', `tile publication: ${r.error.message}`));
    });
    const fail = (err: unknown): void => {
      // 'error' and then 'exit' both come: once a newer thread runs, its publications are not this one's.
      if (this.worker !== undefined && this.worker !== worker) return;
      this.worker = undefined;
      const jobs = [...this.inflight.values()];
      this.inflight.clear();
      for (const j of jobs)
        j.reject(new TlogError('TLOG_STORE_CORRUPT', 'the tile publication thread died', { cause: err }));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`tile publication thread exited with ${code}`)));
    return worker;
  }
}

/** `tile/0/007.p/9` → `tile/0/007`: the position whose partial tiles grow into the full one. */
function tilePosition(path: string): string {
  const p = path.indexOf('.p/');
  return p < 0 ? path : path.slice(0, p);
}

/** An exact-size copy that owns its memory, so it can be transferred (a view would clone its whole pool slab). */
function ownCopy(bytes: Uint8Array, transfer: ArrayBuffer[]): Uint8Array {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  transfer.push(copy.buffer);
  return copy;
}

/**
 * Right-edge tiles only grow: each publication rewrites the partial entry bundle and partial tiles with a few more
 * entries (O(width) bytes per publication). Both sides of the thread keep the last bytes per tile position, so a
 * publication sends only what was appended since; the worker rebuilds the whole tile from its copy.
 */
export class TileDeltas {
  private readonly last = new Map<string, Uint8Array>();

  clear(): void {
    this.last.clear();
  }

  /** Sender: the wire form of one tile (only its new bytes when it extends the last one sent at its position). */
  encode(path: string, bytes: Uint8Array, transfer: ArrayBuffer[]): WireTile {
    const position = tilePosition(path);
    const prev = this.last.get(position);
    this.remember(position, path, bytes);
    const extends_ =
      prev !== undefined &&
      prev.length < bytes.length &&
      Buffer.compare(Buffer.from(prev.buffer, prev.byteOffset, prev.length), bytesView(bytes, prev.length)) === 0;
    if (!extends_) return [path, ownCopy(bytes, transfer)];
    return [path, ownCopy(bytes.subarray(prev.length), transfer), prev.length];
  }

  /** Receiver: the whole tile. Throws when a delta does not fit what was received before (a bug, never silent). */
  decode([path, bytes, prefix]: WireTile): Uint8Array {
    const position = tilePosition(path);
    let whole = bytes;
    if (prefix !== undefined) {
      const prev = this.last.get(position);
      if (!prev || prev.length !== prefix)
        throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path}: delta against ${prefix} bytes not held`);
      whole = Buffer.concat([prev, bytes]);
    }
    this.remember(position, path, whole);
    return whole;
  }

  /** A full tile never changes again: forget its position. */
  private remember(position: string, path: string, bytes: Uint8Array): void {
    if (position === path) this.last.delete(position);
    else this.last.set(position, bytes);
  }
}

function bytesView(bytes: Uint8Array, length: number): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, length);
}
