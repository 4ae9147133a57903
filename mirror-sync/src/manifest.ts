import { canonicalBytes, sha256Hex } from '@airlock/core';
import { SyncError } from './errors.js';
import { PRODUCER, TRANSFER_MANIFEST_MEDIA_TYPE } from './producer.js';
import type { EntryDraft } from './resolve/context.js';
import { assertSchema } from './schemas.js';
import type { ManifestBlob, ManifestEntry, TransferManifest } from './types.js';

/** Code-unit order (what RFC 8785 uses), never locale order: the same inputs must sort the same everywhere. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entryKey(e: {
  ecosystem: string;
  name: string;
  version: string | null;
  filename: string;
}): [string, string, string, string] {
  return [e.ecosystem, e.name, e.version ?? '', e.filename];
}

export function compareEntries(a: ManifestEntry, b: ManifestEntry): number {
  const ka = entryKey(a);
  const kb = entryKey(b);
  for (let i = 0; i < 4; i++) {
    const c = compareStrings(ka[i]!, kb[i]!);
    if (c !== 0) return c;
  }
  return 0;
}

/** RFC 3339 UTC with second precision, the form the manifest uses. */
export function formatCreatedAt(value: string | Date | undefined): string {
  const d = value === undefined ? new Date() : new Date(value);
  if (Number.isNaN(d.getTime()))
    throw new SyncError('SYNC_OPTIONS_INVALID', `createdAt '${String(value)}' is not a date`);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Entries from drafts: digests/size come from the verified blob. The same (ecosystem, name, version, filename)
 * twice is one entry when the content is the same (urls merged) and a conflict when it is not.
 */
export function draftsToEntries(drafts: readonly EntryDraft[]): ManifestEntry[] {
  const byKey = new Map<string, ManifestEntry>();
  for (const d of drafts) {
    const key = entryKey(d).join('\0');
    const prev = byKey.get(key);
    if (prev) {
      if (prev.digests.sha256 !== d.blob.sha256) {
        throw new SyncError(
          'SYNC_INPUT_CONFLICT',
          `${d.ecosystem} ${d.name}${d.version ? `@${d.version}` : ''} (${d.filename}) is listed twice with different content (sha256 ${prev.digests.sha256} vs ${d.blob.sha256})`,
        );
      }
      prev.urls = [...new Set([...prev.urls, ...d.urls])];
      continue;
    }
    const { blob, ...rest } = d;
    byKey.set(key, {
      ...rest,
      urls: [...d.urls],
      size: blob.size,
      // sha512/sha1 only when computed (npm needs both; other ecosystems carry what they pinned).
      digests: {
        sha256: blob.sha256,
        ...(blob.sha512 !== undefined ? { sha512: blob.sha512 } : {}),
        ...(blob.sha1 !== undefined ? { sha1: blob.sha1 } : {}),
      },
    } as ManifestEntry);
  }
  return [...byKey.values()].sort(compareEntries);
}

/** Every blob an entry points at (its content, and PyPI core metadata), unique and sorted by sha256. */
export function referencedBlobs(entries: readonly ManifestEntry[]): ManifestBlob[] {
  const m = new Map<string, number>();
  for (const e of entries) {
    m.set(e.digests.sha256, e.size);
    if (e.ecosystem === 'pypi' && e.metadata.coreMetadata)
      m.set(e.metadata.coreMetadata.sha256, e.metadata.coreMetadata.size);
  }
  return [...m.entries()]
    .map(([sha256, size]) => ({ sha256, size }))
    .sort((a, b) => compareStrings(a.sha256, b.sha256));
}

/** `sha256:` of the RFC 8785 form of {sequence, previous, createdAt, entries, blobs} (manifest.md). */
export function computeSnapshotId(s: {
  sequence: number;
  previous: string | null;
  createdAt: string;
  entries: ManifestEntry[];
  blobs: ManifestBlob[];
}): string {
  return `sha256:${sha256Hex(canonicalBytes({ sequence: s.sequence, previous: s.previous, createdAt: s.createdAt, entries: s.entries, blobs: s.blobs }))}`;
}

export function buildManifest(args: {
  entries: ManifestEntry[];
  sequence: number;
  previous: string | null;
  createdAt: string;
}): TransferManifest {
  const blobs = referencedBlobs(args.entries);
  const id = computeSnapshotId({ ...args, blobs });
  const manifest: TransferManifest = {
    mediaType: TRANSFER_MANIFEST_MEDIA_TYPE,
    snapshot: {
      id,
      sequence: args.sequence,
      previous: args.previous,
      createdAt: args.createdAt,
      producer: { ...PRODUCER },
    },
    blobs,
    entries: args.entries,
    sbom: null,
  };
  // Our own output must meet the contract the importer enforces: a failure here is a bug or hostile upstream data.
  assertSchema('transfer-manifest.v1', manifest, 'transfer manifest', (k) => k, 'SYNC_SCHEMA_INVALID');
  return manifest;
}
