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
  /** A running mirror's lookup API cannot be reached (connection, timeout, HTTP 5xx). */
  | 'POLICY_MIRROR_UNREACHABLE'
  /** A running mirror answered something that is not the lookup API's documents (wrong shape, too large). */
  | 'POLICY_MIRROR_INVALID'
  /** `--mirror` is not an http(s) URL without credentials. */
  | 'POLICY_MIRROR_URL_INVALID'
  /** A VSA is malformed or not a SLSA VSA v1 statement. */
  | 'POLICY_VSA_INVALID'
  /** A well-formed VSA about another artifact, another policy, another verifier or a failed verification. */
  | 'POLICY_VSA_MISMATCH';

export class PolicyError extends AirlockError<PolicyErrorCode> {}
