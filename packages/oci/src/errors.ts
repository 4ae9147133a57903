import { AirlockError } from '@airlock/core';

/** Stable codes for every failure of layout building, registry I/O and signature attachment. */
export type OciErrorCode =
  | 'OCI_INPUT_INVALID'
  | 'OCI_INVALID_REFERENCE'
  | 'OCI_LAYOUT_EXISTS'
  | 'OCI_LAYOUT_INVALID'
  | 'OCI_LAYOUT_BLOB_MISSING'
  | 'OCI_LAYOUT_DIGEST_MISMATCH'
  | 'OCI_HTTP'
  | 'OCI_UNAUTHORIZED'
  | 'OCI_NOT_FOUND'
  | 'OCI_DIGEST_MISMATCH'
  | 'OCI_SIZE_LIMIT'
  | 'OCI_INVALID_MANIFEST'
  | 'OCI_PUSH_DIGEST_MISMATCH'
  | 'OCI_REFERRERS_CONFLICT'
  /** The caller's AbortSignal fired (a deadline): the exchange was cut off. */
  | 'OCI_ABORTED';

export class OciError extends AirlockError<OciErrorCode> {}
