import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, type MirrorStore } from '@airlock/cas';
import { exportBazelRepositoryCache } from '../src/index.js';
import {
  openStore,
  populateFromManifest,
  pypiFiles,
  removeDir,
  sha256,
  tempDir,
  type FixtureFile,
} from './helpers/populate.js';

const archive = Buffer.from('rules_fixture archive bytes '.repeat(40));
const file = Buffer.from('a single http_file '.repeat(10));
const wheel = Buffer.from('wheel '.repeat(30));
const meta = Buffer.from('Metadata-Version: 2.1\nName: w\nVersion: 1\n');

const FILES: FixtureFile[] = [
  {
    bytes: archive,
    entry: {
      ecosystem: 'bazel',
      name: 'rules_fixture',
      version: null,
      filename: 'rules_fixture-1.0.tar.gz',
      metadata: { repository: 'rules_fixture', stripPrefix: null, type: 'http_archive' },
    },
  },
  {
    bytes: file,
    entry: {
      ecosystem: 'bazel',
      name: 'some_file',
      version: null,
      filename: 'some_file.bin',
      metadata: { repository: 'some_file', stripPrefix: null, type: 'http_file' },
    },
  },
  ...pypiFiles(wheel, { project: 'w', version: '1', filename: 'w-1-py3-none-any.whl', metadata: meta }),
];

describe('exportBazelRepositoryCache', () => {
  let dir: string;
  let store: MirrorStore;
  beforeEach(async () => {
    dir = tempDir();
    store = await openStore(dir);
    await populateFromManifest(store, FILES);
  });
  afterEach(async () => {
    await store.close();
    removeDir(dir);
  });

  const cachePath = (cache: string, bytes: Buffer) =>
    join(cache, 'content_addressable', 'sha256', sha256(bytes), 'file');

  it('writes content_addressable/sha256/<hex>/file for every blob, hardlinked to the CAS', async () => {
    const cache = join(dir, 'repo-cache');
    const report = await exportBazelRepositoryCache(store, cache);
    expect(report).toEqual({ total: 4, linked: 4, copied: 0, unchanged: 0, failed: [] });
    expect(readdirSync(join(cache, 'content_addressable', 'sha256')).sort()).toEqual(
      [archive, file, wheel, meta].map(sha256).sort(),
    );
    for (const bytes of [archive, file, wheel, meta]) {
      const p = cachePath(cache, bytes);
      expect(readFileSync(p)).toEqual(bytes);
      expect(readdirSync(join(p, '..'))).toEqual(['file']);
      expect(statSync(p).ino).toBe(statSync((store.blobs as FsBlobStore).pathOf(sha256(bytes))).ino);
    }
    expect(await exportBazelRepositoryCache(store, cache)).toMatchObject({ linked: 0, copied: 0, unchanged: 4 });
  });

  it('copies when asked (or across filesystems) and replaces a wrong file on re-export', async () => {
    const cache = join(dir, 'copy-cache');
    expect(await exportBazelRepositoryCache(store, cache, { hardlink: false })).toMatchObject({ linked: 0, copied: 4 });
    const p = cachePath(cache, archive);
    expect(statSync(p).ino).not.toBe(statSync((store.blobs as FsBlobStore).pathOf(sha256(archive))).ino);
    expect(statSync(p).mode & 0o777).toBe(0o444);
    chmodSync(p, 0o644);
    writeFileSync(p, 'tampered');
    expect(await exportBazelRepositoryCache(store, cache, { hardlink: false })).toMatchObject({
      copied: 1,
      unchanged: 3,
    });
    expect(readFileSync(p)).toEqual(archive);
  });

  it('never exports a corrupt blob, nor blobs of an unfinished import', async () => {
    const cas = store.blobs as FsBlobStore;
    chmodSync(cas.pathOf(sha256(file)), 0o644);
    writeFileSync(cas.pathOf(sha256(file)), Buffer.from(file).fill(0x41, 0, 1));
    const session = await store.beginImport();
    await session.put([Buffer.from('staged')]);
    const cache = join(dir, 'c3');
    const report = await exportBazelRepositoryCache(store, cache);
    await session.abort();
    expect(report.failed).toEqual([{ sha256: sha256(file), reason: expect.stringContaining('quarantined') }]);
    expect(report.linked).toBe(3);
    expect(existsSync(cachePath(cache, file))).toBe(false);
    expect(existsSync(cachePath(cache, Buffer.from('staged')))).toBe(false);
  });
});
