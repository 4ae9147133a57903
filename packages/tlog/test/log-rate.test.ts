import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hashLeaf, verifyInclusionProof } from '../src/merkle.js';
import { startTlogServer } from '../src/http/server.js';
import { verifyCheckpoint } from '../src/checkpoint.js';
import { TransparencyLog } from '../src/log.js';
import { FsTileStore, TileDeltas, type PublishOptions, type WireTile } from '../src/tiles/store.js';
import { TileWriter } from '../src/tiles/writer.js';
import { SqliteLogStorage, type LogStorage, type NewEntryRow } from '../src/storage.js';
import { prepareEntry } from '../src/types/index.js';
import { getJson, hashedRekord, hashedRekordV2Request, makeKeySigner, postJson, tempDir } from './helpers.js';

// What the faster log must not change: Rekor v2 entries carry no SET (none is signed for them), v1 entries keep
// theirs; tiles sent to the publication thread as deltas land byte-identical to tiles written whole.

const key = makeKeySigner();
// The publication thread runs the compiled worker: cases on it drive the built store, as tiles-background.test.ts does.
const DIST_STORE = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'tiles', 'store.js');

const v2Request = (artifact: string) => hashedRekordV2Request(key, artifact);

describe('signed entry timestamps', () => {
  it('a Rekor v2 entry read through the v1 API has no SET and a valid proof; a v1 entry keeps its SET', async () => {
    const dir = tempDir();
    const server = await startTlogServer({ dataDir: dir.path, tiles: false });
    try {
      const v2 = await postJson(`${server.url}/api/v2/log/entries`, v2Request('v2 no set'));
      expect(v2.status).toBe(201);
      const index = Number((v2.json as { logIndex: string }).logIndex);
      const read = await getJson(`${server.url}/api/v1/log/entries?logIndex=${index}`);
      expect(read.status).toBe(200);
      const entry = Object.values(read.json as Record<string, Record<string, unknown>>)[0]!;
      const verification = entry.verification as {
        signedEntryTimestamp?: string;
        inclusionProof: { hashes: string[]; checkpoint: string; logIndex: number };
      };
      expect(verification.signedEntryTimestamp).toBeUndefined();
      const cp = verifyCheckpoint(verification.inclusionProof.checkpoint, server.publicKeyPem, server.logName);
      const leaf = hashLeaf(Buffer.from(entry.body as string, 'base64'));
      const hashes = verification.inclusionProof.hashes.map((h) => Buffer.from(h, 'hex'));
      expect(verifyInclusionProof(leaf, index, cp.size, hashes, cp.rootHash)).toBe(true);

      const v1 = await postJson(`${server.url}/api/v1/log/entries`, hashedRekord(key, Buffer.from('v1 keeps its set')));
      expect(v1.status).toBe(201);
      const v1Entry = Object.values(v1.json as Record<string, { verification: { signedEntryTimestamp: string } }>)[0]!;
      expect(v1Entry.verification.signedEntryTimestamp.length).toBeGreaterThan(0);
    } finally {
      await server.close();
      dir.remove();
    }
  });
});

