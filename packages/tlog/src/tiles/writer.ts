import { parseCheckpoint, parseSignedNote } from '../checkpoint.js';
import { TlogError } from '../errors.js';
import type { SignedCheckpoint } from '../log.js';
import type { NodeCoord } from '../merkle.js';
import { encodeEntryBundle, entriesPath, nodesAtTileLevel, tilePath, TILE_HEIGHT, TILE_WIDTH } from './layout.js';
import type { TileStore } from './store.js';

/**
 * What the tile writer needs from the log: the narrow hook agreed with the log's batching code. `onCommit` fires
 * after each durable batch commit (the batch's transaction has been fsynced), synchronously, with the new size.
 */
export interface TileSource {
  checkpoint(): SignedCheckpoint;
  /** Hashes of perfect subtrees (level, index) of the committed tree; level 0 = leaf hashes. One storage read. */
  nodeHashes(coords: readonly NodeCoord[]): Promise<Buffer[]>;
  /** The leaf data (canonicalized bodies) of entries [start, start+count). */
  leafData(start: number, count: number): Promise<Buffer[]>;
  onCommit(listener: (size: number) => void): () => void;
}

interface Waiter {
  size: number;
  resolve: (cp: SignedCheckpoint) => void;
  reject: (err: unknown) => void;
}

/**
 * Publishes the log as C2SP tlog-tiles after each commit: the tiles and entry bundles whose width changed, then
 * the signed checkpoint (so a reader never sees a checkpoint whose tiles are missing). Commits that arrive while
 * a publication is running are coalesced into the next one.
 */
export class TileWriter {
  private published: SignedCheckpoint | undefined;
  private running = false;
  private pending = false;
  private waiters: Waiter[] = [];
  private unsubscribe: (() => void) | undefined;
  private lastError: unknown;

  private constructor(
    private readonly source: TileSource,
    readonly store: TileStore,
    private publishedSize: number,
  ) {}

  /** Catches up with the log (tiles a crash may have left unwritten), then follows its commits. */
  static async start(source: TileSource, store: TileStore): Promise<TileWriter> {
    const stored = await store.get('checkpoint');
    let size = 0;
    if (stored) {
      size = parseCheckpoint(parseSignedNote(stored.toString('utf8')).note).size;
      const logSize = source.checkpoint().size;
      if (size > logSize)
        throw new TlogError(
          'TLOG_STORE_CORRUPT',
          `the tile checkpoint is at size ${size} but the log holds ${logSize} entries`,
        );
    }
    const writer = new TileWriter(source, store, size);
    await writer.publish();
    if (writer.lastError) throw writer.lastError;
    writer.unsubscribe = source.onCommit(() => writer.kick());
    return writer;
  }

  /** The last checkpoint written to the store. */
  get checkpoint(): SignedCheckpoint | undefined {
    return this.published;
  }

  /** Resolves with the first published checkpoint whose size is ≥ `size` (the entry at size−1 is readable). */
  waitFor(size: number): Promise<SignedCheckpoint> {
    if (this.published && this.published.size >= size) return Promise.resolve(this.published);
    return new Promise((resolve, reject) => {
      this.waiters.push({ size, resolve, reject });
      this.kick();
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }

  private kick(): void {
    if (this.running) {
      this.pending = true;
      return;
    }
    void this.publish();
  }

  private async publish(): Promise<void> {
    this.running = true;
    try {
      do {
        this.pending = false;
        const cp = this.source.checkpoint();
        try {
          await this.writeRange(this.publishedSize, cp.size);
          if (cp.size !== this.publishedSize || !this.published) await this.store.putCheckpoint(Buffer.from(cp.note));
          this.publishedSize = cp.size;
          this.published = cp;
          this.lastError = undefined;
          this.settle();
        } catch (err) {
          this.lastError = err;
          console.error('tlog: publishing tiles failed', err);
          for (const w of this.waiters.splice(0)) w.reject(err);
        }
      } while (this.pending);
    } finally {
      this.running = false;
    }
  }

  private settle(): void {
    const ready = this.waiters.filter((w) => w.size <= this.publishedSize);
    this.waiters = this.waiters.filter((w) => w.size > this.publishedSize);
    for (const w of ready) w.resolve(this.published!);
  }

  /** Writes every tile (and entry bundle) whose width differs between tree sizes `from` and `to`. */
  private async writeRange(from: number, to: number): Promise<void> {
    if (to === from && from > 0) return;
    for (let level = 0; nodesAtTileLevel(to, level) > 0 || level === 0; level++) {
      const before = nodesAtTileLevel(from, level);
      const after = nodesAtTileLevel(to, level);
      if (after === before) continue;
      for (let tile = Math.floor(before / TILE_WIDTH); tile * TILE_WIDTH < after; tile++) {
        const width = Math.min(TILE_WIDTH, after - tile * TILE_WIDTH);
        await this.store.put(tilePath(level, tile, width), await this.tileHashes(level, tile, width));
        if (level === 0) await this.store.put(entriesPath(tile, width), await this.entryBundle(tile, width));
      }
      if (after < TILE_WIDTH) break;
    }
  }

  private async tileHashes(level: number, tile: number, width: number): Promise<Buffer> {
    const coords = Array.from({ length: width }, (_, k) => ({
      level: level * TILE_HEIGHT,
      index: tile * TILE_WIDTH + k,
    }));
    return Buffer.concat(await this.source.nodeHashes(coords));
  }

  private async entryBundle(tile: number, width: number): Promise<Buffer> {
    return encodeEntryBundle(await this.source.leafData(tile * TILE_WIDTH, width));
  }
}
