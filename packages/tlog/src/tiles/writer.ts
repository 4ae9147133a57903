import { parseCheckpoint, parseSignedNote } from '../checkpoint.js';
import { TlogError } from '../errors.js';
import { Linger } from '../linger.js';
import type { CommittedBatch, SignedCheckpoint, TransparencyLog } from '../log.js';
import { hashChildren, hashLeaf, HASH_SIZE } from '../merkle.js';
import {
  CHECKPOINT_PATH,
  decodeEntryBundle,
  encodeBundleEntry,
  entriesPath,
  nodesAtTileLevel,
  tilePath,
  TILE_WIDTH,
} from './layout.js';
import { TileReader } from './reader.js';
import type { TileStore } from './store.js';

const CATCH_UP_CHUNK = 4096;
const DEFAULT_LINGER_MS = 100;

/** The root of a full tile: its 256 hashes folded up 8 levels (one hash of the next tile level). */
function tileRoot(hashes: readonly Buffer[]): Buffer {
  let level = [...hashes];
  while (level.length > 1) {
    const up: Buffer[] = [];
    for (let k = 0; k < level.length; k += 2) up.push(hashChildren(level[k]!, level[k + 1]!));
    level = up;
  }
  return level[0]!;
}

function split(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < bytes.length; o += HASH_SIZE) out.push(bytes.subarray(o, o + HASH_SIZE));
  return out;
}