describe('tile deltas to the publication thread', () => {
  const bytes = (n: number, seed = 1): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed) & 0xff));

  it('sends only what a growing partial tile adds, the whole tile otherwise, and rebuilds the same bytes', () => {
    const sender = new TileDeltas();
    const receiver = new TileDeltas();
    const send = (path: string, b: Buffer): WireTile => {
      const transfer: ArrayBuffer[] = [];
      const wire = sender.encode(path, b, transfer);
      expect(transfer).toEqual([wire[1].buffer]); // an exact-size copy of its own, transferred
      expect(wire[1].buffer.byteLength).toBe(wire[1].byteLength);
      expect(Buffer.from(receiver.decode(wire)).equals(b)).toBe(true);
      return wire;
    };
    const full = bytes(300);
    expect(send('tile/entries/000.p/1', full.subarray(0, 10))).toHaveLength(2); // first: whole
    const grown = send('tile/entries/000.p/2', full.subarray(0, 25));
    expect(grown[2]).toBe(10);
    expect(grown[1].byteLength).toBe(15);
    expect(send('tile/entries/000', full)[2]).toBe(25); // the full tile is a delta too…
    expect(send('tile/entries/001.p/1', bytes(7))).toHaveLength(2); // …and then forgotten: a new position
    // Bytes that do not extend the last ones (a rewrite at catch-up) go whole.
    expect(send('tile/entries/001.p/2', bytes(20, 3))).toHaveLength(2);
    // Other levels are positions of their own.
    expect(send('tile/1/000.p/1', bytes(32))).toHaveLength(2);
  });

  it('refuses a delta against bytes it does not hold (never writes a tile it cannot rebuild)', () => {
    const receiver = new TileDeltas();
    expect(() => receiver.decode(['tile/0/000.p/2', new Uint8Array(32), 32])).toThrow(/delta against 32 bytes/);
  });

  it('tiles published on the thread (deltas) are byte-identical to tiles written inline, across full tiles', async () => {
    if (!existsSync(DIST_STORE)) throw new Error(`${DIST_STORE} is missing: build first (npx tsc -b packages/tlog)`);
    const built = (await import(pathToFileURL(DIST_STORE).href)) as { FsTileStore: typeof FsTileStore };
    const dir = tempDir();
    const threaded = new built.FsTileStore(join(dir.path, 'thread'));
    const inline = new FsTileStore(join(dir.path, 'inline'), { thread: false });
    const log = await TransparencyLog.open({ dataDir: join(dir.path, 'log') });
    try {
      const writers = [new TileWriter(threaded), new TileWriter(inline)];
      for (const w of writers) await w.catchUp(log);
      // Batches of 1..13 entries: partial tiles grow by a few entries at a time and complete tile 0 twice over.
      let n = 0;
      for (let batch = 1; n < 600; batch = (batch % 13) + 1) {
        const entries = Array.from({ length: batch }, () => prepareEntry(hashedRekord(key, Buffer.from(`e${n++}`))));
        await log.appendBatch(entries);
        const rows = await log.getEntryRange(log.size - batch, batch);
        for (const w of writers)
          await w.onBatch({
            treeSize: log.size,
            rootHash: log.checkpoint().rootHash,
            checkpoint: log.checkpoint(),
            leaves: rows.map((r) => ({ ...r })),
          });
      }
      const files = (root: string): Map<string, Buffer> => {
        const out = new Map<string, Buffer>();
        const walk = (d: string): void => {
          for (const name of readdirSync(d)) {
            const p = join(d, name);
            if (statSync(p).isDirectory()) walk(p);
            else out.set(relative(root, p), readFileSync(p));
          }
        };
        walk(root);
        return out;
      };
      const a = files(join(dir.path, 'thread'));
      const b = files(join(dir.path, 'inline'));
      expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
      expect(a.has('tile/entries/001')).toBe(true); // two full entry bundles, and partials after them
      for (const [path, bytes] of a) expect(bytes.equals(b.get(path)!), path).toBe(true);
    } finally {
      await log.close();
      await threaded.close();
      dir.remove();
    }
  });
});

/** A directory store that counts publications and the entries each one covers (its checkpoint's size). */
class CountingStore extends FsTileStore {
  readonly sizes: number[] = [];
  override async publish(
    tiles: ReadonlyArray<readonly [string, Uint8Array]>,
    checkpoint: Uint8Array | undefined,
    options?: { onReadable?: () => void; replace?: boolean },
  ): Promise<void> {
    if (checkpoint) this.sizes.push(Number(checkpoint.toString().split('\n')[1]));
    await super.publish(tiles, checkpoint, options);
  }
}

