/**
 * The type each schema's validator guarantees: the refined contract where one exists (the generated type cannot
 * express if/then rules), else the type generated from the schema.
 */
import type { BuildSpec } from './build-spec.js';
import type { AirlockAdmissionPolicyV1 } from './generated/admission-policy.v1.js';
import type { AirlockMirrorBlobLookupV1 } from './generated/mirror-blob-lookup.v1.js';
import type { MirrorSnapshotLookupAPIAirlockMirrorServe } from './generated/mirror-snapshot-lookup.v1.js';
import type { AirlockNodeAttestationClaimsV1 } from './generated/node-attestation-claims.v1.js';
import type { AirlockReleasePolicyV1 } from './generated/policy.v1.js';
import type { AirlockHermeticBuildTypeV1SLSAProvenanceV1BuildDefinition } from './generated/slsa-buildtype-airlock-v1.js';
import type { BazelFetchListJSONOrYAML } from './generated/sync-bazel-fetch-list.js';
import type { GenericFileListJSONOrYAML } from './generated/sync-generic-list.js';
import type { NixFetchListJSONOrYAMLFlatFixedOutputFiles } from './generated/sync-nix-fetch-list.js';
import type { OutputOfNixShowDerivationRNix28Shape } from './generated/sync-nix-show-derivation.js';
import type { NpmPackageLockJsonNpmShrinkwrapJsonLockfileVersion2Or3AsMirrorSyncReadsIt } from './generated/sync-npm-lockfile.js';
import type { PinnedRequirementsParsedFromAPipRequirementsTxt } from './generated/sync-requirements.js';
import type { MirrorSyncStateFileState } from './generated/sync-state.v1.js';
import type { TransferManifest } from './transfer-manifest.js';

/** Response of a mirror's `GET /-/airlock/blobs/<sha256>`. */
export type MirrorBlobLookup = AirlockMirrorBlobLookupV1;
export type MirrorBlobLookupEntry = AirlockMirrorBlobLookupV1['entries'][number];
/** mirror-sync's state file. */
export type SyncState = MirrorSyncStateFileState;
/** The `buildDefinition` of provenance with buildType AIRLOCK_BUILD_TYPE. */
export type AirlockBuildDefinition = AirlockHermeticBuildTypeV1SLSAProvenanceV1BuildDefinition;
/** The release policy document as the schema describes it (@airlock/policy refines it). */
export type PolicyDocumentV1 = AirlockReleasePolicyV1;

/** The admission policy document (webhook and workspace check). */
export type AdmissionPolicyDocumentV1 = AirlockAdmissionPolicyV1;
/** A mirror's snapshot lookup answers (`/-/airlock/blobs/<sha256>/snapshots`, `/-/airlock/snapshots/<id>`). */
export type MirrorSnapshotLookup = MirrorSnapshotLookupAPIAirlockMirrorServe;
/** What node attestation proved about a host (packages/attest), carried into tokens and certificates. */
export type NodeAttestationClaimsV1 = AirlockNodeAttestationClaimsV1;

export interface Contracts {
  'admission-policy.v1': AdmissionPolicyDocumentV1;
  'build-spec.v1': BuildSpec;
  'mirror-blob-lookup.v1': MirrorBlobLookup;
  'mirror-snapshot-lookup.v1': MirrorSnapshotLookup;
  'node-attestation-claims.v1': NodeAttestationClaimsV1;
  'policy.v1': PolicyDocumentV1;
  'slsa-buildtype-airlock-v1': AirlockBuildDefinition;
  'sync-bazel-fetch-list': BazelFetchListJSONOrYAML;
  'sync-generic-list': GenericFileListJSONOrYAML;
  'sync-nix-fetch-list': NixFetchListJSONOrYAMLFlatFixedOutputFiles;
  'sync-nix-show-derivation': OutputOfNixShowDerivationRNix28Shape;
  'sync-npm-lockfile': NpmPackageLockJsonNpmShrinkwrapJsonLockfileVersion2Or3AsMirrorSyncReadsIt;
  'sync-requirements': PinnedRequirementsParsedFromAPipRequirementsTxt;
  'sync-state.v1': SyncState;
  'transfer-manifest.v1': TransferManifest;
}
