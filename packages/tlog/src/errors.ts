import { AirlockError } from '@airlock/core';

/** Stable error codes of @airlock/tlog; callers switch on `code`, humans read `message`. */
export type TlogErrorCode =
  // proposed entries (HTTP 400 unless noted)
  | 'TLOG_INVALID_ENTRY'
  | 'TLOG_UNSUPPORTED_ENTRY'
  | 'TLOG_SIGNATURE_INVALID'
  | 'TLOG_ENTRY_EXISTS' // 409
  | 'TLOG_ENTRY_NOT_FOUND' // 404
  | 'TLOG_BAD_REQUEST'
  | 'TLOG_PAYLOAD_TOO_LARGE' // 413
  | 'TLOG_INVALID_TREE_SIZE'
  // the log itself
  | 'TLOG_INVALID_OPTION'
  | 'TLOG_STORE_LOCKED'
  | 'TLOG_STORE_CORRUPT'
  | 'TLOG_KEY_MISMATCH'
  | 'TLOG_SIGNING_KEY_INVALID'
  | 'TLOG_SIGNING_KEY_PERMISSIONS' // the key file is group/world-readable or not owned by the log's user
  | 'TLOG_CLOSED'
  | 'TLOG_VERIFIER_FAILED' // a verifier thread died (internal; the request may be retried)
  | 'TLOG_PUBLISH_FAILED' // a durable batch's onBatchCommitted hook (tiles) failed; appends stop
  | 'TLOG_STORE_FAILED' // a written batch could not be made durable (fsync failed); appends stop
  // client-side verification
  | 'TLOG_CHECKPOINT_MALFORMED'
  | 'TLOG_CHECKPOINT_SIGNATURE_INVALID'
  | 'TLOG_PROOF_INVALID'
  | 'TLOG_ENTRY_VERIFICATION_FAILED'
  // client
  | 'TLOG_HTTP_ERROR'
  | 'TLOG_BAD_RESPONSE'
  // monitor
  | 'TLOG_MONITOR_FORK'
  | 'TLOG_MONITOR_SHRINK'
  | 'TLOG_MONITOR_BAD_SIGNATURE'
  | 'TLOG_MONITOR_KEY_MISMATCH'
  | 'TLOG_MONITOR_ORIGIN_MISMATCH'
  | 'TLOG_MONITOR_STATE_INVALID'
  | 'TLOG_MONITOR_UNREACHABLE'
  | 'TLOG_MONITOR_BAD_RESPONSE';

export class TlogError extends AirlockError<TlogErrorCode> {}

/** HTTP status for an error code raised while serving a request (anything unknown is a 500). */
export function httpStatusFor(code: string): number {
  switch (code) {
    case 'TLOG_INVALID_ENTRY':
    case 'TLOG_UNSUPPORTED_ENTRY':
    case 'TLOG_SIGNATURE_INVALID':
    case 'TLOG_BAD_REQUEST':
    case 'TLOG_INVALID_TREE_SIZE':
      return 400;
    case 'TLOG_ENTRY_NOT_FOUND':
      return 404;
    case 'TLOG_ENTRY_EXISTS':
      return 409;
    case 'TLOG_PAYLOAD_TOO_LARGE':
      return 413;
    case 'TLOG_CLOSED':
      return 503;
    default:
      return 500;
  }
}