/** Bounded wait for a condition the test causes (no timing claim: it fails only if the condition never holds). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`never happened: ${what}`);
}

describe('tile publications gathered while no caller waits for tiles', () => {
  it('v1 appends linger into one publication; a v2 waiter or a flush publishes at once', async () => {
    const dir = tempDir();
    const store = new CountingStore(join(dir.path, 'tiles'), { thread: false });
    // An hour: the timer never ends a wait here, so every publication below was started by a waiter or a flush.
    const writer = new TileWriter(store, { lingerMs: 3_600_000 });
    const log = await TransparencyLog.open({ dataDir: join(dir.path, 'log'), onBatchCommitted: writer.enqueue });
    try {
      await writer.catchUp(log);
      const before = store.sizes.length;
      for (let i = 0; i < 5; i++) await log.append(hashedRekord(key, Buffer.from(`v1 ${i}`)));
      expect(log.size).toBe(5); // answered: v1 answers never wait for tiles
      expect(store.sizes.length).toBe(before); // …and nothing was published yet
      await writer.whenPublished(log.size); // a v2 caller: ends the wait
      expect(store.sizes.slice(before)).toEqual([5]); // one publication for all five batches
      for (let i = 0; i < 3; i++) await log.append(hashedRekord(key, Buffer.from(`more ${i}`)));
      await writer.flush();
      expect(store.sizes.slice(before)).toEqual([5, 8]);
    } finally {
      await log.close();
      await writer.flush();
      dir.remove();
    }
  });
});

describe('a Rekor v2 append on its way: its batch is published without lingering', () => {
  it('publishes a batch committed while a v2 append is expected, before any whenPublished', async () => {
    const dir = tempDir();
    const store = new CountingStore(join(dir.path, 'tiles'), { thread: false });
    const writer = new TileWriter(store, { lingerMs: 3_600_000 }); // only an expected v2 append ends a wait here
    const log = await TransparencyLog.open({ dataDir: join(dir.path, 'log'), onBatchCommitted: writer.enqueue });
    try {
      await writer.catchUp(log);
      const release = writer.expectWaiter();
      await log.append(hashedRekord(key, Buffer.from('v2 on its way')));
      await until('the batch published while a v2 append was expected', () => store.sizes.includes(1));
      release();
      release(); // idempotent: a second call must not let a later v2 append linger
      const again = writer.expectWaiter();
      await log.append(hashedRekord(key, Buffer.from('the next v2')));
      await until('the next batch published', () => store.sizes.includes(2));
      again();
    } finally {
      await log.close();
      await writer.flush();
      dir.remove();
    }
  });
});

describe('a Rekor v2 answer waits for its tiles, not for the tile checkpoint', () => {
  /** Publishes the tiles durably, reports it, then holds the checkpoint step until released. */
  class HeldCheckpointStore extends FsTileStore {
    private gate: Promise<void> = Promise.resolve();
    private open: () => void = () => {};
    hold(): void {
      this.gate = new Promise((r) => (this.open = r));
    }
    release(): void {
      this.open();
    }
    override async publish(
      tiles: ReadonlyArray<readonly [string, Uint8Array]>,
      checkpoint: Uint8Array | undefined,
      options: PublishOptions = {},
    ): Promise<void> {
      await super.publish(tiles, undefined, { ...(options.replace ? { replace: true } : {}) });
      options.onDurable?.();
      await this.gate;
      if (checkpoint) await this.putCheckpoint(checkpoint);
    }
  }

  it('answers once the tiles are durable, while the checkpoint rename is still pending', async () => {
    const dir = tempDir();
    const store = new HeldCheckpointStore(join(dir.path, 'tiles'), { thread: false });
    const server = await startTlogServer({ dataDir: dir.path, tiles: store });
    try {
      store.hold();
      let answered = false;
      const v2 = postJson(`${server.url}/api/v2/log/entries`, v2Request('before the checkpoint')).then((r) => {
        answered = true;
        return r;
      });
      await until('the v2 answer', () => answered);
      expect((await v2).status).toBe(201);
      // The tiles prove the answer's checkpoint already; the stored tile checkpoint has not moved.
      const stored = await store.get('checkpoint');
      expect(stored?.toString().split('\n')[1]).toBe('0');
      store.release();
      await server.tiles!.flush();
      expect((await store.get('checkpoint'))?.toString().split('\n')[1]).toBe('1');
    } finally {
      store.release();
      await server.close();
      dir.remove();
    }
  });

  it('the built store on its thread reports readable, then durable, then done', async () => {
    if (!existsSync(DIST_STORE)) throw new Error(`${DIST_STORE} is missing: build first (npx tsc -b packages/tlog)`);
    const built = (await import(pathToFileURL(DIST_STORE).href)) as { FsTileStore: typeof FsTileStore };
    const dir = tempDir();
    const store = new built.FsTileStore(dir.path);
    try {
      const events: string[] = [];
      await store.publish([['tile/0/000.p/1', Buffer.alloc(32, 1)]], Buffer.from('cp\n1\nroot\n'), {
        onReadable: () => events.push('readable'),
        onDurable: () => events.push('durable'),
      });
      events.push('done');
      expect(events).toEqual(['readable', 'durable', 'done']);
    } finally {
      await store.close();
      dir.remove();
    }
  });
});

