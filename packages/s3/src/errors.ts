import { AirlockError } from '@airlock/core';

/**
 * Stable codes for failures of the S3 backend itself (the blob conditions stay CasErrors: CAS_NOT_FOUND, …).
 * Messages name the bucket, key and HTTP status, never a credential.
 */
export type S3ErrorCode =
  | 'S3_CONFIG_INVALID' // bad s3:// URL, endpoint or config file
  | 'S3_CREDENTIALS_MISSING' // no access key in the environment or the config file
  | 'S3_UNREACHABLE' // connection refused, DNS, timeout (CLI exit 3)
  | 'S3_UNAVAILABLE' // the server answered 5xx after the client's retries (CLI exit 3)
  | 'S3_ACCESS_DENIED' // 403: wrong credentials or no permission on the bucket
  | 'S3_BUCKET_MISSING' // NoSuchBucket
  | 'S3_REQUEST_FAILED'; // any other refusal

export class S3Error extends AirlockError<S3ErrorCode> {}
