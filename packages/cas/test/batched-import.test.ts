/**
 * Batched import puts (ImportSession.putBatched, what the bundle importer uses): the durability order that makes
 * a crash at any point recoverable, observed at every fsync of a real store, and the checks the fast paths must
 * still make (a wrong digest, a blob already published, an abort).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FsBlobStore,
  MirrorStore,
  type BlobSource,
  type BlobStore,
  type ByteRange,
  type CommitStage,
  type PutExpectation,
  type PutOptions,
  type PutResult,
} from '../src/index.js';
import { chunks, genericFile, makeManifest, removeDir, sha256, tempDir, type FixtureFile } from './helpers.js';

const dirs: string[] = [];
const stores: MirrorStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

function files(n: number, tag: string): FixtureFile[] {
  return Array.from({ length: n }, (_, i) =>
    genericFile(`${tag}-${i}`, `${tag} ${i} ${randomBytes(200 + i * 37).toString('base64')}`),
  );
}

/**
 * Watches a store's fsyncs and commit stages and records every broken rule:
 *  - a blob's temp file is fsynced before its name exists (bytes durable before visible),
 *  - when a name appears (is linked), its file was fsynced and it is listed in the import journal on disk
 *    (journaled before visible, so recovery can remove it),
 *  - when the index transaction runs, every new blob's directory was fsynced after the blob was linked (the
 *    index never names a link a power cut could lose).
 */
class OrderWatch {
  readonly violations: string[] = [];
  readonly fileSynced = new Set<string>();
  readonly linked = new Set<string>();
  readonly durable = new Set<string>();
  /** Blobs the commit must find durable (all new blobs of the import). */
  expected = new Set<string>();
  fileSyncs = 0;
  dirSyncs = 0;
  store!: MirrorStore;
  constructor(
    private readonly dir: string,
    private readonly preexisting: Set<string>,
  ) {}

  onSync = (kind: 'file' | 'dir', path: string): void => {
    if (kind === 'file') {
      this.fileSyncs++;
      const sha = createHash('sha256').update(readFileSync(path)).digest('hex');
      if (existsSync((this.store.blobs as FsBlobStore).pathOf(sha)))
        this.violations.push(`${sha} was visible before its bytes were fsynced`);
      this.fileSynced.add(sha);
      return;
    }
    if (!/\/blobs\/sha256\/[0-9a-f]{2}$/.test(path)) return; // the store's own layout, made at open
    this.dirSyncs++;
    for (const name of readdirSync(path)) {
      if (this.preexisting.has(name)) continue;
      if (!this.linked.has(name)) this.violations.push(`${name} appeared without the store linking it`);
      this.durable.add(name);
    }
  };

  /** The moment a name appears: its bytes must be durable and its journal line on disk already. */
  onLink = (path: string): void => {
    const sha = basename(path);
    if (!this.fileSynced.has(sha)) this.violations.push(`${sha} was linked before its file was fsynced`);
    if (!this.journalLines().has(sha)) this.violations.push(`${sha} was linked before its journal line was durable`);
    this.linked.add(sha);
  };

  onCommitStage = (stage: CommitStage): void => {
    if (stage !== 'in-transaction') return;
    for (const sha of this.expected)
      if (!this.durable.has(sha)) this.violations.push(`the index named ${sha} before its directory was fsynced`);
  };

  private journalLines(): Set<string> {
    const staging = join(this.dir, 'staging');
    const lines = new Set<string>();
    for (const name of readdirSync(staging).filter((n) => n.endsWith('.journal')))
      for (const l of readFileSync(join(staging, name), 'utf8').split('\n')) if (l) lines.add(l);
    return lines;
  }
}

async function openWatched(dir: string, preexisting: Set<string> = new Set()): Promise<[MirrorStore, OrderWatch]> {
  const watch = new OrderWatch(dir, preexisting);
  const store = await MirrorStore.open(dir, {
    fs: { onSync: watch.onSync, onLink: watch.onLink },
    faultInjection: { onCommitStage: watch.onCommitStage },
  });
  watch.store = store;
  stores.push(store);
  return [store, watch];
}

async function listBlobs(store: MirrorStore): Promise<string[]> {
  const out: string[] = [];
  for await (const h of store.blobs.list()) out.push(h);
  return out;
}

