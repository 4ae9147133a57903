import { parseS3Url, resolveS3Connection } from './config.js';
import { S3BlobStore, type S3BlobStoreOptions } from './s3-blob-store.js';

export interface OpenS3BlobStoreOptions extends Omit<S3BlobStoreOptions, 'location' | 'connection'> {
  /** JSON config file with endpoint/region/credentials (wins over the environment). */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
}

/** `s3://bucket/prefix` + operator configuration → a connected store (bucket checked, or created with createBucket). */
export function openS3BlobStore(url: string, options: OpenS3BlobStoreOptions = {}): Promise<S3BlobStore> {
  const { configFile, env, ...rest } = options;
  return S3BlobStore.open({
    ...rest,
    location: parseS3Url(url),
    connection: resolveS3Connection({ ...(configFile !== undefined ? { configFile } : {}), ...(env ? { env } : {}) }),
  });
}