/** A caller of `whenPublished(size)` waiting for the tiles of tree size `size` to be durable. */
interface Waiter {
  size: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Publishes the log as C2SP tlog-tiles from the log's committed batches: the tiles and entry bundles whose width
 * changed, then the signed checkpoint, so a reader never sees a checkpoint whose tiles are missing. Self-contained:
 * it keeps the right edge (one partial tile per level and the partial entry bundle) in memory, computes upper
 * levels from completed tiles, and needs nothing from the log's storage but the committed leaves.
 *
 * Two hooks for the log's `onBatchCommitted`: `onBatch` publishes before it resolves (the log then answers and
 * serves the batch only once its tiles exist); `enqueue` returns at once and publishes in the background, one
 * publication for every batch committed meanwhile, gathered up to `lingerMs` while no caller waits for tiles
 * (fewer files, bytes and fsyncs per entry, and the log's answers do not wait for them). Either way the tile checkpoint never precedes its tiles; with `enqueue`, callers that need
 * the tiles (Rekor v2 appends) wait on `whenPublished(size)`, which resolves once those tiles are durable (a crash
 * before that loses only tiles that catch-up rebuilds from the log's durable entries, and nobody was given them).
 */
export class TileWriter {
  private size = 0;
  /** Right-edge (incomplete) tile hashes per tile level; level 0 = leaf hashes. */
  private edge: Buffer[][] = [[]];
  /** The partial entry bundle, each entry already encoded (a publication only concatenates). */
  private edgeEntries: Buffer[] = [];
  private published: SignedCheckpoint | undefined;
  private ready = false;
  /** Past catch-up: a tile that exists with other bytes is an error then, not a crash's leftover to replace. */
  private live = false;
  /** Background mode: leaves committed but not yet published, the newest checkpoint, and the size they reach. */
  private pending: Array<{ hash: Buffer; body: Buffer }> = [];
  private pendingCheckpoint: SignedCheckpoint | undefined;
  private queuedSize = 0;
  /** Tree size whose tiles are durable (a v2 answer up to it may be given). */
  private publishedSize = 0;
  private running: Promise<void> | undefined;
  private failure: unknown;
  private waiters: Waiter[] = [];
  /** The wait for more batches before publishing (ended early when a v2 caller waits, or on a flush). */
  private readonly publishLinger = new Linger();
  private flushing = 0;
  /** Rekor v2 appends on their way (see `expectWaiter`): while any is, nothing lingers. */
  private expected = 0;
  private readonly lingerMs: number;

  /**
   * `lingerMs`: how long the background loop may gather committed batches while no caller waits for tiles (Rekor
   * v1 traffic) before it publishes them. Each publication rewrites the right-edge partial tiles and entry bundle
   * whole, O(tile width) bytes, so publishing every few entries writes ~20 KB of tiles per 1 KB entry; gathering
   * cuts that, and the tile checkpoint lags the log by at most this long (Tessera batches likewise). A Rekor v2
   * append (`whenPublished`) or a flush ends the wait at once. 0 = publish as soon as a batch is committed.
   */
  constructor(
    readonly store: TileStore,
    options: { lingerMs?: number } = {},
  ) {
    this.lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
  }

  /** The hook to pass as the log's `onBatchCommitted`: publishes the batch before it resolves. */
  readonly onBatch = async (batch: CommittedBatch): Promise<void> => {
    this.checkNext(batch, this.size);
    await this.publish(
      batch.leaves.map((l) => ({ hash: l.leafHash, body: l.body })),
      batch.checkpoint,
    );
    this.queuedSize = this.size;
    this.publishedSize = this.size;
    this.live = true;
  };

  /**
   * The background hook: queues the batch and returns; a single loop publishes everything queued at once. After a
   * failed publication it throws (the log then refuses appends, TLOG_PUBLISH_FAILED) and publishes nothing more.
   */
  readonly enqueue = (batch: CommittedBatch): void => {
    if (this.failure !== undefined) throw this.failedError();
    this.checkNext(batch, this.queuedSize);
    for (const l of batch.leaves) this.pending.push({ hash: l.leafHash, body: l.body });
    this.pendingCheckpoint = batch.checkpoint;
    this.queuedSize = batch.treeSize;
    this.running ??= this.runQueue();
  };

  /** Resolves once the tiles of tree size `size` are durable (at once if they are); rejects if publication failed. */
  whenPublished(size: number): Promise<void> {
    if (this.publishedSize >= size) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failedError());
    return new Promise((resolve, reject) => {
      this.waiters.push({ size, resolve, reject });
      this.publishLinger.wake();
    });
  }

  /**
   * A Rekor v2 append is on its way: until the returned release is called, publications start as soon as a batch
   * is committed. Called before the append is submitted, so its batch's publication never waits for the append's
   * own `whenPublished` (which comes only after the append's answer is built, a gap a lingering loop would add to
   * every v2 answer).
   */
  expectWaiter(): () => void {
    this.expected++;
    this.publishLinger.wake();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.expected--;
    };
  }

  /** Publishes everything queued now (no lingering) and resolves when done (or publication failed): before closing, and in tests. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      this.publishLinger.wake();
      while (this.running) await this.running;
    } finally {
      this.flushing--;
    }
  }

  /** Waits up to `lingerMs` for more batches, unless a caller needs the tiles now. */
  private linger(): Promise<void> | undefined {
    if (this.lingerMs === 0 || this.waiters.length > 0 || this.flushing > 0 || this.expected > 0) return undefined;
    return this.publishLinger.wait(this.lingerMs);
  }

  private checkNext(batch: CommittedBatch, expected: number): void {
    if (!this.ready) throw new TlogError('TLOG_STORE_CORRUPT', 'tile writer: a batch arrived before catch-up');
    const first = batch.treeSize - batch.leaves.length;
    if (first !== expected)
      throw new TlogError('TLOG_STORE_CORRUPT', `tile writer at size ${expected} got a batch starting at ${first}`);
  }

  private async runQueue(): Promise<void> {
    try {
      while (this.pending.length > 0 && this.failure === undefined) {
        await this.linger();
        const leaves = this.pending;
        const cp = this.pendingCheckpoint;
        this.pending = [];
        this.pendingCheckpoint = undefined;
        try {
          await this.publish(leaves, cp);
        } catch (err) {
          this.failure = err;
        }
        this.settleWaiters();
      }
    } finally {
      this.running = undefined;
    }
  }

  private settleWaiters(): void {
    const size = this.publishedSize;
    const waiting: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.size <= size) w.resolve();
      else if (this.failure !== undefined) w.reject(this.failedError());
      else waiting.push(w);
    }
    this.waiters = waiting;
  }

  private failedError(): TlogError {
    return new TlogError('TLOG_PUBLISH_FAILED', 'the log could not publish its tiles (entries are logged)', {
      cause: this.failure,
    });
  }

  /** The last checkpoint written to the store. */
  get checkpoint(): SignedCheckpoint | undefined {
    return this.published;
  }

  /**
   * Loads the right edge at the store's checkpoint, then writes what the log committed after it (a crash between
   * a batch's commit and its tiles), and checks the tiles' root equals the log's. Call before serving appends.
   */
  async catchUp(log: TransparencyLog): Promise<void> {
    const stored = await this.store.get(CHECKPOINT_PATH);
    const start = stored ? parseCheckpoint(parseSignedNote(stored.toString('utf8')).note).size : 0;
    if (start > log.size)
      throw new TlogError(
        'TLOG_STORE_CORRUPT',
        `the tile checkpoint is at size ${start} but the log holds ${log.size}`,
      );
    await this.loadEdge(start);
    // Before building on the stored tiles: they must be the log's (catch-up may replace only tiles beyond them).
    if (start > 0 && !(await new TileReader((p) => this.store.get(p)).rootAt(start)).equals(await log.rootAt(start)))
      throw new TlogError('TLOG_STORE_CORRUPT', `the tiles' root at size ${start} differs from the log's root`);
    this.size = start;
    this.ready = true;
    while (this.size < log.size) {
      const rows = await log.getEntryRange(this.size, Math.min(CATCH_UP_CHUNK, log.size - this.size));
      if (rows.length === 0) throw new TlogError('TLOG_STORE_CORRUPT', `tile writer: no entries at ${this.size}`);
      const last = this.size + rows.length === log.size;
      await this.publish(
        rows.map((r) => ({ hash: r.leafHash, body: r.body })),
        last ? log.checkpoint() : undefined,
      );
    }
    if (!this.published) {
      const cp = log.checkpoint();
      if (!stored) await this.store.putCheckpoint(Buffer.from(cp.note));
      this.published = cp;
    }
    this.queuedSize = this.size;
    this.publishedSize = this.size;
    this.live = true;
    const root = log.size === 0 ? undefined : await new TileReader((p) => this.store.get(p)).rootAt(log.size);
    if (root && !root.equals(log.checkpoint().rootHash))
      throw new TlogError('TLOG_STORE_CORRUPT', `the tiles' root at size ${log.size} differs from the log's root`);
  }

  private async loadEdge(size: number): Promise<void> {
    this.edge = [[]];
    for (let level = 0; nodesAtTileLevel(size, level) > 0; level++) {
      const width = nodesAtTileLevel(size, level) % TILE_WIDTH;
      const tile = Math.floor(nodesAtTileLevel(size, level) / TILE_WIDTH);
      this.edge[level] = width === 0 ? [] : split(await this.mustGet(tilePath(level, tile, width)));
      if (level === 0) {
        const bundle = width === 0 ? undefined : await this.mustGet(entriesPath(tile, width));
        this.edgeEntries = bundle ? decodeEntryBundle(bundle).map(encodeBundleEntry) : [];
      }
    }
  }

  private async mustGet(path: string): Promise<Buffer> {
    const bytes = await this.store.get(path);
    if (!bytes) throw new TlogError('TLOG_STORE_CORRUPT', `tile ${path} named by the tile checkpoint is missing`);
    return bytes;
  }

  /** Appends leaves to the edge, writes every tile whose width changed, then the checkpoint (if given). */
  private async publish(
    leaves: ReadonlyArray<{ hash: Buffer; body: Buffer }>,
    cp: SignedCheckpoint | undefined,
  ): Promise<void> {
    const from = this.size;
    const writes: Array<[string, Buffer]> = [];
    for (const leaf of leaves) {
      if (!hashLeaf(leaf.body).equals(leaf.hash))
        throw new TlogError('TLOG_STORE_CORRUPT', `entry ${this.size} does not match its leaf hash`);
      this.edgeEntries.push(encodeBundleEntry(leaf.body));
      this.push(0, leaf.hash, writes);
      this.size++;
    }
    // The partial right-edge tiles at the new size (full tiles were queued as they completed).
    for (let level = 0; level < this.edge.length; level++) {
      const width = this.edge[level]!.length;
      if (width === 0) continue;
      const tile = Math.floor(nodesAtTileLevel(this.size, level) / TILE_WIDTH);
      if (
        Math.floor(nodesAtTileLevel(from, level) / TILE_WIDTH) === tile &&
        nodesAtTileLevel(from, level) % TILE_WIDTH === width
      )
        continue; // unchanged since the last publication
      writes.push([tilePath(level, tile, width), Buffer.concat(this.edge[level]!)]);
      if (level === 0) writes.push([entriesPath(tile, width), Buffer.concat(this.edgeEntries)]);
    }
    if (cp && cp.size !== this.size)
      throw new TlogError('TLOG_STORE_CORRUPT', `checkpoint size ${cp.size} is not the tiled size ${this.size}`);
    const note = cp && Buffer.from(cp.note);
    const size = this.size;
    const onPublished = (): void => {
      if (this.publishedSize >= size) return;
      this.publishedSize = size;
      this.settleWaiters();
    };
    // Waiters (Rekor v2 answers) are settled once the publication is durable, not merely readable: an answer names
    // tiles, and after a power loss a linked but unsynced tile could hold other bytes than the ones promised.
    if (this.store.publish) {
      // Settled once the tiles are durable, before the checkpoint's rename and directory sync (one durable round
      // less on a v2 answer's path); the answer carries its own signed checkpoint, and readers need the tiles.
      await this.store.publish(writes, note, { replace: !this.live, onDurable: onPublished });
      onPublished();
    } else {
      // Concurrently: their fsyncs overlap; the checkpoint follows only once every tile is durable.
      await Promise.all(writes.map(([path, bytes]) => this.store.put(path, bytes)));
      onPublished();
      if (note) await this.store.putCheckpoint(note);
    }
    if (cp) this.published = cp;
  }

  /** Adds a hash to the tile level's edge; a completed tile is queued and its root carried to the next level. */
  private push(level: number, hash: Buffer, writes: Array<[string, Buffer]>): void {
    const edge = (this.edge[level] ??= []);
    edge.push(hash);
    if (edge.length < TILE_WIDTH) return;
    // Called while adding leaf `this.size`: the tree then has this.size + 1 leaves.
    const tile = Math.floor(nodesAtTileLevel(this.size + 1, level) / TILE_WIDTH) - 1;
    writes.push([tilePath(level, tile, TILE_WIDTH), Buffer.concat(edge)]);
    if (level === 0) {
      writes.push([entriesPath(tile, TILE_WIDTH), Buffer.concat(this.edgeEntries)]);
      this.edgeEntries = [];
    }
    this.edge[level] = [];
    this.push(level + 1, tileRoot(edge), writes);
  }
}
