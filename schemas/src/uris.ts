/**
 * The URIs every part of airlock writes or checks: in-toto predicate types, the runner's SLSA buildType, media
 * types. Defined once here; packages import them instead of repeating the literals.
 */

/** SLSA Provenance v1 predicate type (the same URI for SLSA 1.0–1.2). */
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** SLSA Verification Summary Attestation v1 predicate type. */
export const SLSA_VSA_V1 = 'https://slsa.dev/verification_summary/v1';
/** in-toto's registered predicate type for a CycloneDX BOM (https://github.com/in-toto/attestation, cyclonedx.md). */
export const CYCLONEDX_PREDICATE_TYPE = 'https://cyclonedx.org/bom';
/** A mirror-sync transfer manifest, signed by the sync identity. */
export const TRANSFER_MANIFEST_PREDICATE_TYPE = 'https://airlock.dev/attestation/transfer-manifest/v1';
/** The transfer manifest's `mediaType` (transfer-manifest.v1.schema.json). */
export const TRANSFER_MANIFEST_MEDIA_TYPE = 'application/vnd.airlock.transfer-manifest.v1+json';
/** The runner's SLSA buildType, documented by slsa-buildtype-airlock-v1.schema.json. */
export const AIRLOCK_BUILD_TYPE = 'https://airlock.dev/buildtypes/hermetic/v1';

/** True for `https://cyclonedx.org/bom` and its versioned variants (`…/bom/v1.6`), as cosign and in-toto emit. */
export function isCycloneDxPredicateType(t: string): boolean {
  return /^https:\/\/cyclonedx\.org\/bom(\/v[0-9.]+)?$/.test(t);
}
