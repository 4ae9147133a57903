import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyLogEntry } from '../src/entry.js';
import { DATABASE_FILE, TransparencyLog, type CommittedBatch } from '../src/log.js';
import { hashLeaf, MemoryNodeStore, verifyConsistencyProof, verifyInclusionProof } from '../src/merkle.js';
import { SIGNING_KEY_FILE } from '../src/signing-key.js';
import { SqliteLogStorage, type LogStorage, type NewEntryRow } from '../src/storage.js';
import { prepareEntry, type PreparedEntry } from '../src/types/index.js';
import { dsseEntry, hashedRekord, makeKeySigner, tempDir } from './helpers.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function openLog(
  dataDir: string,
  extra: Partial<Parameters<typeof TransparencyLog.open>[0]> = {},
): Promise<TransparencyLog> {
  const log = await TransparencyLog.open({ dataDir, logName: 'tlog.test', ...extra });
  cleanups.push(() => log.close());
  return log;
}

function newDir(): string {
  const d = tempDir();
  cleanups.push(d.remove);
  return d.path;
}

const signer = makeKeySigner();
const entries = (n: number, tag = 'e'): PreparedEntry[] =>
  Array.from({ length: n }, (_, i) => prepareEntry(dsseEntry([signer], `${tag} ${i}`)));

