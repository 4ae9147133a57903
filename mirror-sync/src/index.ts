/**
 * @airlock/mirror-sync: the outside-the-perimeter sync job. Pinned inputs (npm lockfiles, hashed requirements,
 * Bazel http_archive pins, Nix fixed-output derivations, plain file lists) in; a signed, content-addressed
 * transfer bundle out (contract: schemas/transfer-manifest.v1.schema.json).
 */
export { syncToBundle, type SyncInput, type SyncOptions, type SyncResult } from './sync.js';
export { SyncError, type SyncErrorCode, type EntryFailure } from './errors.js';
export type {
  BazelEntryMetadata,
  BazelFetch,
  BazelManifestEntry,
  Ecosystem,
  EntryDigests,
  GenericFetch,
  GenericManifestEntry,
  InputKind,
  ManifestBlob,
  ManifestEntry,
  NixEntryMetadata,
  NixFetch,
  NixManifestEntry,
  NpmEntryMetadata,
  NpmLockPackage,
  NpmManifestEntry,
  ParsedInput,
  PinnedRequirement,
  PypiEntryMetadata,
  PypiManifestEntry,
  SnapshotInfo,
  TransferManifest,
} from './types.js';
export { parseNpmLockfile } from './inputs/npm-lockfile.js';
export { parseNpmrc, type NpmRegistries } from './inputs/npmrc.js';
export { parseRequirementsTxt, normalizePypiName } from './inputs/requirements-txt.js';
export { parseBazelQueryOutput, parseBazelFetchList } from './inputs/bazel.js';
export {
  parseNixShowDerivation,
  parseNixFetchList,
  parseNixHash,
  DEFAULT_NIX_MIRRORS,
  type NixParseOptions,
} from './inputs/nix.js';
export { parseGenericList } from './inputs/generic-list.js';
export { detectInputKind } from './inputs/detect.js';
export {
  buildManifestStatement,
  buildSbomStatement,
  type InputRecord,
  type ManifestSigner,
  type TransferManifestPredicate,
} from './statement.js';
export { buildManifest, computeSnapshotId, compareEntries } from './manifest.js';
export { readSyncState, writeSyncState, type SyncState } from './state-file.js';
export type { ProgressMode } from './progress.js';
export {
  PRODUCER,
  TRANSFER_MANIFEST_MEDIA_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
  CYCLONEDX_PREDICATE_TYPE,
} from './producer.js';
