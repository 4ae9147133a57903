import { AirlockError } from '@airlock/core';

export type ImportErrorCode =
  | 'IMPORT_ARCHIVE_UNSAFE' // absolute path, `..`, link, device, directory, extension header, duplicate name, truncated
  | 'IMPORT_ARCHIVE_NONCANONICAL' // a header, padding or end block not byte-identical to what the sync job writes; trailing data
  | 'IMPORT_UNEXPECTED_ENTRY' // a file the manifest does not name, or out of order
  | 'IMPORT_TOO_LARGE' // an entry over the configured limit
  | 'IMPORT_MANIFEST_INVALID' // not JSON or not the schema
  | 'IMPORT_SIGNATURE_INVALID' // a Sigstore bundle does not verify, or was signed by another identity
  | 'IMPORT_STATEMENT_MISMATCH' // the signed statement does not cover exactly this manifest and these blobs
  | 'IMPORT_BLOB_MISMATCH' // a blob's bytes are not what its name and the manifest say
  | 'IMPORT_BLOB_MISSING' // the manifest lists a blob the archive does not carry
  | 'IMPORT_SEQUENCE' // rollback, replay or gap against the store's head
  | 'IMPORT_SNAPSHOT_EXPIRED' // the signed createdAt is older than --max-snapshot-age (or dated in the future)
  | 'IMPORT_SBOM_MISMATCH' // the SBOM is missing, extra, or not the one the signed manifest commits to
  | 'IMPORT_STORE'; // the store refused the commit for another reason

export class ImportError extends AirlockError<ImportErrorCode> {}
