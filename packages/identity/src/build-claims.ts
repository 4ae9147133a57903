/**
 * Optional workload-token claims describing the build, which the CA copies into the Fulcio certificate
 * extensions `1.3.6.1.4.1.57264.1.9`–`.23` (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
 * Public Fulcio derives these from provider-specific claims (GitHub's `workflow_ref`, …); our own issuer emits
 * them directly under these flat names, each a string.
 */
export const BUILD_CLAIM_NAMES = [
  'build_signer_uri', // .9  Build Signer URI (e.g. the reusable workflow / pipeline definition)
  'build_signer_digest', // .10 Build Signer Digest
  'runner_environment', // .11 Runner Environment ("airlock-hosted", "self-hosted")
  'source_repository_uri', // .12 Source Repository URI
  'source_repository_digest', // .13 Source Repository Digest (commit)
  'source_repository_ref', // .14 Source Repository Ref (refs/heads/main)
  'source_repository_identifier', // .15 Source Repository Identifier (stable id)
  'source_repository_owner_uri', // .16 Source Repository Owner URI
  'source_repository_owner_identifier', // .17 Source Repository Owner Identifier
  'build_config_uri', // .18 Build Config URI
  'build_config_digest', // .19 Build Config Digest
  'build_trigger', // .20 Build Trigger (push, manual, …)
  'run_invocation_uri', // .21 Run Invocation URI
  'source_repository_visibility_at_signing', // .22 Source Repository Visibility At Signing
  'deployment_environment', // .23 Deployment Environment
] as const;

export type BuildClaimName = (typeof BUILD_CLAIM_NAMES)[number];
export type BuildClaims = Partial<Record<BuildClaimName, string>>;

/** Longest value accepted for a build claim (they are URIs, digests and short words). */
export const MAX_BUILD_CLAIM_LENGTH = 2048;

export function isBuildClaimName(name: string): name is BuildClaimName {
  return (BUILD_CLAIM_NAMES as readonly string[]).includes(name);
}
