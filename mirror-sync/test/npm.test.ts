import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNpmLockfile, syncToBundle, type NpmManifestEntry, type SyncError } from '../src/index.js';
import {
  generateLockfile,
  loopbackFetch,
  npmProblem,
  PUBLISHED_AT,
  publishFixturePackages,
  servePackage,
  sha512,
  startUpstream,
  tarballPath,
  toolsAvailable,
  type PackedPackage,
  type Upstream,
} from '@airlock/testkit';

const npmAvailable = toolsAvailable('mirror-sync npm tests', [npmProblem()]);

let up: Upstream;
let root: string;
let pkgs: Map<string, PackedPackage>;
let lockV2: string;
let lockV3: string;

describe.skipIf(!npmAvailable)('npm lockfiles against an npm-registry-shaped fixture', () => {
  beforeAll(async () => {
    up = await startUpstream();
    root = mkdtempSync(join(tmpdir(), 'airlock-sync-npm-'));
    pkgs = await publishFixturePackages(up, root);
    [lockV3, lockV2] = await Promise.all([generateLockfile(up, root, 3), generateLockfile(up, root, 2)]);
    up.resetCounters();
  });
  afterAll(async () => {
    await up?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('real npm wrote v2 and v3 lockfiles the parser reads the same way', () => {
    const v3 = parseNpmLockfile(readFileSync(lockV3, 'utf8'));
    const v2 = parseNpmLockfile(readFileSync(lockV2, 'utf8'));
    expect(JSON.parse(readFileSync(lockV2, 'utf8')).lockfileVersion).toBe(2);
    expect(JSON.parse(readFileSync(lockV3, 'utf8')).lockfileVersion).toBe(3);
    expect(v3.entries.map((e) => `${e.name}@${e.version}`).sort()).toEqual([
      '@fixture/scoped@1.0.0',
      'fixture-dep@2.0.1',
      'fixture-plain@1.2.3',
    ]);
    expect(v2.entries).toEqual(v3.entries);
  });

  for (const v of [3, 2] as const) {
    it(`syncs lockfile v${v}: tarballs verified against integrity, version manifests from the packument`, async () => {
      const r = await syncToBundle({
        inputs: [{ path: v === 3 ? lockV3 : lockV2 }],
        out: join(root, `npm-v${v}.tar`),
        quiet: true,
        fetch: loopbackFetch,
        createdAt: '2026-11-28T15:00:00Z',
      });
      const entries = r.manifest.entries as NpmManifestEntry[];
      expect(entries.map((e) => e.name)).toEqual(['@fixture/scoped', 'fixture-dep', 'fixture-plain']);
      const scoped = entries[0]!;
      const packed = pkgs.get('@fixture/scoped')!;
      expect(scoped).toMatchObject({
        ecosystem: 'npm',
        version: '1.0.0',
        filename: 'scoped-1.0.0.tgz',
        urls: [`${up.url}${tarballPath(packed)}`],
        size: packed.tarball.length,
        purl: 'pkg:npm/%40fixture/scoped@1.0.0',
        digests: { sha512: sha512(packed.tarball), sha1: packed.shasum },
      });
      expect(scoped.metadata).toMatchObject({
        integrity: packed.integrity,
        shasum: packed.shasum,
        time: PUBLISHED_AT,
        distTags: { latest: '1.0.0', next: '1.0.0' },
      });
      expect(scoped.metadata.manifest).toMatchObject({
        name: '@fixture/scoped',
        version: '1.0.0',
        dependencies: { 'fixture-dep': '^2.0.0' },
        dist: {
          integrity: packed.integrity,
          shasum: packed.shasum,
          tarball: `${up.url}${tarballPath(packed)}`,
          fileCount: 2,
        },
      });
      expect(scoped.metadata.manifest).not.toHaveProperty('readme');
      expect(scoped.metadata.manifest).not.toHaveProperty('maintainers');
      const plain = entries[2]!.metadata.manifest;
      expect(plain.scripts).toEqual({ postinstall: 'node -e 0' }); // install-related scripts only
      expect(plain.bin).toEqual({ 'fixture-plain': 'index.js' });
      expect(plain.engines).toEqual({ node: '>=18' });
      expect(up.hits('/@fixture/scoped')).toBeGreaterThanOrEqual(1);
    });
  }

  it('maps public-registry URLs to the configured registry and records the upstream URL', async () => {
    const publicLock = join(root, 'public-lock.json');
    writeFileSync(publicLock, readFileSync(lockV3, 'utf8').replaceAll(`${up.url}/`, 'https://registry.npmjs.org/'));
    up.resetCounters();
    const r = await syncToBundle({
      inputs: [{ path: publicLock, kind: 'npm-lock' }],
      out: join(root, 'mapped.tar'),
      quiet: true,
      fetch: loopbackFetch,
      npmRegistry: `${up.url}/`,
    });
    const scoped = r.manifest.entries[0] as NpmManifestEntry;
    expect(scoped.urls).toEqual(['https://registry.npmjs.org/@fixture/scoped/-/scoped-1.0.0.tgz']);
    expect(scoped.metadata.manifest.dist).toMatchObject({
      tarball: 'https://registry.npmjs.org/@fixture/scoped/-/scoped-1.0.0.tgz',
    });
    expect(up.hits('/@fixture/scoped/-/scoped-1.0.0.tgz')).toBe(1);
  });

  it('fails when the packument contradicts the verified tarball', async () => {
    const plain = pkgs.get('fixture-plain')!;
    servePackage(up, plain, { shasum: '0'.repeat(40) });
    try {
      const err = (await syncToBundle({
        inputs: [{ path: lockV3 }],
        out: join(root, 'bad.tar'),
        quiet: true,
        fetch: loopbackFetch,
      }).catch((e: unknown) => e)) as SyncError;
      expect(err.code).toBe('SYNC_ENTRIES_FAILED');
      const f = (err.details!.failures as { entry: string; code: string }[]).map((x) => `${x.entry} ${x.code}`);
      expect(f).toEqual(['npm fixture-plain@1.2.3 SYNC_UPSTREAM_INVALID']);
    } finally {
      servePackage(up, plain);
    }
  });

  it('fails when the registry serves a tarball that does not match the lockfile integrity', async () => {
    const dep = pkgs.get('fixture-dep')!;
    up.file(tarballPath(dep), pkgs.get('fixture-plain')!.tarball);
    try {
      const err = (await syncToBundle({
        inputs: [{ path: lockV3 }],
        out: join(root, 'bad2.tar'),
        quiet: true,
        fetch: loopbackFetch,
      }).catch((e: unknown) => e)) as SyncError;
      const failures = err.details!.failures as { entry: string; code: string; message: string }[];
      expect(failures.map((x) => `${x.entry} ${x.code}`)).toEqual(['npm fixture-dep@2.0.1 SYNC_HASH_MISMATCH']);
      expect(failures[0]!.message).toContain(sha512(dep.tarball));
    } finally {
      servePackage(up, dep);
    }
  });
});
