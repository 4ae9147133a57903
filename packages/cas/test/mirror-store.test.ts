import { readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, MirrorStore, fsck, type CasErrorCode, type CommitStage } from '../src/index.js';
import {
  chunks,
  genericFile,
  makeManifest,
  readAll,
  removeDir,
  sha1,
  sha256,
  sha512,
  tempDir,
  type FixtureFile,
} from './helpers.js';

function expectCode(code: CasErrorCode) {
  return expect.objectContaining({ code });
}

async function publish(
  store: MirrorStore,
  files: FixtureFile[],
  sequence: number,
  previous: string | null,
  allowGap = false,
) {
  const { manifest, entries } = makeManifest({ sequence, previous, files });
  const session = await store.beginImport();
  for (const f of files) await session.put(chunks(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length });
  const record = await session.commit({
    manifest,
    signedBundles: { 'manifest.sigstore.json': { test: true } },
    entries,
    allowGap,
  });
  return { record, manifest };
}

async function listBlobs(store: MirrorStore): Promise<string[]> {
  const out: string[] = [];
  for await (const h of store.blobs.list()) out.push(h);
  return out;
}

describe('MirrorStore snapshots', () => {
  let dir: string;
  let store: MirrorStore;
  const stores: MirrorStore[] = [];
  beforeEach(async () => {
    dir = tempDir();
    store = await MirrorStore.open(dir);
    stores.push(store);
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    removeDir(dir);
  });

  it('publishes a first snapshot: head, entries, blobs and the audit copy of the manifest', async () => {
    expect(store.head()).toBeUndefined();
    const a = genericFile('a.txt', 'alpha');
    const { record, manifest } = await publish(store, [a], 1, null);
    expect(record).toMatchObject({ id: manifest.snapshot.id, sequence: 1, previous: null, gapAllowed: false });
    expect(store.head()).toMatchObject({ id: manifest.snapshot.id, sequence: 1 });
    const entries = store.index.findEntries({ ecosystem: 'generic', name: 'a.txt' });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      sha256: sha256('alpha'),
      size: 5,
      addedIn: 1,
      addedAt: manifest.snapshot.createdAt,
    });
    expect(store.index.findBlobByDigest('sha256', sha256('alpha'))?.size).toBe(5);
    expect(store.index.findBlobByDigest('sha512', sha512('alpha'))?.sha256).toBe(sha256('alpha'));
    expect(store.index.findBlobByDigest('sha1', sha1('alpha'))?.sha256).toBe(sha256('alpha'));
    expect(store.index.findBlobByDigest('sha256', sha256('nope'))).toBeUndefined();
    const detail = store.index.getSnapshot(manifest.snapshot.id);
    expect(detail?.manifest).toEqual(manifest);
    expect(detail?.signedBundles).toEqual({ 'manifest.sigstore.json': { test: true } });
    const read = await store.openBlob(sha256('alpha'));
    expect((await readAll(read.stream)).toString()).toBe('alpha');
  });

  it('enforces sequence/previous: replay, rollback and gap are typed errors; allow-gap is explicit', async () => {
    const s1 = await publish(store, [genericFile('a', 'a')], 1, null);
    const s2 = await publish(store, [genericFile('b', 'b')], 2, s1.manifest.snapshot.id);

    // Replay of the same snapshot.
    const replay = await store.beginImport();
    await expect(
      replay.commit({ manifest: s2.manifest, signedBundles: null, entries: s2.manifest.entries ?? [] }),
    ).rejects.toEqual(expectCode('SNAPSHOT_REPLAY'));
    await replay.abort();

    // Rollback: an older sequence (a different snapshot that claims to extend s1).
    const old = makeManifest({ sequence: 2, previous: s1.manifest.snapshot.id, files: [genericFile('c', 'c')] });
    expect(() => store.checkSnapshotOrder(old.manifest.snapshot)).toThrow(
      expect.objectContaining({ code: 'SNAPSHOT_ROLLBACK' }),
    );
    const rb = await store.beginImport();
    await rb.put(chunks('c'));
    await expect(rb.commit({ manifest: old.manifest, signedBundles: null, entries: old.entries })).rejects.toEqual(
      expectCode('SNAPSHOT_ROLLBACK'),
    );
    await rb.abort();

    // Gap: sequence 4 extends a snapshot we never saw.
    const gap = makeManifest({ sequence: 4, previous: `sha256:${'0'.repeat(64)}`, files: [genericFile('d', 'd')] });
    const g = await store.beginImport();
    await g.put(chunks('d'));
    await expect(g.commit({ manifest: gap.manifest, signedBundles: null, entries: gap.entries })).rejects.toEqual(
      expectCode('SNAPSHOT_GAP'),
    );
    expect(store.head()?.sequence).toBe(2);
    // The session stays open after a refused commit; the operator may allow the gap explicitly.
    const rec = await g.commit({ manifest: gap.manifest, signedBundles: null, entries: gap.entries, allowGap: true });
    expect(rec).toMatchObject({ sequence: 4, gapAllowed: true });
    expect(store.head()?.id).toBe(gap.manifest.snapshot.id);
    expect(store.index.listSnapshots().map((s) => s.sequence)).toEqual([1, 2, 4]);
    // Entries of every snapshot up to head stay visible.
    expect(store.index.listNames('generic')).toEqual(['a', 'b', 'd']);
  });

  it('refuses a first snapshot that extends something unless the gap is allowed', async () => {
    const m = makeManifest({ sequence: 5, previous: `sha256:${'1'.repeat(64)}`, files: [genericFile('x', 'x')] });
    const s = await store.beginImport();
    await s.put(chunks('x'));
    await expect(s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries })).rejects.toEqual(
      expectCode('SNAPSHOT_GAP'),
    );
    await expect(
      s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries, allowGap: true }),
    ).resolves.toMatchObject({ sequence: 5 });
  });

  it('refuses a sequence that is not newer even when previous matches', async () => {
    const s1 = await publish(store, [genericFile('a', 'a')], 3, null);
    const m = makeManifest({ sequence: 3, previous: s1.manifest.snapshot.id, files: [] });
    const s = await store.beginImport();
    await expect(s.commit({ manifest: m.manifest, signedBundles: null, entries: [] })).rejects.toEqual(
      expectCode('SNAPSHOT_ROLLBACK'),
    );
    await s.abort();
  });

  it('refuses malformed snapshots and entries', async () => {
    const m = makeManifest({ sequence: 1, previous: null, files: [genericFile('a', 'a')] });
    const s = await store.beginImport();
    await s.put(chunks('a'));
    const bad = (patch: Record<string, unknown>) => ({ ...m.manifest, snapshot: { ...m.manifest.snapshot, ...patch } });
    await expect(
      s.commit({ manifest: bad({ id: 'sha256:xyz' }), signedBundles: null, entries: m.entries }),
    ).rejects.toEqual(expectCode('SNAPSHOT_INVALID'));
    await expect(s.commit({ manifest: bad({ sequence: 0 }), signedBundles: null, entries: m.entries })).rejects.toEqual(
      expectCode('SNAPSHOT_INVALID'),
    );
    await expect(
      s.commit({ manifest: bad({ createdAt: 'yesterday' }), signedBundles: null, entries: m.entries }),
    ).rejects.toEqual(expectCode('SNAPSHOT_INVALID'));
    const entry = m.entries[0]!;
    for (const e of [
      { ...entry, ecosystem: 'maven' },
      { ...entry, filename: '../x' },
      { ...entry, name: 'a\u0000b' },
      { ...entry, digests: { sha256: 'ABC' } },
      { ...entry, ecosystem: 'pypi', name: 'Not_Normalized', version: '1.0' },
      { ...entry, ecosystem: 'npm', version: null },
      { ...entry, size: -1 },
    ]) {
      await expect(s.commit({ manifest: m.manifest, signedBundles: null, entries: [e] })).rejects.toEqual(
        expectCode('INDEX_INVALID_INPUT'),
      );
    }
    expect(store.head()).toBeUndefined();
    await s.abort();
  });

  it('refuses a snapshot that references a blob that is neither imported nor stored, or has the wrong size', async () => {
    const a = genericFile('a', 'aaa');
    const m = makeManifest({ sequence: 1, previous: null, files: [a] });
    const s = await store.beginImport();
    await expect(s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries })).rejects.toEqual(
      expectCode('IMPORT_BLOB_MISSING'),
    );
    await s.put(chunks('aaa'));
    const wrongSize = { ...m.manifest, blobs: [{ sha256: sha256('aaa'), size: 4 }] };
    await expect(s.commit({ manifest: wrongSize, signedBundles: null, entries: [] })).rejects.toEqual(
      expectCode('INDEX_INVALID_INPUT'),
    );
    await expect(
      s.commit({ manifest: m.manifest, signedBundles: null, entries: [{ ...m.entries[0]!, size: 2 }] }),
    ).rejects.toEqual(expectCode('INDEX_INVALID_INPUT'));
    await expect(s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries })).resolves.toMatchObject({
      sequence: 1,
    });
  });

  it('lets a later snapshot reference blobs already in the store (incremental bundles)', async () => {
    const s1 = await publish(store, [genericFile('a', 'shared')], 1, null);
    const m2 = makeManifest({ sequence: 2, previous: s1.manifest.snapshot.id, files: [genericFile('b', 'shared')] });
    const s = await store.beginImport();
    const rec = await s.commit({ manifest: { ...m2.manifest, blobs: [] }, signedBundles: null, entries: m2.entries });
    expect(rec.sequence).toBe(2);
    expect(store.index.findEntries({ ecosystem: 'generic', name: 'b' })[0]?.sha256).toBe(sha256('shared'));
  });

  it('keeps npm/PyPI files immutable: same name+version+file with other bytes is a conflict, re-listing is a no-op', async () => {
    const pkg = (content: string): FixtureFile => ({
      bytes: Buffer.from(content),
      entry: { ecosystem: 'npm', name: 'left-pad', version: '1.0.0', filename: 'left-pad-1.0.0.tgz', metadata: {} },
    });
    const s1 = await publish(store, [pkg('v1')], 1, null);
    const again = await publish(store, [pkg('v1')], 2, s1.manifest.snapshot.id);
    expect(store.index.findEntries({ ecosystem: 'npm', name: 'left-pad' })).toHaveLength(1);
    const m3 = makeManifest({ sequence: 3, previous: again.manifest.snapshot.id, files: [pkg('evil')] });
    const s = await store.beginImport();
    await s.put(chunks('evil'));
    await expect(s.commit({ manifest: m3.manifest, signedBundles: null, entries: m3.entries })).rejects.toEqual(
      expectCode('IMPORT_ENTRY_CONFLICT'),
    );
    await s.abort();
    expect(store.head()?.sequence).toBe(2);
    expect(await store.blobs.has(sha256('evil'))).toBe(false);
  });

  it('atomic publish: a reader sees the old head while blobs are staged and while the transaction is open', async () => {
    const s1 = await publish(store, [genericFile('old', 'old bytes')], 1, null);
    const reader = await MirrorStore.open(dir);
    stores.push(reader);
    const seenInTransaction: unknown[] = [];
    const writer = await MirrorStore.open(dir, {
      faultInjection: {
        onCommitStage: (stage: CommitStage) => {
          if (stage === 'in-transaction') {
            seenInTransaction.push(
              reader.head()?.sequence,
              reader.index.findEntries({ ecosystem: 'generic', name: 'new' }).length,
            );
          }
        },
      },
    });
    stores.push(writer);
    const m2 = makeManifest({
      sequence: 2,
      previous: s1.manifest.snapshot.id,
      files: [genericFile('new', 'new bytes')],
    });
    const session = await writer.beginImport();
    await session.put(chunks('new bytes'), { sha256: sha256('new bytes') });
    // Staged: in the CAS, but invisible through the index.
    expect(await reader.blobs.has(sha256('new bytes'))).toBe(true);
    expect(reader.index.getVisibleBlob(sha256('new bytes'))).toBeUndefined();
    expect(reader.head()?.sequence).toBe(1);
    expect(reader.index.findEntries({ ecosystem: 'generic', name: 'new' })).toEqual([]);
    // Opening a store meanwhile must not garbage-collect the live import's blobs.
    const third = await MirrorStore.open(dir);
    stores.push(third);
    expect(await reader.blobs.has(sha256('new bytes'))).toBe(true);
    await expect(third.beginImport()).rejects.toEqual(expectCode('IMPORT_LOCKED'));
    await session.commit({ manifest: m2.manifest, signedBundles: null, entries: m2.entries });
    expect(seenInTransaction).toEqual([1, 0]);
    expect(reader.head()?.sequence).toBe(2);
    expect(reader.index.findEntries({ ecosystem: 'generic', name: 'new' })).toHaveLength(1);
    expect(reader.index.getVisibleBlob(sha256('new bytes'))).toBeDefined();
  });

  it('abort removes what the import added and keeps blobs that were already there', async () => {
    await publish(store, [genericFile('keep', 'kept')], 1, null);
    const s = await store.beginImport();
    expect((await s.put(chunks('kept'))).created).toBe(false);
    await s.put(chunks('dropped'));
    await s.abort();
    await s.abort();
    expect(await listBlobs(store)).toEqual([sha256('kept')]);
    await expect(s.put(chunks('late'))).rejects.toEqual(expectCode('IMPORT_CLOSED'));
    expect(readdirSync(join(dir, 'staging'))).toEqual([]);
    // The slot is free again.
    await (await store.beginImport()).abort();
  });

  it('commit drops blobs that were put but are referenced by nothing', async () => {
    const m = makeManifest({ sequence: 1, previous: null, files: [genericFile('a', 'referenced')] });
    const s = await store.beginImport();
    await s.put(chunks('referenced'));
    await s.put(chunks('stray'));
    await s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries });
    expect(await listBlobs(store)).toEqual([sha256('referenced')]);
    expect((await fsck(store)).clean).toBe(true);
  });

  it('a corrupt blob is refused on read, quarantined in the CAS and marked in the index', async () => {
    await publish(store, [genericFile('a', 'precious')], 1, null);
    const h = sha256('precious');
    const path = (store.blobs as FsBlobStore).pathOf(h);
    // Replace the file with other bytes of the same size.
    unlinkSync(path);
    writeFileSync(path, 'precioux', { mode: 0o444 });
    await expect(store.openBlob(h)).rejects.toEqual(expectCode('CAS_CORRUPT'));
    expect(store.index.getBlob(h)?.state).toBe('quarantined');
    await expect(store.openBlob(h)).rejects.toEqual(expectCode('CAS_QUARANTINED'));
    // A later import with the right bytes heals it.
    const s = await store.beginImport();
    expect((await s.put(chunks('precious'), { sha256: h })).created).toBe(true);
    const m2 = makeManifest({ sequence: 2, previous: store.head()!.id, files: [genericFile('a', 'precious')] });
    await s.commit({ manifest: m2.manifest, signedBundles: null, entries: m2.entries });
    expect(store.index.getBlob(h)?.state).toBe('ok');
    expect((await readAll((await store.openBlob(h)).stream)).toString()).toBe('precious');
  });

  it('journals new blobs durably before they appear (staging journal exists during the import)', async () => {
    const s = await store.beginImport();
    await s.put(chunks('journaled'));
    const journal = readdirSync(join(dir, 'staging')).filter((n) => n.endsWith('.journal'));
    expect(journal).toHaveLength(1);
    expect(readFileSync(join(dir, 'staging', journal[0]!), 'utf8')).toBe(`${sha256('journaled')}\n`);
    expect(statSync(join(dir, 'staging', 'import.lock')).isFile()).toBe(true);
    await s.abort();
  });

  it("a lock left empty or garbled by a crash, and a dead process's temp lock file, do not wedge the store", async () => {
    const staging = join(dir, 'staging');
    // Before locks were published by link(2), kill -9 between create and write left an empty lock: fsck refused.
    writeFileSync(join(staging, 'import.lock'), '');
    writeFileSync(join(staging, 'import.lock.999999999.dead-import.tmp'), '{"pid":999999999');
    const report = await fsck(store);
    expect(report.clean).toBe(true);
    expect(readdirSync(staging)).toEqual([]);
    writeFileSync(join(staging, 'import.lock'), 'not json');
    await (await store.beginImport()).abort();
    // A live holder (this process, active session) is still respected, and its lock file is complete JSON.
    const s = await store.beginImport();
    expect(JSON.parse(readFileSync(join(staging, 'import.lock'), 'utf8'))).toMatchObject({
      pid: process.pid,
      importId: s.id,
    });
    await expect(fsck(store)).rejects.toEqual(expectCode('IMPORT_LOCKED'));
    await s.abort();
  });
});
