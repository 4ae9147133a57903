import { AirlockError } from '@airlock/core';

/** Stable codes for every failure of the blob store, the index and snapshot publication. */
export type CasErrorCode =
  | 'CAS_INVALID_DIGEST'
  | 'CAS_DIGEST_MISMATCH'
  | 'CAS_SIZE_MISMATCH'
  | 'CAS_SIZE_LIMIT'
  | 'CAS_NOT_FOUND'
  | 'CAS_QUARANTINED'
  | 'CAS_CORRUPT'
  | 'CAS_INVALID_RANGE'
  | 'CAS_INVALID_SOURCE'
  | 'INDEX_INVALID_INPUT'
  | 'INDEX_SCHEMA_UNSUPPORTED'
  | 'SNAPSHOT_INVALID'
  | 'SNAPSHOT_ROLLBACK'
  | 'SNAPSHOT_REPLAY'
  | 'SNAPSHOT_GAP'
  | 'IMPORT_BLOB_MISSING'
  | 'IMPORT_ENTRY_CONFLICT'
  | 'IMPORT_CLOSED'
  | 'IMPORT_LOCKED'
  | 'STORE_CLOSED'
  | 'STORE_MISSING'; // open({ create: false }) on a directory that holds no store

export class CasError extends AirlockError<CasErrorCode> {}
