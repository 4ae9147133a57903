import { AirlockError } from '@airlock/core';

/** Stable codes for every failure of the admission controller (the message names the image or field). */
export type AdmissionErrorCode =
  /** The admission policy file cannot be read or parsed (YAML/JSON syntax). */
  | 'ADMISSION_POLICY_UNREADABLE'
  /** The admission policy does not match admission-policy.v1.schema.json or a check the schema cannot express. */
  | 'ADMISSION_POLICY_INVALID'
  /** The controller configuration (files, registries, credentials) is unusable. */
  | 'ADMISSION_CONFIG_INVALID'
  /** The AdmissionRequest's object has a shape airlock cannot read (a wrong type where an image lives). */
  | 'ADMISSION_OBJECT_INVALID'
  /** An image reference in the object is not a valid reference. */
  | 'ADMISSION_IMAGE_INVALID'
  /** The registry answered with an error or could not be reached. */
  | 'ADMISSION_REGISTRY_UNAVAILABLE'
  /** The image names a registry host the operator did not configure (a refusal: nothing was contacted). */
  | 'ADMISSION_REGISTRY_NOT_CONFIGURED'
  /** The tag or digest is not in the registry. */
  | 'ADMISSION_IMAGE_NOT_FOUND'
  /** The internal deadline passed (the request was aborted). */
  | 'ADMISSION_DEADLINE'
  /** Verification ran and failed (signature, identity or a policy rule). */
  | 'ADMISSION_VERIFICATION_FAILED'
  /** A toolchain file of a workspace cannot be read or its provenance does not verify. */
  | 'ADMISSION_TOOLCHAIN_INVALID';

export class AdmissionError extends AirlockError<AdmissionErrorCode> {}
