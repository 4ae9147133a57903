import type { S3Client } from '@aws-sdk/client-s3';
import { s3Sdk } from './sdk.js';
import { createHash } from 'node:crypto';
import type { S3Connection, S3Location } from './config.js';
import { S3Error } from './errors.js';
import { isStatus, makeClient, toS3Error } from './s3-blob-store.js';

const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Write-once objects under `s3://bucket/prefix/<path>` plus one replaceable `checkpoint`: the shape of the
 * transparency log's TileStore (`put`, `putCheckpoint`, `get`), so tiles can live in the mirror's bucket and be
 * read without the log server. `put` is a conditional PUT (`If-None-Match: *`); a second put of the same path must
 * carry the same bytes, else S3_WRITE_CONFLICT.
 */
export class S3TileStore {
  private readonly client: S3Client;
  private readonly endpoint: string;

  constructor(
    readonly location: S3Location,
    connection: S3Connection,
    readonly checkpointPath = 'checkpoint',
  ) {
    this.client = makeClient(connection, 16);
    this.endpoint = connection.endpoint ?? `AWS S3 (${connection.region})`;
  }

  async put(path: string, bytes: Uint8Array): Promise<void> {
    const key = this.keyOf(path);
    try {
      await this.send('PutObject', key, () =>
        this.client.send(
          new (s3Sdk().PutObjectCommand)({
            Bucket: this.location.bucket,
            Key: key,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ContentMD5: createHash('md5').update(bytes).digest('base64'),
            IfNoneMatch: '*',
          }),
        ),
      );
      return;
    } catch (err) {
      if (!isStatus(err, 412)) throw err;
    }
    const existing = await this.get(path);
    if (existing && existing.equals(bytes)) return;
    throw new S3Error('S3_WRITE_CONFLICT', `${this.where(key)} already exists with different contents`, {
      details: { key },
    });
  }

  async putCheckpoint(bytes: Uint8Array): Promise<void> {
    const key = this.keyOf(this.checkpointPath);
    await this.send('PutObject', key, () =>
      this.client.send(
        new (s3Sdk().PutObjectCommand)({
          Bucket: this.location.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentMD5: createHash('md5').update(bytes).digest('base64'),
        }),
      ),
    );
  }

  async get(path: string): Promise<Buffer | undefined> {
    const key = this.keyOf(path);
    try {
      const out = await this.send('GetObject', key, () =>
        this.client.send(new (s3Sdk().GetObjectCommand)({ Bucket: this.location.bucket, Key: key })),
      );
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  close(): void {
    this.client.destroy();
  }

  private keyOf(path: string): string {
    const segments = path.split('/');
    if (path.length > 512 || segments.some((s) => !PATH_SEGMENT.test(s) || s === '.' || s === '..'))
      throw new S3Error('S3_CONFIG_INVALID', `not an object path: ${JSON.stringify(path.slice(0, 100))}`);
    return `${this.location.prefix}${path}`;
  }

  private where(key: string): string {
    return `s3://${this.location.bucket}/${key}`;
  }

  private async send<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toS3Error(err, op, this.where(key), this.endpoint);
    }
  }
}
