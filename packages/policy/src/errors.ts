import { AirlockError } from '@airlock/core';

export type PolicyErrorCode =
  /** The policy file cannot be read or parsed (YAML/JSON syntax). */
  | 'POLICY_UNREADABLE'
  /** The policy does not match policy.v1.schema.json or a check the schema cannot express. */
  | 'POLICY_INVALID'
  /** A JSON Schema shipped with the repository cannot be loaded (installation problem). */
  | 'POLICY_SCHEMA_UNAVAILABLE'
  /** An OSV advisory file is not valid OSV JSON. */
  | 'POLICY_ADVISORY_INVALID'
  /** A mirror snapshot (transfer manifest and its bundle) does not verify or is inconsistent. */
  | 'POLICY_SNAPSHOT_INVALID'
  /** A VSA is malformed or not a SLSA VSA v1 statement. */
  | 'POLICY_VSA_INVALID'
  /** A well-formed VSA about another artifact, another policy, another verifier or a failed verification. */
  | 'POLICY_VSA_MISMATCH'
  /** An input of a verification is unusable: a bundle or trusted root that is not JSON, an unreadable key file. */
  | 'POLICY_INPUT_INVALID'
  /** The image reference names no manifest (unknown tag), or a tag and a digest that disagree. */
  | 'POLICY_IMAGE_NOT_FOUND'
  /** The registry answered with an error or with content that does not check out (digest, size, manifest). */
  | 'POLICY_REGISTRY_FAILED'
  /** Nothing answered at the registry's address (connection refused, reset, timed out). */
  | 'POLICY_REGISTRY_UNAVAILABLE'
  /** The caller's AbortSignal fired before the verification finished. */
  | 'POLICY_ABORTED';

export class PolicyError extends AirlockError<PolicyErrorCode> {}