describe('group commit under concurrent callers', () => {
  // Only the maxBatch wake-up can end a linger this long: the cases hold no timing assumption.
  const LONG_LINGER_MS = 600_000;
  const entry = (name: string) => prepareEntry(hashedRekord(key, Buffer.from(name)));

  /** SQLite storage recording each written batch's size; the first writeBatch waits until `release`. */
  async function heldStorage(path: string) {
    const inner = await SqliteLogStorage.open(path);
    const sizes: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const firstReached = new Promise<void>((resolve) => (reached = resolve));
    const storage = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'writeBatch')
          return async (rows: readonly NewEntryRow[], size: number) => {
            sizes.push(rows.length);
            if (sizes.length === 1) {
              reached();
              await gate;
            }
            return target.writeBatch(rows, size);
          };
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as LogStorage;
    return { storage, sizes, release, firstReached };
  }

  /** A log (with `options`) on heldStorage in a temporary directory, closed and removed after `body`. */
  async function withHeldLog(
    options: { maxBatch?: number },
    body: (log: TransparencyLog, held: Awaited<ReturnType<typeof heldStorage>>) => Promise<void>,
  ): Promise<void> {
    const dir = tempDir();
    const held = await heldStorage(join(dir.path, 'tlog.sqlite'));
    const log = await TransparencyLog.open({
      dataDir: dir.path,
      storage: held.storage,
      commitLingerMs: LONG_LINGER_MS,
      ...options,
    });
    try {
      await body(log, held);
    } finally {
      await log.close();
      dir.remove();
    }
  }

  /** Resolves after `n` event-loop turns. */
  const turns = (n: number) =>
    Array.from({ length: n }).reduce<Promise<void>>(
      (p) => p.then(() => new Promise((resolve) => setImmediate(resolve))),
      Promise.resolve(),
    );

  it('an entry queued behind a commit waits for the next caller and commits with it', async () => {
    await withHeldLog({ maxBatch: 2 }, async (log, held) => {
      const first = log.submit(entry('gather 1'));
      await held.firstReached;
      const second = log.submit(entry('gather 2')); // queued while the first batch commits
      held.release();
      await first; // answered: the committer has moved on to the second entry
      const third = log.submit(entry('gather 3'));
      await Promise.all([second, third]);
      // Without the linger the second entry was committed alone, before the third arrived: [1, 1, 1].
      expect(held.sizes).toEqual([1, 2]);
    });
  });

  it('a linger ends once as many entries are queued as the last batch held', async () => {
    // maxBatch (default) far above the batches: only the last batch's size can end these lingers before LONG_LINGER_MS.
    await withHeldLog({}, async (log, held) => {
      const first = log.submit(entry('target 1'));
      await held.firstReached;
      const queued = ['target 2', 'target 3', 'target 4'].map((n) => log.submit(entry(n))); // behind the commit
      held.release();
      await Promise.all([first, ...queued]); // 3 queued ≥ the last batch's 1 (and ≥ 2): committed without lingering
      const second = log.submit(entry('target 5'));
      await turns(5);
      const rest = ['target 6', 'target 7'].map((n) => log.submit(entry(n)));
      await Promise.all([second, ...rest]); // the lone 5th waited (linger) for the 6th and 7th: 3 = the last batch
      // The old linger (ended only by maxBatch) held the second batch for LONG_LINGER_MS: this case timed out.
      expect(held.sizes).toEqual([1, 3, 3]);
    });
  });

  it('a batch whose target is reached mid-turn still takes the entries that arrive later in the same turn', async () => {
    await withHeldLog({}, async (log, held) => {
      const first = log.submit(entry('turn 1'));
      await held.firstReached;
      const queued = ['turn 2', 'turn 3'].map((n) => log.submit(entry(n)));
      held.release();
      await Promise.all([first, ...queued]); // batches [1], [2]: callers are concurrent, the target is now 2
      const a = log.submit(entry('turn a')); // the committer lingers for a second entry
      await turns(5);
      // Two requests read in one event-loop turn, each its own callback (microtasks run in between, as between two
      // sockets' data events): the first reaches the target of 2, the second comes a callback later.
      let b!: Promise<unknown>;
      let c!: Promise<unknown>;
      setImmediate(() => (b = log.submit(entry('turn b'))));
      setImmediate(() => (c = log.submit(entry('turn c'))));
      await turns(1);
      await Promise.all([a, b]);
      // Cut at the target, mid-turn, the batch was [a, b] and c lingered alone behind it.
      expect(held.sizes).toEqual([1, 2, 3]);
      await c;
    });
  });

  it("a lone caller's entries commit at once, one after another", async () => {
    const dir = tempDir();
    const log = await TransparencyLog.open({ dataDir: dir.path, commitLingerMs: LONG_LINGER_MS });
    try {
      for (const name of ['alone 1', 'alone 2', 'alone 3']) await log.submit(entry(name));
      expect(log.size).toBe(3);
    } finally {
      await log.close();
      dir.remove();
    }
  });

  it('refuses a negative commit linger', async () => {
    const dir = tempDir();
    try {
      await expect(TransparencyLog.open({ dataDir: dir.path, commitLingerMs: -1 })).rejects.toMatchObject({
        code: 'TLOG_INVALID_OPTION',
      });
    } finally {
      dir.remove();
    }
  });
});
