import { createRequire } from 'node:module';
import type * as S3Sdk from '@aws-sdk/client-s3';

// The AWS SDK (about 500 ms of module loading) loads when an s3:// store is opened, not at import: every `airlock`
// call that registers a command with an s3:// option imports this package, and most never open a bucket.
const load = createRequire(import.meta.url);
let loaded: typeof S3Sdk | undefined;

export const s3Sdk = (): typeof S3Sdk => (loaded ??= load('@aws-sdk/client-s3') as typeof S3Sdk);
