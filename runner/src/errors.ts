import { AirlockError } from '@airlock/core';

export type RunnerErrorCode =
  // the build spec (or the options naming it) is wrong: fix the input
  | 'RUNNER_SPEC_INVALID'
  | 'RUNNER_SPEC_UNREADABLE'
  | 'RUNNER_SOURCE_UNSUPPORTED'
  | 'RUNNER_SOURCE_COMMIT_NOT_FOUND'
  | 'RUNNER_OUT_DIR_NOT_EMPTY'
  // a builder type the schema accepts but this runner cannot run yet
  | 'RUNNER_BUILDER_NOT_IMPLEMENTED'
  // the build ran and failed
  | 'RUNNER_SOURCE_FAILED'
  | 'RUNNER_BUILD_FAILED'
  | 'RUNNER_BUILD_TIMEOUT'
  | 'RUNNER_OUTPUT_MISSING'
  | 'RUNNER_OUTPUT_INVALID'
  // the build hit a resource limit of the runner (memory, pids, disk)
  | 'RUNNER_RESOURCE_LIMIT'
  // the build tried to leave its sandbox (network)
  | 'RUNNER_HERMETICITY_VIOLATION'
  // a second build did not give the same outputs
  | 'RUNNER_REPRODUCIBILITY_FAILED'
  // the attestations could not be signed
  | 'RUNNER_SIGNING_FAILED'
  // the host lacks a tool (bwrap, git) or the mirror cannot be reached
  | 'RUNNER_TOOL_MISSING'
  | 'RUNNER_MIRROR_UNAVAILABLE'
  // the image registry cannot be reached (connection refused, timeout, TLS handshake): retrying may help
  | 'RUNNER_REGISTRY_UNAVAILABLE'
  // the registry was reached but the image or its signatures could not be pushed (auth, refused, digest mismatch)
  | 'RUNNER_IMAGE_PUSH_FAILED'
  // the node could not bind this build to its attested TPM state (issue 10 §4): nothing was dispatched
  | 'RUNNER_NODE_ATTESTATION_FAILED'
  // the identity agent holding the node's TPM did not answer
  | 'RUNNER_ATTESTOR_UNAVAILABLE'
  | 'RUNNER_INTERNAL';

export class RunnerError extends AirlockError<RunnerErrorCode> {}

/**
 * Process exit codes for `airlock run` (the CLI maps a RunnerError with `exitCodeFor`). 2 and 3 agree with the
 * CLI's shared USAGE/UNAVAILABLE codes; the build outcomes get their own range so pipelines can tell a broken
 * build from a hermeticity breach from a non-reproducible build.
 */
export const EXIT_CODES = {
  OK: 0,
  INTERNAL: 1,
  SPEC_ERROR: 2,
  UNAVAILABLE: 3,
  BUILD_FAILED: 10,
  HERMETICITY_VIOLATION: 11,
  REPRODUCIBILITY_FAILED: 12,
  SIGNING_FAILED: 13,
  NOT_IMPLEMENTED: 14,
  IMAGE_PUSH_FAILED: 15,
  RESOURCE_LIMIT: 16,
  NODE_ATTESTATION_FAILED: 17,
} as const;

export type RunnerExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

const EXIT_BY_CODE: Record<RunnerErrorCode, RunnerExitCode> = {
  RUNNER_SPEC_INVALID: EXIT_CODES.SPEC_ERROR,
  RUNNER_SPEC_UNREADABLE: EXIT_CODES.SPEC_ERROR,
  RUNNER_SOURCE_UNSUPPORTED: EXIT_CODES.SPEC_ERROR,
  RUNNER_SOURCE_COMMIT_NOT_FOUND: EXIT_CODES.SPEC_ERROR,
  RUNNER_OUT_DIR_NOT_EMPTY: EXIT_CODES.SPEC_ERROR,
  RUNNER_BUILDER_NOT_IMPLEMENTED: EXIT_CODES.NOT_IMPLEMENTED,
  RUNNER_SOURCE_FAILED: EXIT_CODES.BUILD_FAILED,
  RUNNER_BUILD_FAILED: EXIT_CODES.BUILD_FAILED,
  RUNNER_BUILD_TIMEOUT: EXIT_CODES.BUILD_FAILED,
  RUNNER_OUTPUT_MISSING: EXIT_CODES.BUILD_FAILED,
  RUNNER_OUTPUT_INVALID: EXIT_CODES.BUILD_FAILED,
  RUNNER_RESOURCE_LIMIT: EXIT_CODES.RESOURCE_LIMIT,
  RUNNER_HERMETICITY_VIOLATION: EXIT_CODES.HERMETICITY_VIOLATION,
  RUNNER_REPRODUCIBILITY_FAILED: EXIT_CODES.REPRODUCIBILITY_FAILED,
  RUNNER_SIGNING_FAILED: EXIT_CODES.SIGNING_FAILED,
  RUNNER_TOOL_MISSING: EXIT_CODES.UNAVAILABLE,
  RUNNER_MIRROR_UNAVAILABLE: EXIT_CODES.UNAVAILABLE,
  RUNNER_REGISTRY_UNAVAILABLE: EXIT_CODES.UNAVAILABLE,
  RUNNER_IMAGE_PUSH_FAILED: EXIT_CODES.IMAGE_PUSH_FAILED,
  RUNNER_NODE_ATTESTATION_FAILED: EXIT_CODES.NODE_ATTESTATION_FAILED,
  RUNNER_ATTESTOR_UNAVAILABLE: EXIT_CODES.UNAVAILABLE,
  RUNNER_INTERNAL: EXIT_CODES.INTERNAL,
};

/** The exit code for any thrown value: a RunnerError by its code, anything else INTERNAL. */
export function exitCodeFor(err: unknown): RunnerExitCode {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && Object.hasOwn(EXIT_BY_CODE, code)
    ? EXIT_BY_CODE[code as RunnerErrorCode]
    : EXIT_CODES.INTERNAL;
}
