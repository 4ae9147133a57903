export * from './errors.js';
export * from './types.js';
export * from './blob-store.js';
export { FsBlobStore, FS_BLOB_LAYOUT, type FsBlobStoreOptions } from './fs-blob-store.js';
export { SmallBlobCache } from './small-blob-cache.js';
export { VerifiedCache } from './verified-cache.js';
export {
  MirrorIndex,
  snapshotOrderError,
  type ApplySnapshotInput,
  type EntryQuery,
  type MirrorIndexOptions,
} from './mirror-index.js';
export {
  MirrorStore,
  ImportSession,
  MIRROR_STORE_LAYOUT,
  type CommitInput,
  type CommitStage,
  type MirrorStoreOptions,
  type RecoveryReport,
  type SharedIndex,
} from './mirror-store.js';
export { fsck, type FsckOptions, type FsckReport, type FsckCorruptBlob, type FsckMissingBlob } from './fsck.js';
export {
  normalizePypiName,
  isSnapshotId,
  validateEntry,
  validateSnapshotInfo,
  validateManifestBlobs,
} from './validate.js';
export { isSha256Hex, assertSha256Hex } from './digest-utils.js';
export type { ImportLockHolder } from './import-lock.js';
