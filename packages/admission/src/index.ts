export type * from './types.js';
export * from './server/index.js';
export * from './errors.js';
export { createAdmissionController, type AdmissionControllerConfig } from './controller.js';
export { findImages, isSupportedKind, SUPPORTED_KINDS, type FoundImage, type ImageField } from './review/images.js';
export { AUDIT_KEYS, pinPatch } from './review/respond.js';
export {
  loadAdmissionPolicyFile,
  parseAdmissionPolicy,
  type ImagePolicy,
  type LoadedAdmissionPolicy,
} from './policy/load.js';
export type { AdmissionPolicyDocument, ImagePolicyDocument, ReleaseRef, VsaFastPath } from './policy/types.js';
export { matchName, matchingPolicies } from './policy/match.js';
export { loadRegistries, Registries, type RegistryHost } from './registry/config.js';
export { VerificationCache, type CacheOptions } from './verify/cache.js';
export { EngineImageVerifier } from './verify/engine.js';
export type { DigestImage, ImageVerifier, TrustMaterial } from './verify/types.js';
export { sharedSignal } from './abort.js';
