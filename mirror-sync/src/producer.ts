/** Who made the manifest (`snapshot.producer`). Kept in step with mirror-sync/package.json by hand. */
export const PRODUCER = { name: 'airlock-mirror-sync', version: '0.1.0' } as const;

export const TRANSFER_MANIFEST_MEDIA_TYPE = 'application/vnd.airlock.transfer-manifest.v1+json';
export const TRANSFER_MANIFEST_PREDICATE_TYPE = 'https://airlock.dev/attestation/transfer-manifest/v1';
/** in-toto's registered predicate type for a CycloneDX BOM. https://github.com/in-toto/attestation/blob/main/spec/predicates/cyclonedx.md */
export const CYCLONEDX_PREDICATE_TYPE = 'https://cyclonedx.org/bom';
