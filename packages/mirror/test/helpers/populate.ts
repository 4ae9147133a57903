import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalize, toSri } from '@airlock/core';
import { MirrorStore, type MirrorEntryInput, type SnapshotManifest, type SnapshotRecord } from '@airlock/cas';

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
export const sha512 = (b: Uint8Array | string): string => createHash('sha512').update(b).digest('hex');
export const sha1 = (b: Uint8Array | string): string => createHash('sha1').update(b).digest('hex');

export function tempDir(prefix = 'airlock-mirror-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A fixture file: its bytes and, unless it is a bare blob (PEP 658 metadata), the entry describing it. */
export interface FixtureFile {
  bytes: Buffer;
  entry?: Omit<MirrorEntryInput, 'size' | 'digests'>;
}

/**
 * Test helper: puts fixture blobs + entries into a store through the same import/commit API the bundle importer
 * uses (a manifest shaped like the transfer-manifest contract, sequence = head + 1).
 */
export async function populateFromManifest(
  store: MirrorStore,
  files: FixtureFile[],
  options: { createdAt?: string } = {},
): Promise<{ manifest: SnapshotManifest; record: SnapshotRecord }> {
  const head = store.head();
  const sequence = (head?.sequence ?? 0) + 1;
  const previous = head?.id ?? null;
  const blobs = [
    ...new Map(files.map((f) => [sha256(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length }])).values(),
  ].sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1));
  const entries: MirrorEntryInput[] = files
    .filter((f) => f.entry !== undefined)
    .map((f) => ({
      ...f.entry!,
      size: f.bytes.length,
      digests: { sha256: sha256(f.bytes), sha512: sha512(f.bytes), sha1: sha1(f.bytes) },
    }))
    .sort((a, b) =>
      `${a.ecosystem}\0${a.name}\0${a.version}\0${a.filename}` <
      `${b.ecosystem}\0${b.name}\0${b.version}\0${b.filename}`
        ? -1
        : 1,
    );
  const createdAt = options.createdAt ?? new Date(Date.UTC(2026, 0, sequence)).toISOString().replace('.000', '');
  const id = `sha256:${sha256(canonicalize({ sequence, previous, createdAt, entries, blobs }))}`;
  const manifest: SnapshotManifest = {
    mediaType: 'application/vnd.airlock.transfer-manifest.v1+json',
    snapshot: { id, sequence, previous, createdAt, producer: { name: 'test', version: '0.0.0' } },
    blobs,
    entries,
  };
  const session = await store.beginImport();
  try {
    for (const f of files) await session.put([f.bytes], { sha256: sha256(f.bytes), size: f.bytes.length });
    const record = await session.commit({ manifest, signedBundles: { test: true }, entries });
    return { manifest, record };
  } catch (err) {
    await session.abort();
    throw err;
  }
}

/** An npm entry as mirror-sync records it: version manifest from package.json + dist, integrity, shasum. */
export function npmFile(
  tgz: Buffer,
  pkg: { name: string; version: string } & Record<string, unknown>,
  options: { filename?: string; time?: string; distTags?: Record<string, string> } = {},
): FixtureFile {
  const base = pkg.name.startsWith('@') ? pkg.name.split('/')[1]! : pkg.name;
  const filename = options.filename ?? `${base}-${pkg.version}.tgz`;
  const integrity = toSri('sha512', sha512(tgz));
  const shasum = sha1(tgz);
  return {
    bytes: tgz,
    entry: {
      ecosystem: 'npm',
      name: pkg.name,
      version: pkg.version,
      filename,
      urls: [`https://registry.npmjs.org/${pkg.name}/-/${filename}`],
      purl: `pkg:npm/${pkg.name.replace('@', '%40')}@${pkg.version}`,
      metadata: {
        integrity,
        shasum,
        manifest: {
          ...pkg,
          dist: { integrity, shasum, tarball: `https://registry.npmjs.org/${pkg.name}/-/${filename}` },
        },
        time: options.time ?? null,
        ...(options.distTags ? { distTags: options.distTags } : {}),
      },
    },
  };
}

/** A PyPI file entry, optionally with its PEP 658 core metadata as a separate blob. */
export function pypiFiles(
  bytes: Buffer,
  info: {
    project: string;
    version: string;
    filename: string;
    requiresPython?: string | null;
    yanked?: false | string;
    metadata?: Buffer;
  },
): FixtureFile[] {
  const normalized = info.project.replace(/[-_.]+/g, '-').toLowerCase();
  const files: FixtureFile[] = [
    {
      bytes,
      entry: {
        ecosystem: 'pypi',
        name: normalized,
        version: info.version,
        filename: info.filename,
        urls: [`https://files.pythonhosted.org/packages/${info.filename}`],
        purl: `pkg:pypi/${normalized}@${info.version}`,
        metadata: {
          project: info.project,
          requiresPython: info.requiresPython ?? null,
          yanked: info.yanked ?? false,
          packagetype: info.filename.endsWith('.whl') ? 'bdist_wheel' : 'sdist',
          coreMetadata: info.metadata ? { sha256: sha256(info.metadata), size: info.metadata.length } : null,
        },
      },
    },
  ];
  if (info.metadata) files.push({ bytes: info.metadata });
  return files;
}

export function openStore(dir: string): Promise<MirrorStore> {
  return MirrorStore.open(join(dir, 'store'));
}
