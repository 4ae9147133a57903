/**
 * @airlock/runner: the hermetic CI runner. `runBuild(spec, options)` checks out an exact commit, builds it in a
 * bubblewrap sandbox whose only network endpoint is the mirror, classifies network attempts as hermeticity
 * violations, optionally rebuilds and compares, and writes SLSA v1 provenance + CycloneDX SBOM per output
 * (signed through the `AttestationSigner` port).
 */
export { RunnerError, EXIT_CODES, exitCodeFor, type RunnerErrorCode, type RunnerExitCode } from './errors.js';
export {
  loadSpec,
  loadSpecFile,
  DEFAULT_TIMEOUT_SECONDS,
  type BuildSpec,
  type SourceSpec,
  type BuilderSpec,
  type CommandBuilderSpec,
  type BazelBuilderSpec,
  type NixBuilderSpec,
  type ImageSpec,
  type LoadedSpec,
} from './spec.js';
export {
  runBuild,
  runnerVersion,
  SANDBOX_PATH,
  BUILD_LOG_NAME,
  REBUILD_LOG_NAME,
  type AttestationSigner,
  type RunOptions,
  type RunResult,
  type ArtifactResult,
  type ProgressEvent,
  type RunPhase,
  type NodeBinding,
} from './run.js';
export { approvedMirrors, selectMirror, type MirrorConfig } from './mirror-selection.js';
export { builderFor, CommandBuilder, type Builder, type BuildContext, type BuildPlan } from './builders.js';
export { BazelBuilder, bazelBuilderProblem } from './bazel-builder.js';
export { NixBuilder, nixBuilderProblem } from './nix-builder.js';
export {
  runSandboxed,
  bwrapArgs,
  sandboxCommand,
  isPlumbingPath,
  SANDBOX_SHELL_PATH,
  COMMAND_PROFILE,
  NESTED_SANDBOX_PROFILE,
  DEFAULT_BRIDGE_PORT,
  HOST_ETC_READONLY,
  SANDBOX_UID,
  SANDBOX_GID,
  type SandboxProfile,
  type SandboxLayout,
  type SandboxRunOptions,
  type SandboxRunResult,
  type SandboxTools,
} from './sandbox.js';
export {
  checkoutSource,
  treeDigest,
  resolveLocalRepo,
  type SourceCheckout,
  type SourceResolver,
} from './git-source.js';
export {
  DEFAULT_LIMITS,
  parseCores,
  parseCount,
  parseSize,
  type LimitExceeded,
  type ResourceLimitOptions,
} from './limits/index.js';
export { openMirrorEndpoint, type MirrorEndpoint, type MirrorFetch, type MirrorClientTls } from './mirror-endpoint.js';
export { resolveMirrorFetches, mergeDependencies, type ResolvedMirrorFetches } from './mirror-dependencies.js';
export {
  analyzeTrace,
  TraceAnalyzer,
  describeViolation,
  scanLogForViolations,
  straceArgs,
  netmonArgs,
  NETMON_SYSCALLS,
  NetmonAnalyzer,
  classifyNetmonEvent,
  type NetmonEvent,
  type RefusedSyscalls,
  type NetworkMonitorMode,
  type NetworkViolation,
  type ViolationKind,
} from './network-monitor.js';
export { NETMON_PATH, netmonProblem } from './host-tools.js';
export { collectOutputs, globToRegExp, type OutputFile } from './outputs.js';
export {
  compareOutputs,
  type OutputDifference,
  type ReproducibilityResult,
  type RebuildVariations,
} from './reproducibility.js';
export {
  AIRLOCK_BUILD_TYPE,
  SLSA_PROVENANCE_V1,
  validateMirrorDependencies,
  buildSbom,
  provenancePredicate,
  provenanceStatement,
  sbomStatement,
  type ProvenanceInput,
  type MirrorDependency,
  type ExternalParameters,
  type InternalParameters,
  type NodeAttestationParameters,
  type SandboxParameters,
} from './provenance.js';
export type { ToolchainEntry } from './toolchain.js';
export {
  checkImageRequest,
  cosignMaterialFromBundle,
  registryCredentialsFor,
  publishImage,
  selectImageFiles,
  DEFAULT_IMAGE_PATH,
  IMAGE_FILES,
  type ImageFileResult,
  type ImageReferrer,
  type ImageResult,
  type PublishImageInput,
  type RegistryOptions,
} from './image.js';
