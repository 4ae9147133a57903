import { AirlockError } from '@airlock/core';

/**
 * Error codes of the sync job. Parse-time refusals (`SYNC_UNPINNED`, `SYNC_INPUT_INVALID`) happen before any
 * download; per-entry failures are gathered into one `SYNC_ENTRIES_FAILED` so a run reports every bad entry.
 */
export type SyncErrorCode =
  | 'SYNC_INPUT_INVALID' // malformed input file (syntax, schema, unsupported construct)
  | 'SYNC_UNPINNED' // an entry without an exact version or a content hash
  | 'SYNC_INPUT_CONFLICT' // two inputs name the same thing with different content
  | 'SYNC_FETCH_FAILED' // HTTP error / network failure after retries
  | 'SYNC_HASH_MISMATCH' // upstream bytes do not match the pin
  | 'SYNC_SIZE_LIMIT' // body larger than the configured cap
  | 'SYNC_UPSTREAM_INVALID' // registry/index metadata malformed or inconsistent with the pin
  | 'SYNC_ENTRIES_FAILED' // aggregate: one or more entries failed
  | 'SYNC_STATE_INVALID' // state file malformed, or sequence/previous options inconsistent
  | 'SYNC_SCHEMA_INVALID' // a JSON Schema file is missing or the produced manifest fails its own schema
  | 'SYNC_SIGN_FAILED' // the signer or SBOM port threw
  | 'SYNC_BUNDLE_FAILED' // writing the tar failed
  | 'SYNC_OPTIONS_INVALID'
  | 'SYNC_NO_REGISTRY' // npm entries without `resolved` and no --npm-registry / .npmrc registry to resolve them
  | 'SYNC_EMPTY' // the inputs pin nothing (refused unless allowEmpty)
  | 'SYNC_OUTPUT_UNWRITABLE' // the bundle cannot be written where `out` says (checked before any download)
  | 'SYNC_PLANE_UNREACHABLE'; // the preflight (CA/log reachability) failed before any download

export class SyncError extends AirlockError<SyncErrorCode> {}

/** One failed entry as reported inside `SYNC_ENTRIES_FAILED` (`details.failures`). */
export interface EntryFailure {
  entry: string;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export function toEntryFailure(entry: string, err: unknown): EntryFailure {
  if (err instanceof AirlockError) {
    return { entry, code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
  }
  return { entry, code: 'SYNC_FETCH_FAILED', message: err instanceof Error ? err.message : String(err) };
}
