/**
 * @airlock/s3: the mirror's BlobStore on any S3-compatible object store (`--store s3://bucket/prefix`), with the
 * endpoint and credentials from the environment or an operator config file.
 */
export * from './errors.js';
export * from './config.js';
export { S3BlobStore, S3_BLOB_LAYOUT, toS3Error, type S3BlobStoreOptions } from './s3-blob-store.js';
export { openS3BlobStore, type OpenS3BlobStoreOptions } from './open.js';