describe('ImportSession.putBatched', () => {
  it('makes every blob durable and journaled before it is visible, and visible durably before the index names it', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const [store, watch] = await openWatched(dir);
    const fixture = files(1200, 'b'); // more than one batch (512 blobs)
    const { manifest, entries } = makeManifest({ sequence: 1, previous: null, files: fixture });
    const session = await store.beginImport();
    for (const f of fixture)
      await session.putBatched(chunks(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length });
    watch.expected = new Set(fixture.map((f) => sha256(f.bytes)));
    await session.commit({ manifest, signedBundles: null, entries });

    expect(watch.violations).toEqual([]);
    expect(watch.durable.size).toBe(1200);
    expect(store.head()?.sequence).toBe(1);
    expect(await listBlobs(store)).toEqual(fixture.map((f) => sha256(f.bytes)).sort());
    // Batched: one fsync per blob file, but directories are fsynced once per batch, not once per blob.
    expect(watch.fileSyncs).toBe(1200);
    expect(watch.dirSyncs).toBeLessThanOrEqual(3 * 256);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('refuses bytes that do not match the expected digest at once, leaving nothing behind', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const [store] = await openWatched(dir);
    const session = await store.beginImport();
    const good = Buffer.from('good bytes');
    await expect(
      session.putBatched(chunks('evil bytes'), { sha256: sha256(good), size: good.length }),
    ).rejects.toMatchObject({ code: 'CAS_DIGEST_MISMATCH' });
    await expect(
      session.putBatched(chunks('longer than said'), { sha256: sha256(good), size: 3 }),
    ).rejects.toMatchObject({ code: 'CAS_SIZE_MISMATCH' });
    await session.abort();
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(await listBlobs(store)).toEqual([]);
  });

  it('does not write a blob already published, but still refuses other bytes under its name', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = [genericFile('kept', 'kept bytes')];
    {
      const [store] = await openWatched(dir);
      const m = makeManifest({ sequence: 1, previous: null, files: first });
      const s = await store.beginImport();
      await s.putBatched(chunks('kept bytes'), { sha256: sha256('kept bytes'), size: 10 });
      await s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries });
      await store.close();
    }
    const [store, watch] = await openWatched(dir, new Set([sha256('kept bytes')]));
    const s = await store.beginImport();
    // Same name and size, other bytes: refused although nothing needs writing.
    await expect(s.putBatched(chunks('evil bytes'), { sha256: sha256('kept bytes'), size: 10 })).rejects.toMatchObject({
      code: 'CAS_DIGEST_MISMATCH',
    });
    await s.putBatched(chunks('kept bytes'), { sha256: sha256('kept bytes'), size: 10 });
    await s.putBatched(chunks('new bytes'), { sha256: sha256('new bytes'), size: 9 });
    const files2 = [genericFile('kept2', 'kept bytes'), genericFile('new', 'new bytes')];
    const m2 = makeManifest({ sequence: 2, previous: store.head()!.id, files: files2 });
    await s.commit({ manifest: m2.manifest, signedBundles: null, entries: m2.entries });
    expect(watch.fileSyncs).toBe(1); // only the new blob was written
    expect(watch.violations).toEqual([]);
    expect(store.head()?.sequence).toBe(2);
  });

  it('abort after batches were published removes every blob the import added and every staged temp file', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const [store] = await openWatched(dir);
    const session = await store.beginImport();
    for (const f of files(600, 'a'))
      await session.putBatched(chunks(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length });
    await session.abort();
    expect(await listBlobs(store)).toEqual([]);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(readdirSync(join(dir, 'staging')).map((n) => basename(n))).toEqual([]);
  });
});

/**
 * A backend without batches (as the S3 store is): the real filesystem store behind the BlobStore port with the
 * batch methods hidden, observing how many puts run at once; `failAt` makes that put fail after its bytes land.
 */
class UnbatchedStore implements BlobStore {
  inFlight = 0;
  maxInFlight = 0;
  puts = 0;
  constructor(
    private readonly inner: FsBlobStore,
    private readonly failAt = -1,
  ) {}
  has = (sha: string) => this.inner.has(sha);
  stat = (sha: string) => this.inner.stat(sha);
  openRead = (sha: string, range?: ByteRange) => this.inner.openRead(sha, range);
  openVerifiedRead = (sha: string, range?: ByteRange) => this.inner.openVerifiedRead(sha, range);
  verify = (sha: string, o?: { force?: boolean }) => this.inner.verify(sha, o);
  quarantine = (sha: string, reason: string) => this.inner.quarantine(sha, reason);
  isQuarantined = (sha: string) => this.inner.isQuarantined(sha);
  delete = (sha: string) => this.inner.delete(sha);
  list = () => this.inner.list();
  removePartialUploads = () => this.inner.removePartialUploads();
  async put(source: BlobSource, expected?: PutExpectation, options?: PutOptions): Promise<PutResult> {
    const n = this.puts++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r)); // let the session hand over more puts meanwhile
      const result = await this.inner.put(source, expected, options);
      if (n === this.failAt) throw new Error(`injected failure of put #${n} (after its blob was published)`);
      return result;
    } finally {
      this.inFlight--;
    }
  }
}

describe('ImportSession.putBatched on a backend without batches (S3-like)', () => {
  async function open(failAt?: number): Promise<[MirrorStore, UnbatchedStore]> {
    const dir = tempDir();
    dirs.push(dir);
    const blobs = new UnbatchedStore(await FsBlobStore.open(dir), failAt);
    const store = await MirrorStore.open(dir, { blobStore: blobs });
    stores.push(store);
    return [store, blobs];
  }

  it('puts several blobs at a time (bounded), journals each before it appears, and commits them all', async () => {
    const [store, blobs] = await open();
    const fixture = files(100, 'c');
    const { manifest, entries } = makeManifest({ sequence: 1, previous: null, files: fixture });
    const session = await store.beginImport();
    for (const f of fixture)
      await session.putBatched(chunks(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length });
    await session.commit({ manifest, signedBundles: null, entries });
    expect(blobs.maxInFlight).toBeGreaterThan(1);
    expect(blobs.maxInFlight).toBeLessThanOrEqual(16);
    expect(await listBlobs(store)).toEqual(fixture.map((f) => sha256(f.bytes)).sort());
  });

  it('refuses a wrong digest before any request, and a failed background put fails the commit with nothing left', async () => {
    const [store, blobs] = await open(30);
    const session = await store.beginImport();
    const good = Buffer.from('good');
    await expect(session.putBatched(chunks('evil'), { sha256: sha256(good), size: 4 })).rejects.toMatchObject({
      code: 'CAS_DIGEST_MISMATCH',
    });
    expect(blobs.puts).toBe(0);
    const fixture = files(60, 'd');
    const { manifest, entries } = makeManifest({ sequence: 1, previous: null, files: fixture });
    const put = async () => {
      for (const f of fixture)
        await session.putBatched(chunks(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length });
      await session.commit({ manifest, signedBundles: null, entries });
    };
    await expect(put()).rejects.toThrow(/injected failure of put #30/);
    expect(store.head()).toBeUndefined();
    await session.abort();
    expect(await listBlobs(store)).toEqual([]);
  });
});
