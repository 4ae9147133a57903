export { SbomError, type SbomErrorCode } from './errors.js';
export {
  ECOSYSTEMS,
  type BuildInput,
  type BuildSbomInput,
  type BuildSubject,
  type CycloneDxBom,
  type CycloneDxComponent,
  type CycloneDxDependency,
  type CycloneDxExternalReference,
  type CycloneDxHash,
  type CycloneDxHashAlgorithm,
  type CycloneDxMetadata,
  type CycloneDxProperty,
  type Ecosystem,
  type SbomOptions,
  type SnapshotEntry,
  type SnapshotInfo,
  type SnapshotManifest,
} from './types.js';
export {
  AIRLOCK_SBOM_VERSION,
  CYCLONEDX_MEDIA_TYPE,
  CYCLONEDX_PREDICATE_TYPE,
  CYCLONEDX_SPEC_VERSION,
} from './cyclonedx.js';
export { sbomFromManifest, entryBomRef } from './manifest-sbom.js';
export { sbomForBuild, inputBomRef } from './build-sbom.js';
export { serializeSbom } from './serialize.js';
export { validateSbom, type SbomValidationResult } from './validate.js';
export { canonicalPurl, makeGenericPurl, makeNpmPurl, makePypiPurl, purlDisplayName } from './purl.js';
export { uuidV5, AIRLOCK_SBOM_NAMESPACE } from './uuid.js';
