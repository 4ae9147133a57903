/**
 * Predicate types and the build type the policy engine reads. SLSA_PROVENANCE_V1 and AIRLOCK_BUILD_TYPE are also
 * defined in runner/src/provenance.ts and TRANSFER_MANIFEST_PREDICATE_TYPE in mirror-sync and @airlock/mirror:
 * those applications should import them from here (shared-contract de-duplication, issue 8 §1).
 */
export { CYCLONEDX_PREDICATE_TYPE } from '@airlock/sbom';

/** SLSA Provenance v1 (the same URI for SLSA 1.0–1.2). */
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** SLSA Verification Summary Attestation v1. */
export const SLSA_VSA_V1 = 'https://slsa.dev/verification_summary/v1';
/** The runner's build type, documented by schemas/slsa-buildtype-airlock-v1.schema.json. */
export const AIRLOCK_BUILD_TYPE = 'https://airlock.dev/buildtypes/hermetic/v1';
/** A mirror-sync transfer manifest, signed by the sync identity. */
export const TRANSFER_MANIFEST_PREDICATE_TYPE = 'https://airlock.dev/attestation/transfer-manifest/v1';
export const TRANSFER_MANIFEST_MEDIA_TYPE = 'application/vnd.airlock.transfer-manifest.v1+json';
/** The policy document's apiVersion. */
export const POLICY_API_VERSION = 'airlock.dev/policy/v1';

/**
 * Build types whose provenance records an isolated, hosted build (the runner's bubblewrap sandbox with its own
 * network, user and pid namespaces): a prerequisite for claiming SLSA Build L3 in a VSA.
 */
export const ISOLATED_BUILD_TYPES: readonly string[] = [AIRLOCK_BUILD_TYPE];

/** True for `https://cyclonedx.org/bom` and its versioned variants (`…/bom/v1.6`), as cosign and in-toto emit. */
export function isCycloneDxPredicateType(t: string): boolean {
  return /^https:\/\/cyclonedx\.org\/bom(\/v[0-9.]+)?$/.test(t);
}