describe('TransparencyLog (in process)', () => {
  it('creates its key (0600) and tree ID once, and keeps them across restarts', async () => {
    const dir = newDir();
    const log = await openLog(dir);
    expect(statSync(join(dir, SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(log.treeId).toMatch(/^[1-9][0-9]*$/);
    expect(BigInt(log.treeId) < 2n ** 63n).toBe(true);
    expect(log.origin).toBe(`tlog.test - ${log.treeId}`);
    const { treeId, logId } = log;
    await log.append(hashedRekord(signer, 'one'));
    await log.close();
    const again = await openLog(dir);
    expect(again.treeId).toBe(treeId);
    expect(again.logId).toBe(logId);
    expect(again.size).toBe(1);
  });

  it('answers an append only after commit, with a SET, proof and checkpoint that verify', async () => {
    const log = await openLog(newDir());
    const entry = await log.append(hashedRekord(signer, 'artifact'));
    expect(entry.logIndex).toBe(0);
    expect(entry.verification?.inclusionProof?.treeSize).toBe(1);
    verifyLogEntry(entry, { publicKey: log.publicKeyPem, expectedKeyName: 'tlog.test' });
    expect((await log.getByUuid(entry.uuid))?.verification?.signedEntryTimestamp).toBe(
      entry.verification?.signedEntryTimestamp,
    );
  });

  it("signs a batch's SETs in parallel, each for its own entry, with an in-process key or a token's sync signer", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // A KeySigner as a PKCS#11 token provides it: synchronous sign only, no signAsync.
    const tokenLike = {
      spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
      sign: (data: Uint8Array) => sign('sha256', data, privateKey),
    };
    for (const extra of [{}, { signer: tokenLike }]) {
      const log = await openLog(newDir(), extra);
      const results = await Promise.all(entries(12, 'set').map((e) => log.submit(e)));
      for (const entry of results) verifyLogEntry(entry, { publicKey: log.publicKeyPem, expectedKeyName: 'tlog.test' });
      // Paired right: each stored entry serves the SET it was answered with.
      for (const entry of results)
        expect((await log.getByIndex(entry.logIndex))?.verification?.signedEntryTimestamp).toBe(
          entry.verification?.signedEntryTimestamp,
        );
    }
  });

  it('group-commits entries submitted in the same tick: dense indices, one shared checkpoint', async () => {
    const log = await openLog(newDir());
    const batch = entries(20);
    const results = await Promise.all(batch.map((e) => log.submit(e)));
    expect(results.map((r) => r.logIndex).sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    const checkpoints = new Set(results.map((r) => r.verification?.inclusionProof?.checkpoint));
    expect(checkpoints.size).toBe(1);
    for (const r of results) verifyLogEntry(r, { publicKey: log.publicKeyDer });
  });

  it('rejects duplicates (also within one batch) with TLOG_ENTRY_EXISTS naming the UUID', async () => {
    const log = await openLog(newDir());
    const [e] = entries(1);
    const settled = await Promise.allSettled([log.submit(e!), log.submit(e!)]);
    expect(settled[0]!.status).toBe('fulfilled');
    expect(settled[1]!.status).toBe('rejected');
    const err = (settled[1] as PromiseRejectedResult).reason;
    expect(err.code).toBe('TLOG_ENTRY_EXISTS');
    expect(err.details.uuid).toBe(e!.leafHash.toString('hex'));
    await expect(log.submit(e!)).rejects.toMatchObject({ code: 'TLOG_ENTRY_EXISTS', details: { logIndex: 0 } });
    expect(log.size).toBe(1);
  });

  it('serves roots and proofs from stored nodes that match an in-memory tree, for every size', async () => {
    const log = await openLog(newDir());
    const batch = entries(70);
    await log.appendBatch(batch.slice(0, 33));
    await log.appendBatch(batch.slice(33));
    const mem = new MemoryNodeStore();
    for (const e of batch) mem.appendLeaf(e.leafHash);
    for (let n = 1; n <= 70; n++) {
      expect((await log.rootAt(n)).equals(mem.tree.rootAt(n))).toBe(true);
      for (const m of [0, n >> 1, n - 1]) {
        expect(verifyInclusionProof(batch[m]!.leafHash, m, n, await log.inclusionProof(m, n), mem.tree.rootAt(n))).toBe(
          true,
        );
      }
      for (const m of [1, n >> 1, n - 1].filter((x) => x >= 1)) {
        expect(
          verifyConsistencyProof(m, n, mem.tree.rootAt(m), mem.tree.rootAt(n), await log.consistencyProof(m, n)),
        ).toBe(true);
      }
    }
    await expect(log.rootAt(71)).rejects.toThrow(/outside the log/);
    await expect(log.appendBatch([batch[0]!])).rejects.toThrow(/already exists/);
    expect(log.size).toBe(70);
  });

  it('looks entries up by index, 64-hex UUID and 80-hex entry ID, and searches the index', async () => {
    const log = await openLog(newDir());
    const a = await log.append(hashedRekord(signer, 'A'));
    const other = makeKeySigner();
    const b = await log.append(hashedRekord(other, 'A'));
    await log.append(hashedRekord(other, 'B'));
    expect((await log.getByIndex(1))?.uuid).toBe(b.uuid);
    expect((await log.getByUuid(a.uuid))?.logIndex).toBe(0);
    expect((await log.getByUuid(`${log.treeIdHex}${a.uuid}`))?.logIndex).toBe(0);
    expect(await log.getByUuid(`${'0'.repeat(16)}${a.uuid}`)).toBeUndefined();
    expect(await log.getByIndex(3)).toBeUndefined();
    expect(await log.getByIndex(-1)).toBeUndefined();
    const digestA = JSON.parse(Buffer.from(a.body, 'base64').toString()).spec.data.hash.value;
    const keyOther = prepareEntry(hashedRekord(other, 'x')).indexKeys.find((k) => k.startsWith('key:'))!;
    expect(await log.search([`sha256:${digestA}`])).toEqual([a.uuid, b.uuid]);
    expect(await log.search([`sha256:${digestA}`, keyOther], 'and')).toEqual([b.uuid]);
    expect(await log.search([`sha256:${digestA}`, keyOther], 'or')).toHaveLength(3);
  });

  it('refuses to open with another signing key than the one the log was created with', async () => {
    const dir = newDir();
    const log = await openLog(dir);
    await log.close();
    const keyPath = join(newDir(), 'other.pem');
    writeFileSync(
      keyPath,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
      { mode: 0o600 },
    );
    await expect(TransparencyLog.open({ dataDir: dir, signingKeyPath: keyPath })).rejects.toThrow(
      expect.objectContaining({ code: 'TLOG_KEY_MISMATCH' }),
    );
  });

  it('uses an operator-provided signing key (logID = SHA-256 of its DER SPKI) instead of generating one', async () => {
    const keyPath = join(newDir(), 'operator.pem');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(keyPath, privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
    const dir = newDir();
    const log = await openLog(dir, { signingKeyPath: keyPath });
    expect(log.logId).toBe(
      createHash('sha256')
        .update(publicKey.export({ type: 'spki', format: 'der' }))
        .digest('hex'),
    );
    expect(existsSync(join(dir, SIGNING_KEY_FILE))).toBe(false);
  });

  it('refuses a non-P-256 signing key', async () => {
    const keyPath = join(newDir(), 'rsa.pem');
    writeFileSync(
      keyPath,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
      { mode: 0o600 },
    );
    await expect(TransparencyLog.open({ dataDir: newDir(), signingKeyPath: keyPath })).rejects.toThrow(
      expect.objectContaining({ code: 'TLOG_SIGNING_KEY_INVALID' }),
    );
  });

  it('locks its database: a second writer on the same directory is refused', async () => {
    const dir = newDir();
    await openLog(dir);
    await expect(TransparencyLog.open({ dataDir: dir })).rejects.toThrow(
      expect.objectContaining({ code: 'TLOG_STORE_LOCKED' }),
    );
  });

  it('detects a database whose entries and recorded tree size disagree', async () => {
    const dir = newDir();
    const log = await openLog(dir);
    await log.appendBatch(entries(5));
    await log.close();
    const db = new Database(join(dir, DATABASE_FILE));
    db.prepare('DELETE FROM entries WHERE log_index = 2').run();
    db.close();
    await expect(TransparencyLog.open({ dataDir: dir })).rejects.toThrow(
      expect.objectContaining({ code: 'TLOG_STORE_CORRUPT' }),
    );
  });

  it('rejects invalid options and appends after close', async () => {
    await expect(TransparencyLog.open({ dataDir: newDir(), logName: 'has space' })).rejects.toThrow(/logName/);
    await expect(TransparencyLog.open({ dataDir: newDir(), maxBatch: 0 })).rejects.toThrow(/maxBatch/);
    const log = await openLog(newDir());
    await log.close();
    await expect(log.append(hashedRekord(signer, 'late'))).rejects.toMatchObject({ code: 'TLOG_CLOSED' });
  });

  it('commits every queued append before closing', async () => {
    const log = await openLog(newDir());
    const pending = entries(5).map((e) => log.submit(e));
    await log.close();
    const done = await Promise.all(pending);
    expect(done.map((d) => d.logIndex)).toEqual([0, 1, 2, 3, 4]);
  });

  it('with maxBatch 1 commits each entry separately (same results)', async () => {
    const log = await openLog(newDir(), { maxBatch: 1 });
    const results = await Promise.all(entries(10).map((e) => log.submit(e)));
    // Each entry is proven against the tree right after its own commit.
    expect(results.map((r) => r.verification?.inclusionProof?.treeSize)).toEqual(
      [...Array(10).keys()].map((i) => i + 1),
    );
    expect(results.map((r) => r.logIndex)).toEqual([...Array(10).keys()]);
    for (const r of results) verifyLogEntry(r, { publicKey: log.publicKeyPem });
    expect(hashLeaf(Buffer.from(results[3]!.body, 'base64')).toString('hex')).toBe(results[3]!.uuid);
  });
  it('calls onBatchCommitted once per durable batch, in order, before the batch is answered or served', async () => {
    const seen: CommittedBatch[] = [];
    const log: TransparencyLog = await openLog(newDir(), {
      onBatchCommitted: async (batch) => {
        // Not yet visible: the checkpoint still has the previous size.
        expect(log.size).toBe(batch.treeSize - batch.leaves.length);
        expect(log.checkpoint().size).toBe(batch.treeSize - batch.leaves.length);
        seen.push(batch);
      },
    });
    const first = await Promise.all(entries(3, 'a').map((e) => log.submit(e)));
    const second = await Promise.all(entries(2, 'b').map((e) => log.submit(e)));
    expect(seen.map((b) => [b.treeSize, b.leaves.map((l) => l.logIndex)])).toEqual([
      [3, [0, 1, 2]],
      [5, [3, 4]],
    ]);
    const mem = new MemoryNodeStore();
    for (const b of seen) {
      for (const l of b.leaves) {
        expect(hashLeaf(l.body).equals(l.leafHash)).toBe(true);
        mem.appendLeaf(l.leafHash);
      }
      expect(b.rootHash.equals(mem.root())).toBe(true);
      expect(b.checkpoint.size).toBe(b.treeSize);
    }
    expect(first[0]!.verification?.inclusionProof?.checkpoint).toBe(seen[0]!.checkpoint.note);
    expect(second[0]!.verification?.inclusionProof?.checkpoint).toBe(seen[1]!.checkpoint.note);
  });

  it('commits later batches while an earlier one publishes, then publishes them at once; none is answered or served before', async () => {
    const dir = newDir();
    // Storage that reports each durable batch (its new tree size).
    const inner = await SqliteLogStorage.open(join(dir, DATABASE_FILE));
    const durable = new Map<number, () => void>();
    const durableAt = (size: number) => new Promise<void>((r) => durable.set(size, r));
    let written = 0;
    const storage: LogStorage = Object.assign(Object.create(inner) as SqliteLogStorage, {
      writeBatch: async (rows: readonly NewEntryRow[], size: number) => {
        await inner.writeBatch(rows, size);
        written = size;
      },
      sync: async () => {
        const covered = written;
        await inner.sync();
        for (const [size, done] of durable) if (size <= covered) done();
      },
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: CommittedBatch[] = [];
    const log = await openLog(dir, {
      storage,
      onBatchCommitted: async (b) => {
        seen.push(b);
        if (seen.length === 1) await gate; // the first publication hangs until released
      },
    });
    let answered = 0;
    const submit = (e: PreparedEntry) => log.submit(e).then((r) => (answered++, r));
    const first = submit(entries(1, 'a')[0]!);
    await durableAt(1);
    const second = entries(2, 'b').map(submit);
    await durableAt(3); // durable while batch 1 is still publishing
    const third = entries(1, 'c').map(submit);
    await durableAt(4);
    expect(answered).toBe(0);
    expect(log.size).toBe(0);
    expect(await log.getByIndex(1)).toBeUndefined();
    release();
    const results = await Promise.all([first, ...second, ...third]);
    expect(seen.map((b) => [b.treeSize, b.leaves.map((l) => l.logIndex)])).toEqual([
      [1, [0]],
      [4, [1, 2, 3]],
    ]);
    expect(results.map((r) => r.logIndex)).toEqual([0, 1, 2, 3]);
    expect(results.map((r) => r.verification?.inclusionProof?.treeSize)).toEqual([1, 4, 4, 4]);
    for (const r of results) verifyLogEntry(r, { publicKey: log.publicKeyPem });
  });

  it('when onBatchCommitted fails: the batch stays logged, its callers get TLOG_PUBLISH_FAILED, appends stop', async () => {
    const dir = newDir();
    let fail = false;
    const log = await openLog(dir, {
      onBatchCommitted: () => {
        if (fail) throw new Error('disk full');
      },
    });
    await log.submit(entries(1, 'ok')[0]!);
    fail = true;
    await expect(log.submit(entries(1, 'x')[0]!)).rejects.toMatchObject({ code: 'TLOG_PUBLISH_FAILED' });
    expect(log.size).toBe(2);
    await expect(log.submit(entries(1, 'y')[0]!)).rejects.toMatchObject({ code: 'TLOG_PUBLISH_FAILED' });
    await log.close();
    const again = await openLog(dir);
    expect(again.size).toBe(2);
    expect((await again.getEntryRange(0, 10)).map((e) => e.logIndex)).toEqual([0, 1]);
  });
});

describe('pipelined group commit (a batch is written while the previous one syncs)', () => {
  /** SQLite storage whose syncs wait until released (or are failed), recording writes and syncs in order. */
  async function heldSyncs(dir: string) {
    const inner = await SqliteLogStorage.open(join(dir, DATABASE_FILE));
    const events: string[] = [];
    const waiters: Array<{ size: number; done: () => void }> = [];
    const held: Array<{ release: () => void; fail: (err: Error) => void }> = [];
    const syncStarted: Array<() => void> = [];
    let written = 0;
    let holding = true;
    const storage: LogStorage = Object.assign(Object.create(inner) as SqliteLogStorage, {
      writeBatch: async (rows: readonly NewEntryRow[], size: number) => {
        await inner.writeBatch(rows, size);
        written = size;
        events.push(`write ${size}`);
        for (const w of waiters.splice(0))
          if (w.size <= size) w.done();
          else waiters.push(w);
      },
      sync: async () => {
        const covers = written;
        events.push(`sync ${covers}`);
        syncStarted.shift()?.();
        if (holding) await new Promise<void>((release, fail) => held.push({ release, fail }));
        await inner.sync();
        events.push(`synced ${covers}`);
      },
    });
    return {
      storage,
      events,
      /** Resolves once a batch reaching tree size `size` is written. */
      writtenTo: (size: number) =>
        new Promise<void>((done) => (written >= size ? done() : waiters.push({ size, done }))),
      nextSync: () => new Promise<void>((r) => syncStarted.push(r)),
      held,
      stopHolding: () => (holding = false),
    };
  }

  it('answers a batch written during an earlier sync only after a sync started after its write', async () => {
    const dir = newDir();
    const s = await heldSyncs(dir);
    const log = await openLog(dir, { storage: s.storage, commitLingerMs: 0 });
    const answered: number[] = [];
    const submit = (e: PreparedEntry) => log.submit(e).then((r) => (answered.push(r.logIndex), r));
    const firstSync = s.nextSync();
    const a = submit(entries(1, 'a')[0]!);
    await firstSync; // a written, its sync held
    const b = entries(2, 'b').map(submit);
    await s.writtenTo(3); // b written while a's sync is still in flight
    expect(s.events).toEqual(['write 1', 'sync 1', 'write 3']);
    expect(answered).toEqual([]);
    expect(log.size).toBe(0);
    expect(await log.getByIndex(0)).toBeUndefined();
    const secondSync = s.nextSync();
    s.held.shift()!.release();
    expect((await a).verification?.inclusionProof?.treeSize).toBe(1);
    await secondSync; // the sync covering b started after a's returned, and is held
    expect(s.events).toEqual(['write 1', 'sync 1', 'write 3', 'synced 1', 'sync 3']);
    expect(answered).toEqual([0]);
    expect(log.size).toBe(1);
    expect(await log.getByIndex(1)).toBeUndefined();
    expect(await log.getByUuid(entries(2, 'b')[1]!.leafHash.toString('hex'))).toBeUndefined();
    expect(await log.search([entries(2, 'b')[0]!.indexKeys[0]!])).toEqual([]);
    s.held.shift()!.release();
    const rest = await Promise.all(b);
    expect(answered).toEqual([0, 1, 2]);
    expect(rest.map((r) => r.verification?.inclusionProof?.treeSize)).toEqual([3, 3]);
    for (const r of [await a, ...rest]) verifyLogEntry(r, { publicKey: log.publicKeyPem });
  });

  it('a failed sync rejects its batch and every later written one, and stops the log', async () => {
    const dir = newDir();
    const s = await heldSyncs(dir);
    const log = await openLog(dir, { storage: s.storage, commitLingerMs: 0 });
    const okSync = s.nextSync();
    const ok = log.submit(entries(1, 'ok')[0]!);
    await okSync;
    s.held.shift()!.release();
    await ok;
    const failing = s.nextSync();
    const a = log.submit(entries(1, 'a')[0]!);
    await failing;
    const b = entries(2, 'b').map((e) => log.submit(e));
    await s.writtenTo(4); // b written while a's sync runs
    s.held.shift()!.fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    for (const p of [a, ...b]) await expect(p).rejects.toMatchObject({ code: 'TLOG_STORE_FAILED' });
    expect(log.size).toBe(1);
    expect(await log.getByIndex(1)).toBeUndefined();
    expect(await log.getEntryRange(0, 10)).toHaveLength(1);
    await expect(log.submit(entries(1, 'later')[0]!)).rejects.toMatchObject({ code: 'TLOG_STORE_FAILED' });
    await expect(log.appendBatch(entries(1, 'bulk'))).rejects.toMatchObject({ code: 'TLOG_STORE_FAILED' });
    // Nothing synced for b (its durability is unknown either way) and nothing written after the failure.
    expect(s.events).toEqual(['write 1', 'sync 1', 'synced 1', 'write 2', 'sync 2', 'write 4']);
    await log.close();
    // Unacknowledged entries may or may not have survived; the acknowledged one did, and the log appends again.
    const again = await openLog(dir);
    expect((await again.getByIndex(0))?.logIndex).toBe(0);
    expect((await again.append(hashedRekord(signer, 'after restart'))).logIndex).toBe(again.size - 1);
  });
});
