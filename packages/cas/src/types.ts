import type { Assignable, Ecosystem, TransferManifest } from '@airlock/schemas';

/** Ecosystems the mirror serves (the transfer manifest's `entries[].ecosystem`): the shared contract's. */
export { ECOSYSTEMS, type Ecosystem } from '@airlock/schemas';

/** Digest algorithms the index can look blobs up by (all lowercase hex). */
export type LookupAlgorithm = 'sha256' | 'sha512' | 'sha1';

export interface EntryDigests {
  sha256: string;
  sha512?: string;
  sha1?: string;
}

/** One entry as the importer hands it to `commit` (the transfer manifest's entry shape). */
export interface MirrorEntryInput {
  ecosystem: Ecosystem;
  name: string;
  version: string | null;
  filename: string;
  urls?: string[];
  size: number;
  digests: EntryDigests;
  purl?: string | null;
  metadata?: Record<string, unknown>;
}

/** An entry as stored and served (visible once the snapshot that added it is at or below `head`). */
export interface MirrorEntry {
  ecosystem: Ecosystem;
  name: string;
  version: string | null;
  filename: string;
  sha256: string;
  size: number;
  digests: EntryDigests;
  purl: string | null;
  urls: string[];
  metadata: Record<string, unknown>;
  /** Sequence of the snapshot that added the entry. */
  addedIn: number;
  /** `createdAt` of that snapshot (a fallback publish time). */
  addedAt: string;
}

/** The `snapshot` object of a transfer manifest. */
export interface SnapshotInfo {
  id: string;
  sequence: number;
  previous: string | null;
  createdAt: string;
  producer?: { name: string; version: string };
}

export interface ManifestBlob {
  sha256: string;
  size: number;
}

/**
 * The parts of the transfer manifest the store relies on. The importer validates the full schema and the
 * signatures; the store re-checks only what its own invariants need and keeps the whole document for audit.
 */
export interface SnapshotManifest {
  mediaType?: string;
  snapshot: SnapshotInfo;
  blobs: ManifestBlob[];
  entries?: unknown[];
  [key: string]: unknown;
}

/** The store takes the transfer manifest (@airlock/schemas) as it is: checked at compile time. */
export type TransferManifestIsSnapshotManifest = Assignable<TransferManifest, SnapshotManifest>;
/** An entry of the transfer manifest is what the importer hands to `commit`. */
export type ManifestEntryIsMirrorEntryInput = Assignable<TransferManifest['entries'][number], MirrorEntryInput>;

export interface SnapshotRecord {
  id: string;
  sequence: number;
  previous: string | null;
  createdAt: string;
  importedAt: string;
  /** True when the snapshot was accepted with `allowGap` (its `previous` was not the head at the time). */
  gapAllowed: boolean;
}

export interface SnapshotDetail extends SnapshotRecord {
  manifest: unknown;
  signedBundles: unknown;
}

export type BlobState = 'ok' | 'quarantined';

export interface BlobRecord {
  sha256: string;
  size: number;
  state: BlobState;
  addedIn: number;
}
