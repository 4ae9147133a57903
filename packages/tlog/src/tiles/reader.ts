import { TlogError } from '../errors.js';
import { HASH_SIZE, hashChildren, hashLeaf, MerkleTree, type NodeReader } from '../merkle.js';
import {
  CHECKPOINT_PATH,
  decodeEntryBundle,
  entriesPath,
  nodesAtTileLevel,
  tilePath,
  TILE_HEIGHT,
  TILE_WIDTH,
} from './layout.js';

/** Fetches one tile-store object (a tile path or `checkpoint`); undefined when it does not exist. */
export type TileFetch = (path: string) => Promise<Buffer | undefined>;

const MAX_OBJECT_BYTES = 1024 * 1024;

/** A TileFetch over HTTP(S): `<baseUrl>/<path>` (e.g. `http://host/api/v2`, or a static server's root). */
export function httpTileFetch(baseUrl: string, timeoutMs = 30_000): TileFetch {
  const base = baseUrl.replace(/\/+$/, '');
  return async (path) => {
    let res: Response;
    try {
      res = await fetch(`${base}/${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new TlogError('TLOG_MONITOR_UNREACHABLE', `cannot reach ${base}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (res.status === 404) return undefined;
    if (res.status === 502 || res.status === 503 || res.status === 504)
      throw new TlogError('TLOG_MONITOR_UNREACHABLE', `${base}/${path} answered ${res.status}`);
    if (!res.ok) throw new TlogError('TLOG_MONITOR_BAD_RESPONSE', `${base}/${path} answered ${res.status}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_OBJECT_BYTES) throw new TlogError('TLOG_MONITOR_BAD_RESPONSE', `${path} is too large`);
    return bytes;
  };
}

class MissingTile extends Error {
  constructor(
    readonly level: number,
    readonly tile: number,
    readonly width: number,
  ) {
    super(`tile ${level}/${tile} not loaded`);
  }
}

/**
 * Proofs and roots computed from tiles alone (no log API), for one tree size: a `NodeReader` over the tiles of
 * that size, so the log's own RFC 6962 proof code runs on them. Tiles are fetched on demand and cached.
 */
export class TileReader {
  private readonly cache = new Map<string, Buffer>();
  /** Hashes of tile (level, index), at whatever width was fetched (a prefix serves every narrower size). */
  private readonly tiles = new Map<string, Buffer>();
  private latestSize: number | undefined;

  constructor(private readonly fetchObject: TileFetch) {}

  /** The current checkpoint text (unverified: callers verify its signature). */
  async checkpointText(): Promise<string> {
    const bytes = await this.fetchObject(CHECKPOINT_PATH);
    if (!bytes) throw new TlogError('TLOG_MONITOR_BAD_RESPONSE', 'the log publishes no checkpoint');
    const text = bytes.toString('utf8');
    const size = /^[^\n]*\n(\d{1,16})\n/.exec(text)?.[1];
    if (size !== undefined) this.latestSize = Number(size);
    return text;
  }

  rootAt(size: number): Promise<Buffer> {
    return this.run(size, (t) => t.rootAt(size));
  }

  inclusionProof(index: number, size: number): Promise<Buffer[]> {
    return this.run(size, (t) => t.inclusionProof(index, size));
  }

  consistencyProof(first: number, second: number): Promise<Buffer[]> {
    return this.run(second, (t) => t.consistencyProof(first, second));
  }

  /** The entries (leaf data) of level-0 tile `tile` in a tree of `size`, checked against that tile's hashes. */
  async entries(tile: number, size: number): Promise<Buffer[]> {
    const width = Math.min(TILE_WIDTH, size - tile * TILE_WIDTH);
    if (width < 1) throw new TlogError('TLOG_INVALID_TREE_SIZE', `tile ${tile} is beyond tree size ${size}`);
    const bundle = await this.load(entriesPath(tile, width));
    const entries = decodeEntryBundle(bundle);
    if (entries.length !== width)
      throw new TlogError(
        'TLOG_MONITOR_BAD_RESPONSE',
        `entry bundle ${tile} holds ${entries.length} entries, expected ${width}`,
      );
    const cachedHashes = this.tiles.get(`0/${tile}`);
    if (!cachedHashes || cachedHashes.length < width * HASH_SIZE) await this.loadTile(0, tile, width);
    const hashes = this.tiles.get(`0/${tile}`)!;
    entries.forEach((e, k) => {
      if (!hashLeaf(e).equals(hashes.subarray(k * HASH_SIZE, (k + 1) * HASH_SIZE)))
        throw new TlogError('TLOG_MONITOR_BAD_RESPONSE', `entry ${tile * TILE_WIDTH + k} does not match its leaf hash`);
    });
    return entries;
  }

  /** Runs a synchronous tree computation, fetching each missing tile and retrying. */
  private async run<T>(size: number, fn: (tree: MerkleTree) => T): Promise<T> {
    const tree = new MerkleTree(this.nodeReader(size));
    for (;;) {
      try {
        return fn(tree);
      } catch (err) {
        if (!(err instanceof MissingTile)) throw err;
        await this.loadTile(err.level, err.tile, err.width);
      }
    }
  }

  private async load(path: string): Promise<Buffer> {
    const cached = this.cache.get(path);
    if (cached) return cached;
    const bytes = await this.fetchObject(path);
    if (!bytes) throw new TlogError('TLOG_MONITOR_BAD_RESPONSE', `the log does not serve ${path}`);
    this.cache.set(path, bytes);
    return bytes;
  }

  /**
   * Fetches tile hashes at least `width` wide. Only the widths of published checkpoints exist, so for an older
   * size fall back to the full tile, then to the width at the latest checkpoint (tlog-tiles: use a prefix).
   */
  private async loadTile(level: number, tile: number, width: number): Promise<void> {
    const widths = [width, TILE_WIDTH];
    if (this.latestSize !== undefined)
      widths.push(Math.min(TILE_WIDTH, nodesAtTileLevel(this.latestSize, level) - tile * TILE_WIDTH));
    for (const w of widths) {
      if (w < width) continue;
      const bytes = await this.fetchObject(tilePath(level, tile, w));
      if (!bytes) continue;
      if (bytes.length !== w * HASH_SIZE)
        throw new TlogError(
          'TLOG_MONITOR_BAD_RESPONSE',
          `tile ${tilePath(level, tile, w)} is ${bytes.length} bytes, expected ${w * HASH_SIZE}`,
        );
      this.tiles.set(`${level}/${tile}`, bytes);
      return;
    }
    throw new TlogError(
      'TLOG_MONITOR_BAD_RESPONSE',
      `the log does not serve ${tilePath(level, tile, width)} or a wider one`,
    );
  }

  private nodeReader(size: number): NodeReader {
    return {
      getNode: (level: number, index: number): Buffer => {
        const tileLevel = Math.floor(level / TILE_HEIGHT);
        const r = level % TILE_HEIGHT;
        const first = index * 2 ** r;
        const tile = Math.floor(first / TILE_WIDTH);
        const width = Math.min(TILE_WIDTH, nodesAtTileLevel(size, tileLevel) - tile * TILE_WIDTH);
        const bytes = this.tiles.get(`${tileLevel}/${tile}`);
        if (!bytes || bytes.length < width * HASH_SIZE) throw new MissingTile(tileLevel, tile, width);
        const offset = first - tile * TILE_WIDTH;
        let level0: Buffer[] = [];
        for (let k = 0; k < 2 ** r; k++)
          level0.push(bytes.subarray((offset + k) * HASH_SIZE, (offset + k + 1) * HASH_SIZE));
        while (level0.length > 1) {
          const up: Buffer[] = [];
          for (let k = 0; k < level0.length; k += 2) up.push(hashChildren(level0[k]!, level0[k + 1]!));
          level0 = up;
        }
        return level0[0]!;
      },
    };
  }
}
