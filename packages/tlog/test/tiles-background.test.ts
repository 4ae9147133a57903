import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint, parseSignedNote, verifyCheckpoint } from '../src/checkpoint.js';
import { startTlogServer } from '../src/http/server.js';
import { TransparencyLog } from '../src/log.js';
import { CHECKPOINT_PATH, encodeEntryBundle, entriesPath, tilePath } from '../src/tiles/layout.js';
import { TileReader } from '../src/tiles/reader.js';
import { FsTileStore, type TileStore } from '../src/tiles/store.js';
import { prepareEntry } from '../src/types/index.js';
import { hashedRekord, hashedRekordV2Request, makeKeySigner, postJson, tempDir } from './helpers.js';

// Tiles are published in the background, grouped across batches: a Rekor v1 append is answered once its batch is
// durable (its tiles may follow), a Rekor v2 append only once the tiles covering it exist, and the tile checkpoint
// is never written before its tiles.

const key = makeKeySigner();

const v2Request = (artifact: string) => hashedRekordV2Request(key, artifact);

/** A directory tile store whose tile puts can be held (closed gate) or made to fail. */
class GatedStore implements TileStore {
  readonly inner: FsTileStore;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  held = 0;
  failWith: Error | undefined;
  constructor(root: string) {
    this.inner = new FsTileStore(root);
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }
  async put(path: string, bytes: Uint8Array): Promise<void> {
    if (this.gate) {
      this.held++;
      await this.gate;
    }
    if (this.failWith) throw this.failWith;
    await this.inner.put(path, bytes);
  }
  putCheckpoint(bytes: Uint8Array): Promise<void> {
    return this.inner.putCheckpoint(bytes);
  }
  get(path: string): Promise<Buffer | undefined> {
    return this.inner.get(path);
  }
}

// The worker thread runs the compiled worker, so these cases drive the built store (as verify-pool.test.ts does).
const DIST_STORE = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'tiles', 'store.js');

async function builtStore(root: string): Promise<FsTileStore> {
  if (!existsSync(DIST_STORE)) throw new Error(`${DIST_STORE} is missing: build first (npx tsc -b packages/tlog)`);
  const built = (await import(pathToFileURL(DIST_STORE).href)) as { FsTileStore: typeof FsTileStore };
  return new built.FsTileStore(root);
}

