/**
 * The mirror store backends an end-to-end test can run on, driven only through CLI flags: a directory, or blobs in
 * a real S3 server (Ceph radosgw, started here) with the index in a directory. `corrupt` damages one blob at rest
 * the way each backend can be damaged (a flipped byte in the file / an object replaced behind the mirror's back).
 */
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { radosgwProblem, startRadosgw, toolsAvailable, type RunningRadosgw } from '@airlock/testkit';
import { blobPath, type StoreRef } from './upstream-e2e.js';

export const STORE_BACKENDS = ['directory', 's3'] as const;
export type StoreBackendName = (typeof STORE_BACKENDS)[number];

export interface StoreBackend {
  name: StoreBackendName;
  ref: StoreRef;
  /** Flips one byte in the middle of a stored blob. */
  corrupt(sha256: string): Promise<void>;
  /** Names of every blob object/file in the store, published or not (the index is not consulted). */
  storedBlobs(): Promise<string[]>;
  /** Uploads in progress or left by a crash (temp files / S3 multipart uploads). */
  partialUploads(): Promise<number>;
  stop(): Promise<void>;
}

/** Whether the backend can run here (skip with a reason, or fail under AIRLOCK_REQUIRE_TOOLS=1). */
export function storeBackendAvailable(name: StoreBackendName): boolean {
  return name === 'directory' || toolsAvailable('mirror e2e on S3 (real Ceph radosgw)', [radosgwProblem()]);
}

const flip = (b: Buffer): Buffer => {
  b[b.length >> 1] = b[b.length >> 1]! ^ 0x01;
  return b;
};

export async function startStoreBackend(name: StoreBackendName, root: string): Promise<StoreBackend> {
  if (name === 'directory') {
    const dir = join(root, 'store');
    return {
      name,
      ref: dir,
      corrupt: async (sha256) => {
        const file = blobPath(dir, sha256);
        chmodSync(file, 0o644);
        writeFileSync(file, flip(readFileSync(file)));
      },
      storedBlobs: async () => {
        const shards = join(dir, 'blobs', 'sha256');
        if (!existsSync(shards)) return [];
        return readdirSync(shards)
          .flatMap((d) => readdirSync(join(shards, d)))
          .sort();
      },
      partialUploads: async () => (existsSync(join(dir, 'tmp')) ? readdirSync(join(dir, 'tmp')).length : 0),
      stop: async () => undefined,
    };
  }
  return startS3Backend(root);
}

async function startS3Backend(root: string): Promise<StoreBackend> {
  const rgw: RunningRadosgw = await startRadosgw();
  // The CLI (and its mirror workers) read the endpoint and credentials from the environment they inherit.
  const saved = Object.fromEntries(Object.keys(rgw.env()).map((k) => [k, process.env[k]]));
  Object.assign(process.env, rgw.env());
  const bucket = 'airlock-e2e';
  const prefix = 'mirror/';
  const raw = new S3Client({
    endpoint: rgw.endpoint,
    region: rgw.region,
    forcePathStyle: true,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    name: 's3',
    ref: { args: ['--store', `s3://${bucket}/${prefix}`, '--index', join(root, 'index')] },
    corrupt: async (sha256) => {
      const Key = `${prefix}blobs/sha256/${sha256}`;
      const got = await raw.send(new GetObjectCommand({ Bucket: bucket, Key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key, Body: flip(bytes) }));
    },
    storedBlobs: async () => {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const page = await raw
          .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}blobs/`, ContinuationToken: token }))
          .catch(noBucket({ Contents: [], IsTruncated: false, NextContinuationToken: undefined }));
        out.push(...(page.Contents ?? []).map((o) => o.Key!.slice(o.Key!.lastIndexOf('/') + 1)));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    partialUploads: async () => {
      const out = await raw
        .send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))
        .catch(noBucket({ Uploads: [] }));
      return out.Uploads?.length ?? 0;
    },
    stop: async () => {
      raw.destroy();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await rgw.stop();
    },
  };
}

/** Before the first `import --create` the bucket does not exist yet: it holds nothing. */
function noBucket<T>(empty: T): (err: unknown) => T {
  return (err) => {
    if ((err as { name?: string }).name === 'NoSuchBucket') return empty;
    throw err;
  };
}
