/** Who made the manifest (`snapshot.producer`). Kept in step with mirror-sync/package.json by hand. */
export const PRODUCER = { name: 'airlock-mirror-sync', version: '0.1.0' } as const;

/** Defined once in @airlock/schemas; re-exported for mirror-sync's users. */
export {
  CYCLONEDX_PREDICATE_TYPE,
  TRANSFER_MANIFEST_MEDIA_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
} from '@airlock/schemas';
