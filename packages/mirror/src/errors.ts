import { AirlockError } from '@airlock/core';

export type MirrorErrorCode =
  | 'MIRROR_BAD_REQUEST'
  | 'MIRROR_URI_TOO_LONG'
  | 'MIRROR_NOT_FOUND'
  | 'MIRROR_METHOD_NOT_ALLOWED'
  | 'MIRROR_NOT_ACCEPTABLE'
  | 'MIRROR_RANGE_NOT_SATISFIABLE'
  | 'MIRROR_BLOB_CORRUPT'
  | 'MIRROR_BLOB_QUARANTINED'
  | 'MIRROR_BLOB_MISSING'
  | 'MIRROR_CONFIG_INVALID'
  | 'MIRROR_EXPORT_FAILED'
  | 'MIRROR_INTERNAL';

export class MirrorError extends AirlockError<MirrorErrorCode> {}

/** An error that maps to one HTTP status; the message is what the client reads (it must not leak internals). */
export class HttpError extends MirrorError {
  constructor(
    readonly status: number,
    code: MirrorErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}
