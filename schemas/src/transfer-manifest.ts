/**
 * The transfer manifest (transfer-manifest.v1.schema.json): what mirror-sync writes, the importer and the policy
 * engine read. The generated type cannot express the schema's per-ecosystem if/then rules, so the entries are
 * refined here into a union by `ecosystem`; the assertion at the end keeps the refinement within the schema's type.
 */
import type { AirlockTransferManifestV1 } from './generated/transfer-manifest.v1.js';
import type { Assignable } from './check.js';

export type Ecosystem = AirlockTransferManifestV1['entries'][number]['ecosystem'];
export const ECOSYSTEMS: readonly Ecosystem[] = ['npm', 'pypi', 'bazel', 'nix', 'generic'];

export type ManifestBlob = AirlockTransferManifestV1['blobs'][number];
export type SnapshotInfo = AirlockTransferManifestV1['snapshot'];

export type EntryDigests = {
  sha256: string;
  sha512: string;
  sha1: string;
};

export type NpmEntryMetadata = {
  integrity: string;
  shasum: string;
  manifest: Record<string, unknown>;
  time: string | null;
  distTags?: Record<string, string>;
};

export type PypiEntryMetadata = {
  project: string;
  requiresPython: string | null;
  /** false, or the yank reason ('' when the index gave none: any string means "yanked"). */
  yanked: false | string;
  packagetype: 'bdist_wheel' | 'sdist';
  coreMetadata: ManifestBlob | null;
};

export type BazelEntryMetadata = {
  repository: string;
  stripPrefix: string | null;
  type: 'http_archive' | 'http_file';
};

export type NixEntryMetadata = {
  outputHashAlgo: 'sha256' | 'sha512';
  outputHashMode: 'flat' | 'recursive';
  outputHash: string;
  nixBase32: string;
};

type EntryBase<E extends Ecosystem, M> = {
  ecosystem: E;
  name: string;
  version: string | null;
  filename: string;
  urls: string[];
  size: number;
  digests: EntryDigests;
  purl: string;
  metadata: M;
};

export type NpmManifestEntry = EntryBase<'npm', NpmEntryMetadata>;
export type PypiManifestEntry = EntryBase<'pypi', PypiEntryMetadata>;
export type BazelManifestEntry = EntryBase<'bazel', BazelEntryMetadata>;
export type NixManifestEntry = EntryBase<'nix', NixEntryMetadata>;
export type GenericManifestEntry = EntryBase<'generic', Record<string, never>>;
export type ManifestEntry =
  NpmManifestEntry | PypiManifestEntry | BazelManifestEntry | NixManifestEntry | GenericManifestEntry;

export type TransferManifest = Omit<AirlockTransferManifestV1, 'entries'> & {
  entries: ManifestEntry[];
};

export type TransferManifestMatchesSchema = Assignable<TransferManifest, AirlockTransferManifestV1>;
