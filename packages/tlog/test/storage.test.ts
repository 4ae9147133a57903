import { openSync, readSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashLeaf } from '../src/merkle.js';
import { SqliteLogStorage, type NewEntryRow } from '../src/storage.js';
import { tempDir } from './helpers.js';

/** The WAL header's checkpoint sequence number: SQLite adds one each time it restarts the WAL after a checkpoint. */
function walRestarts(dbPath: string): number {
  const fd = openSync(`${dbPath}-wal`, 'r');
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

function row(logIndex: number, body: Buffer): NewEntryRow {
  const leafHash = hashLeaf(body);
  return {
    logIndex,
    leafHash,
    body,
    integratedTime: 1,
    kind: 'dsse',
    apiVersion: '0.0.1',
    signedEntryTimestamp: Buffer.alloc(70, 1),
    indexKeys: [`sha256:${createHash('sha256').update(body).digest('hex')}`],
    nodes: [],
  };
}

describe('SQLite storage WAL checkpoints', () => {
  it('checkpoints once per 16 MiB of WAL written, not after every batch once the WAL file has grown that large', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'tlog.sqlite');
    const BATCHES = 250;
    const PER_BATCH = 2;
    // 64 KiB bodies: ~130 KiB of WAL per batch, ~32 MiB in all — two checkpoint sizes' worth.
    const bodyOf = (i: number) => Buffer.concat([Buffer.from(`entry ${i} `), Buffer.alloc(64 * 1024, i % 251)]);
    let store = await SqliteLogStorage.open(path);
    try {
      await store.initialize({ logId: 'log', treeId: '1' });
      for (let b = 0; b < BATCHES; b++) {
        const rows = Array.from({ length: PER_BATCH }, (_, k) => row(b * PER_BATCH + k, bodyOf(b * PER_BATCH + k)));
        await store.appendBatch(rows, (b + 1) * PER_BATCH);
      }
      // Each checkpoint lets the next batch restart the WAL. Checkpointing on the file's size (which SQLite never
      // shrinks) restarted it after nearly every batch past the first 16 MiB: about 120 times here.
      const restarts = walRestarts(path);
      expect(restarts).toBeGreaterThanOrEqual(1);
      expect(restarts).toBeLessThanOrEqual(3);
    } finally {
      await store.close();
    }
    store = await SqliteLogStorage.open(path);
    try {
      const size = BATCHES * PER_BATCH;
      expect(await store.treeSize()).toBe(size);
      expect((await store.getEntryByIndex(size - 1))?.body.equals(bodyOf(size - 1))).toBe(true);
      expect((await store.getEntryByIndex(0))?.body.equals(bodyOf(0))).toBe(true);
    } finally {
      await store.close();
      dir.remove();
    }
  });

  it('checkpoints at a configured WAL size', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'tlog.sqlite');
    const store = await SqliteLogStorage.open(path, { checkpointWalBytes: 256 * 1024 });
    try {
      await store.initialize({ logId: 'log', treeId: '1' });
      const body = (i: number) => Buffer.concat([Buffer.from(`small ${i} `), Buffer.alloc(8 * 1024, 7)]);
      for (let i = 0; i < 200; i++) await store.appendBatch([row(i, body(i))], i + 1);
      // ~200 batches of 3 to 4 pages (~3 MiB of WAL): about a dozen checkpoints of 256 KiB, not 200.
      const restarts = walRestarts(path);
      expect(restarts).toBeGreaterThanOrEqual(4);
      expect(restarts).toBeLessThanOrEqual(40);
      expect(await store.treeSize()).toBe(200);
    } finally {
      await store.close();
      dir.remove();
    }
  });

  it('refuses a checkpoint size that is not a positive integer', async () => {
    const dir = tempDir();
    try {
      await expect(
        SqliteLogStorage.open(join(dir.path, 'tlog.sqlite'), { checkpointWalBytes: 0 }),
      ).rejects.toMatchObject({ code: 'TLOG_INVALID_OPTION' });
    } finally {
      dir.remove();
    }
  });
});

describe('SQLite storage: writes overlapping a sync', () => {
  it('keeps checkpointing (and every row) when each sync ends with newer writes behind it', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'tlog.sqlite');
    let store = await SqliteLogStorage.open(path, { checkpointWalBytes: 256 * 1024 });
    const N = 300;
    const body = (i: number) => Buffer.concat([Buffer.from(`overlap ${i} `), Buffer.alloc(8 * 1024, 3)]);
    try {
      await store.initialize({ logId: 'log', treeId: '1' });
      // As the log does: one sync at a time, covering every write before it; writes go on while it runs.
      let syncing: Promise<void> | undefined;
      let syncs = 0;
      for (let i = 0; i < N; i++) {
        await store.writeBatch([row(i, body(i))], i + 1);
        syncing ??= store.sync().finally(() => ((syncing = undefined), syncs++));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await syncing;
      await store.sync();
      expect(syncs).toBeLessThan(N); // the syncs did overlap writes
      // ~4 MiB of WAL: checkpoints of 256 KiB kept happening (a checkpoint waiting for a moment without unsynced
      // writes would never have run), each restarting the WAL.
      expect(walRestarts(path)).toBeGreaterThanOrEqual(4);
    } finally {
      await store.close();
    }
    store = await SqliteLogStorage.open(path);
    try {
      expect(await store.treeSize()).toBe(N);
      for (const i of [0, N / 2, N - 1]) expect((await store.getEntryByIndex(i))?.body.equals(body(i))).toBe(true);
    } finally {
      await store.close();
      dir.remove();
    }
  });
});
