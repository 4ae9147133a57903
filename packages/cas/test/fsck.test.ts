import { chmodSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, MirrorStore, fsck } from '../src/index.js';
import { chunks, genericFile, makeManifest, removeDir, sha256, tempDir } from './helpers.js';

describe('fsck', () => {
  let dir: string;
  let store: MirrorStore;
  beforeEach(async () => {
    dir = tempDir();
    store = await MirrorStore.open(dir);
    const m = makeManifest({
      sequence: 1,
      previous: null,
      files: ['one', 'two', 'three'].map((n) => genericFile(n, `${n} content`)),
    });
    const s = await store.beginImport();
    for (const n of ['one', 'two', 'three']) await s.put(chunks(`${n} content`));
    await s.commit({ manifest: m.manifest, signedBundles: null, entries: m.entries });
  });
  afterEach(async () => {
    await store.close();
    removeDir(dir);
  });

  it('reports a clean store', async () => {
    expect(await fsck(store)).toEqual({
      checked: 3,
      ok: 3,
      corrupt: [],
      missing: [],
      orphans: [],
      removedOrphans: 0,
      clean: true,
    });
  });

  it('finds corrupt, missing and orphan blobs; quarantines the corrupt one and can remove orphans', async () => {
    const fs = store.blobs as FsBlobStore;
    const corrupt = sha256('one content');
    const missing = sha256('two content');
    // Corrupt (re-hashed even though a read verified it before: fsck ignores the cache).
    await store.verifyBlob(corrupt);
    chmodSync(fs.pathOf(corrupt), 0o644);
    writeFileSync(fs.pathOf(corrupt), 'one contenT');
    unlinkSync(fs.pathOf(missing));
    // An orphan: a blob no snapshot references (e.g. copied in by hand).
    const orphan = (await fs.put(chunks('orphan'))).sha256;

    const report = await fsck(store);
    expect(report.checked).toBe(3);
    expect(report.ok).toBe(2);
    expect(report.corrupt).toEqual([
      { sha256: corrupt, actual: sha256('one contenT'), reason: expect.stringContaining('hashes to') },
    ]);
    expect(report.missing.map((m) => m.sha256).sort()).toEqual([corrupt, missing].sort());
    expect(report.missing.find((m) => m.sha256 === missing)).toMatchObject({ entries: 1 });
    expect(report.orphans).toEqual([orphan]);
    expect(report.clean).toBe(false);
    expect(await fs.isQuarantined(corrupt)).toBe(true);
    expect(store.index.getBlob(corrupt)?.state).toBe('quarantined');
    expect(store.index.getBlob(missing)?.state).toBe('quarantined');

    const again = await fsck(store, { removeOrphans: true });
    expect(again.removedOrphans).toBe(1);
    expect(await fs.has(orphan)).toBe(false);
    expect(again.corrupt).toEqual([]);
  });

  it('does not run during an import (staged blobs are not orphans)', async () => {
    const s = await store.beginImport();
    await s.put(chunks('staged'));
    await expect(fsck(store)).rejects.toMatchObject({ code: 'IMPORT_LOCKED' });
    await s.abort();
    expect((await fsck(store)).clean).toBe(true);
  });
});