/** Bounded wait for a condition the test causes (no timing claim: it fails only if the condition never holds). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`never happened: ${what}`);
}

const storeSize = async (store: TileStore): Promise<number> => {
  const bytes = await store.get(CHECKPOINT_PATH);
  return bytes ? parseCheckpoint(parseSignedNote(bytes.toString('utf8')).note).size : 0;
};

describe('tiles published in the background', () => {
  it('answers a v1 append while its tiles are held; a v2 append waits for the tiles that cover it', async () => {
    const d = tempDir();
    const store = new GatedStore(join(d.path, 'tiles'));
    const server = await startTlogServer({ dataDir: d.path, tiles: store });
    try {
      store.hold();
      const v1 = await postJson(`${server.url}/api/v1/log/entries`, hashedRekord(key, 'v1 while held'));
      expect(v1.status).toBe(201);
      await until('the held tile write', () => store.held > 0);
      // The entry is logged and served by the v1 API; the C2SP checkpoint has not moved past its tiles.
      expect(server.log.size).toBe(1);
      expect(await storeSize(store)).toBe(0);

      let v2Answered = false;
      const v2 = postJson(`${server.url}/api/v2/log/entries`, v2Request('v2 while held')).then((r) => {
        v2Answered = true;
        return r;
      });
      await until('the v2 entry committed', () => server.log.size === 2);
      await new Promise((r) => setImmediate(r));
      expect(v2Answered).toBe(false);

      store.release();
      const res = await v2;
      expect(res.status).toBe(201);
      const tle = res.json as { inclusionProof: { treeSize: string; checkpoint: { envelope: string } } };
      const cp = verifyCheckpoint(tle.inclusionProof.checkpoint.envelope, server.publicKeyPem, server.logName);
      expect(cp.size).toBe(2);
      // What the v2 caller got is readable from the tiles alone; the tile checkpoint follows.
      const reader = new TileReader((p) => store.get(p));
      expect((await reader.rootAt(2)).equals(cp.rootHash)).toBe(true);
      await server.tiles!.flush();
      expect(await storeSize(store)).toBe(2);
    } finally {
      store.release();
      await server.close();
      d.remove();
    }
  });

  it('answers a v2 append only once its tiles are durable, not when they are merely readable', async () => {
    const d = tempDir();
    const inner = new FsTileStore(join(d.path, 'tiles'));
    let openGate: (() => void) | undefined;
    let readable = 0;
    // Readable (linked) at once, durable only when the gate opens: what a publication looks like mid-fsync.
    const store: TileStore = {
      put: (p, b) => inner.put(p, b),
      putCheckpoint: (b) => inner.putCheckpoint(b),
      get: (p) => inner.get(p),
      publish: async (tiles, checkpoint, options) => {
        await inner.publish(tiles, undefined, { ...(options?.replace ? { replace: true } : {}) });
        readable++;
        options?.onReadable?.();
        if (checkpoint) await new Promise<void>((resolve) => (openGate = resolve));
        if (checkpoint) await inner.putCheckpoint(checkpoint);
      },
    };
    const server = await startTlogServer({ dataDir: d.path, tiles: store });
    try {
      let answered = false;
      const v2 = postJson(`${server.url}/api/v2/log/entries`, v2Request('v2 durable')).then((r) => {
        answered = true;
        return r;
      });
      await until('the tiles readable', () => readable > 0 && openGate !== undefined);
      await new Promise((r) => setTimeout(r, 50));
      // Before session 8's change the answer went out here: a power loss now could leave the tiles it names unsynced.
      expect(answered).toBe(false);
      openGate!();
      expect((await v2).status).toBe(201);
    } finally {
      openGate?.();
      await server.close();
      d.remove();
    }
  });

  it.each([
    { name: 'the directory store (one publication in two durable rounds)', kind: 'dir' },
    { name: 'the built directory store, publishing on its worker thread', kind: 'thread' },
    { name: 'a store with put and putCheckpoint only', kind: 'plain' },
  ])(
    'never shows a checkpoint before the tiles it covers, under concurrent appends across tiles: $name',
    async ({ kind }) => {
      const plain = kind === 'plain';
      const d = tempDir();
      const dirStore =
        kind === 'thread' ? await builtStore(join(d.path, 'tiles')) : new FsTileStore(join(d.path, 'tiles'));
      const store: TileStore = plain
        ? {
            put: (p, b) => dirStore.put(p, b),
            putCheckpoint: (b) => dirStore.putCheckpoint(b),
            get: (p) => dirStore.get(p),
          }
        : dirStore;
      const server = await startTlogServer({ dataDir: d.path, tiles: store });
      const problems: string[] = [];
      let checks = 0;
      let done = false;
      // A reader of the tile directory alone, all along: every checkpoint it sees must be provable from the tiles.
      const reader = (async () => {
        while (!done) {
          const bytes = await dirStore.get(CHECKPOINT_PATH);
          const cp = bytes && parseCheckpoint(parseSignedNote(bytes.toString('utf8')).note);
          if (cp && cp.size > 0) {
            checks++;
            try {
              const root = await new TileReader((p) => dirStore.get(p)).rootAt(cp.size);
              if (!root.equals(cp.rootHash)) problems.push(`root differs at ${cp.size}`);
            } catch (err) {
              problems.push(`size ${cp.size}: ${(err as Error).message}`);
            }
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      try {
        const clients = Array.from({ length: 8 }, async (_, c) => {
          for (let i = 0; i < 40; i++) {
            const body = i % 2 ? v2Request(`v2 ${c}/${i}`) : hashedRekord(key, `v1 ${c}/${i}`);
            const res = await postJson(`${server.url}/api/v${i % 2 ? 2 : 1}/log/entries`, body);
            expect(res.status).toBe(201);
          }
        });
        await Promise.all(clients);
        await server.tiles!.flush();
        done = true;
        await reader;
        expect(server.log.size).toBe(320);
        expect(await storeSize(dirStore)).toBe(320);
        expect(checks).toBeGreaterThan(0);
        expect(problems).toEqual([]);
      } finally {
        done = true;
        await server.close();
        d.remove();
      }
    },
  );

  it('a failed tile publication: logged entries stay, v2 waiters and later appends get TLOG_PUBLISH_FAILED', async () => {
    const d = tempDir();
    const store = new GatedStore(join(d.path, 'tiles'));
    const server = await startTlogServer({ dataDir: d.path, tiles: store });
    try {
      store.hold();
      expect((await postJson(`${server.url}/api/v1/log/entries`, hashedRekord(key, 'logged'))).status).toBe(201);
      const v2 = postJson(`${server.url}/api/v2/log/entries`, v2Request('waits'));
      await until('the v2 entry committed', () => server.log.size === 2);
      store.failWith = new Error('disk full');
      store.release();
      const failed = await v2;
      expect(failed.status).toBe(500);
      await server.tiles!.flush();
      const later = await postJson(`${server.url}/api/v1/log/entries`, hashedRekord(key, 'after the failure'));
      expect(later.status).toBe(500);
      await expect(server.log.append(hashedRekord(key, 'refused'))).rejects.toMatchObject({
        code: 'TLOG_PUBLISH_FAILED',
      });
      // The C2SP checkpoint never moved past the tiles that exist.
      expect(await storeSize(store)).toBe(0);
      expect(server.log.size).toBeGreaterThanOrEqual(2);
    } finally {
      await server.close().catch(() => undefined);
      d.remove();
    }
  });

  it('a clean stop publishes the tiles of every answered append', async () => {
    const d = tempDir();
    const server = await startTlogServer({ dataDir: d.path });
    await Promise.all([0, 1, 2, 3, 4].map((i) => server.log.append(hashedRekord(key, `before stop ${i}`))));
    await server.close();
    const note = readFileSync(join(d.path, 'tiles', CHECKPOINT_PATH), 'utf8');
    expect(verifyCheckpoint(note, server.publicKeyPem, server.logName).size).toBe(5);
    d.remove();
  });

  /** A log whose tile checkpoint is at 3 while the log holds 5 entries (the tiles of 4 and 5 were never published). */
  async function logAheadOfTiles(path: string): Promise<void> {
    const first = await startTlogServer({ dataDir: path });
    await Promise.all([0, 1, 2].map((i) => first.log.append(hashedRekord(key, `durable ${i}`))));
    await first.close();
    const bare = await TransparencyLog.open({ dataDir: path });
    await bare.appendBatch([3, 4].map((i) => prepareEntry(hashedRekord(key, `unpublished ${i}`))));
    await bare.close();
  }

  it('catch-up rewrites a tile that no durable checkpoint names but a crash left with wrong bytes', async () => {
    const d = tempDir();
    try {
      await logAheadOfTiles(d.path);
      const tiles = join(d.path, 'tiles');
      // Linked before its data was synced, then power loss: the names survived, the bytes did not.
      writeFileSync(join(tiles, tilePath(0, 0, 5)), Buffer.alloc(5 * 32));
      writeFileSync(join(tiles, entriesPath(0, 5)), Buffer.alloc(7));
      const again = await startTlogServer({ dataDir: d.path });
      try {
        const stored = await again.log.getEntryRange(0, 5);
        expect(readFileSync(join(tiles, tilePath(0, 0, 5)))).toEqual(Buffer.concat(stored.map((e) => e.leafHash)));
        expect(readFileSync(join(tiles, entriesPath(0, 5)))).toEqual(encodeEntryBundle(stored.map((e) => e.body)));
        expect(await storeSize(again.tiles!.store)).toBe(5);
      } finally {
        await again.close();
      }
    } finally {
      d.remove();
    }
  });

  it('catch-up refuses to start when a tile the durable checkpoint names has wrong bytes', async () => {
    const d = tempDir();
    try {
      await logAheadOfTiles(d.path);
      writeFileSync(join(d.path, 'tiles', tilePath(0, 0, 3)), Buffer.alloc(3 * 32));
      await expect(startTlogServer({ dataDir: d.path })).rejects.toMatchObject({ code: 'TLOG_STORE_CORRUPT' });
    } finally {
      d.remove();
    }
  });

  it('the built directory store publishes on its worker thread: readable before done, errors come back typed', async () => {
    const d = tempDir();
    try {
      const store = await builtStore(d.path);
      const events: string[] = [];
      const tile = Buffer.alloc(3 * 32, 1);
      const note = Buffer.from('not parsed by the store\n');
      await store.publish([[tilePath(0, 0, 3), tile]], note, { onReadable: () => events.push('readable') });
      events.push('done');
      expect(events).toEqual(['readable', 'done']);
      expect(readFileSync(join(d.path, tilePath(0, 0, 3)))).toEqual(tile);
      expect(readFileSync(join(d.path, CHECKPOINT_PATH))).toEqual(note);
      // A tile is write-once: other bytes at the same path are refused, and the checkpoint does not move.
      await expect(
        store.publish([[tilePath(0, 0, 3), Buffer.alloc(3 * 32, 2)]], Buffer.from('other\n')),
      ).rejects.toMatchObject({ code: 'TLOG_STORE_CORRUPT', message: expect.stringMatching(/different contents/) });
      expect(readFileSync(join(d.path, CHECKPOINT_PATH))).toEqual(note);
    } finally {
      d.remove();
    }
  });

  it('the built server stops the publication thread of the tile directory it opened when it closes', async () => {
    const dist = join(dirname(DIST_STORE), '..', 'http', 'server.js');
    const built = (await import(pathToFileURL(dist).href)) as { startTlogServer: typeof startTlogServer };
    const threads = (): number => readdirSync('/proc/self/task').length;
    const cycle = async (i: number): Promise<void> => {
      const d = tempDir();
      const server = await built.startTlogServer({ dataDir: d.path });
      try {
        // A v2 append waits for its tiles: the publication thread has run by the time it is answered.
        expect((await postJson(`${server.url}/api/v2/log/entries`, v2Request(`thread ${i}`))).status).toBe(201);
      } finally {
        await server.close();
        d.remove();
      }
    };
    await cycle(0); // the thread pool and the platform's threads exist from here on
    const baseline = threads();
    for (let i = 1; i <= 3; i++) await cycle(i);
    // On the old code every closed server left its idle thread behind: baseline + 3.
    await until('the publication threads gone', () => threads() <= baseline);
  });

  it('a process that published through the built store exits by itself: the thread does not hold it open', () => {
    const d = tempDir();
    try {
      const script = [
        `const { FsTileStore } = await import(${JSON.stringify(pathToFileURL(DIST_STORE).href)});`,
        `const store = new FsTileStore(${JSON.stringify(join(d.path, 'tiles'))});`,
        `await store.publish([[${JSON.stringify(tilePath(0, 0, 1))}, Buffer.alloc(32)]], undefined);`,
        "console.log('published');",
      ].join('\n');
      const file = join(d.path, 'publish-once.mjs');
      writeFileSync(file, script);
      // The bound only catches a process that never exits (it hung before the fix).
      const run = spawnSync(process.execPath, [file], {
        encoding: 'utf8',
        timeout: 30_000,
        killSignal: 'SIGKILL',
      });
      expect(run.stdout.trim()).toBe('published');
      expect({ status: run.status, signal: run.signal }).toEqual({ status: 0, signal: null });
    } finally {
      d.remove();
    }
  });
});
