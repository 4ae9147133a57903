/**
 * @airlock/policy: release verification by policy. Load a policy (YAML/JSON, schemas/policy.v1.schema.json), hand
 * the engine attestations already verified by @airlock/verify's BundleVerifier plus the artifact digest and a mirror
 * snapshot source, and get a verdict with one result per rule; turn it into a SLSA VSA v1 statement, or check one.
 */
export * from './errors.js';
export * from './constants.js';
export type * from './types.js';
export * from './evidence.js';
export { parsePolicy, loadPolicyFile, parseDuration, type LoadedPolicy } from './load.js';
export {
  anchored,
  globToRegExp,
  matchesAny,
  compileAuthority,
  describeSigner,
  type CompiledAuthority,
  type Signer,
} from './match.js';
export { evaluatePolicy, type EvaluateOptions } from './engine.js';
export { implicitPolicy, versionedTagRange, type ShortcutFlags } from './implicit.js';
export { verifiedLevels, SLSA_BUILD_LEVEL } from './levels.js';
export { buildVsa, checkVsa, type VsaInput, type VsaExpectation, type VsaPredicate } from './vsa.js';
export {
  TransferManifestSnapshotSource,
  combineSnapshotSources,
  type SnapshotHit,
  type SnapshotSource,
} from './snapshots.js';
export {
  MirrorLookupSnapshotSource,
  MIRROR_BLOB_SNAPSHOTS_MEDIA_TYPE,
  MIRROR_SNAPSHOT_MEDIA_TYPE,
  type MirrorLookupOptions,
  type MirrorDiscrepancy,
  type MirrorSnapshotSeen,
} from './snapshots-mirror.js';
export {
  loadOsvDirectory,
  parseOsv,
  indexAdvisories,
  advisoriesFor,
  isAffected,
  compareGeneric,
  type OsvAdvisory,
  type OsvAffected,
  type OsvEvent,
  type AdvisoryIndex,
} from './osv.js';
export { parsePurl, type ParsedPurl } from './purl.js';
export {
  bundleVerifiers,
  checkBundleInputs,
  checkBundleInputsYielding,
  policyTrustedRoots,
  readBundleFiles,
  type BundleInput,
  type CheckedBundles,
} from './artifact/bundles.js';
export { VerifiedSnapshots, readSnapshotFiles, type SnapshotInfo } from './artifact/snapshots.js';
export {
  verifyArtifactByPolicy,
  evaluateBundles,
  type PolicyContext,
  type PolicyRun,
  type VerifyArtifactInput,
} from './artifact/verify.js';
export { verifyImageByPolicy, type ImagePolicyRun, type VerifyImageInput } from './image/verify.js';
export { resolveImageDigest, type ImageTarget } from './image/verify.js';
export { checkVsaBundle, checkImageVsa, type CheckedVsa } from './image/vsa.js';
