import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import { s3Sdk } from './sdk.js';
import {
  assertSha256Hex,
  CasError,
  isSha256Hex,
  SmallBlobCache,
  type BlobSource,
  type BlobStat,
  type BlobStore,
  type ByteRange,
  type PutExpectation,
  type PutOptions,
  type PutResult,
  type QuarantineRecord,
  type VerifiedRead,
  type VerifyResult,
} from '@airlock/cas';
import type { S3Connection, S3Location } from './config.js';
import { S3Error } from './errors.js';

export interface S3BlobStoreOptions {
  location: S3Location;
  connection: S3Connection;
  /** Create the bucket when it does not exist (`mirror import --create`); otherwise a missing bucket is an error. */
  createBucket?: boolean;
  /** Largest blob `put` accepts (default 16 GiB). */
  maxBlobSize?: number;
  /** Multipart part size (default 8 MiB; S3 needs ≥ 5 MiB for all but the last part). */
  partSize?: number;
  /** Blobs above this size are uploaded in parts (default 16 MiB; one PUT below). */
  multipartThreshold?: number;
  /** Parts uploaded at once (default 4). */
  partConcurrency?: number;
  /** Blobs up to this size are read whole, verified in memory and may be cached (default 1 MiB). */
  smallBlobBytes?: number;
  /** Memory budget for verified small blobs (default 64 MiB; 0 disables). */
  memoryCacheBytes?: number;
  /** How many verified (blob, object version) pairs are remembered (default 200 000). */
  verifiedCacheEntries?: number;
  /** Connections kept to the endpoint (default 64). */
  maxSockets?: number;
}

/** Object keys below the prefix. Blobs are flat: S3 has no directories to shard. */
export const S3_BLOB_LAYOUT = {
  blobs: 'blobs/sha256/',
  quarantine: 'quarantine/',
} as const;

const DEFAULT_MAX_BLOB_SIZE = 16 * 1024 ** 3;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;

/**
 * BlobStore on an S3-compatible object store (tested against Ceph radosgw). Write-once: a single PUT carries
 * `If-None-Match: *` (the server refuses to replace an existing key, 412); a large blob goes up in parts whose
 * sha256 is checked before CompleteMultipartUpload (aborted otherwise). Some servers (radosgw Pacific) ignore
 * `If-None-Match` on Complete; the name is the digest of verified bytes, so a racing Complete can only write the
 * same bytes. Reads are verified against the name; a positive answer is cached per object version (ETag,
 * Last-Modified and size, as the server reports them on every read), so a replaced object is hashed again.
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly endpointLabel: string;
  private readonly maxBlobSize: number;
  private readonly partSize: number;
  private readonly multipartThreshold: number;
  private readonly partConcurrency: number;
  private readonly smallBlobBytes: number;
  private readonly verified: BoundedMap<string>;
  private readonly memory: SmallBlobCache;

  private constructor(options: S3BlobStoreOptions) {
    this.bucket = options.location.bucket;
    this.prefix = options.location.prefix;
    this.client = makeClient(options.connection, options.maxSockets ?? 64);
    this.endpointLabel = options.connection.endpoint ?? `AWS S3 (${options.connection.region})`;
    this.maxBlobSize = options.maxBlobSize ?? DEFAULT_MAX_BLOB_SIZE;
    this.partSize = Math.max(options.partSize ?? 8 * 1024 * 1024, MIN_PART_SIZE);
    this.multipartThreshold = Math.max(options.multipartThreshold ?? 16 * 1024 * 1024, this.partSize);
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 4);
    this.smallBlobBytes = options.smallBlobBytes ?? 1024 * 1024;
    this.verified = new BoundedMap(options.verifiedCacheEntries ?? 200_000);
    this.memory = new SmallBlobCache(options.memoryCacheBytes ?? 64 * 1024 * 1024);
  }

  /** Connects and checks the bucket (S3_BUCKET_MISSING, S3_ACCESS_DENIED, S3_UNREACHABLE otherwise). */
  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(options);
    try {
      await store.checkBucket(options.createBucket ?? false);
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /** `s3://bucket/prefix`, for messages. */
  get url(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  close(): void {
    this.client.destroy();
  }

  keyOf(sha256: string): string {
    assertSha256Hex(sha256);
    return `${this.prefix}${S3_BLOB_LAYOUT.blobs}${sha256}`;
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined;
  }

  async stat(sha256: string): Promise<BlobStat | undefined> {
    const head = await this.head(this.keyOf(sha256));
    return head ? { size: head.size } : undefined;
  }

  async openRead(sha256: string, range?: ByteRange): Promise<Readable> {
    const key = this.keyOf(sha256);
    if (range) checkRangeShape(range);
    const got = await this.get(key, { ...(range ? { range } : {}) });
    if (got === 'missing') throw await this.missingError(sha256);
    if (got === 'changed' || got === 'unsatisfiable') throw rangeError(range, got);
    return got.body;
  }

  async openVerifiedRead(sha256: string, range?: ByteRange): Promise<VerifiedRead> {
    const key = this.keyOf(sha256);
    if (range) checkRangeShape(range);
    if (this.memory.has(sha256)) {
      const head = await this.head(key);
      if (!head) {
        this.forget(sha256);
        throw await this.missingError(sha256);
      }
      const bytes = this.memory.get(sha256, head.token);
      if (bytes) return bufferedRead(sha256, bytes, range);
      this.forget(sha256);
    }
    const token = this.verified.get(sha256);
    if (token !== undefined) {
      const got = await this.get(key, { ...(range ? { range } : {}), ifMatch: etagOf(token) });
      if (got === 'missing') {
        this.forget(sha256);
        throw await this.missingError(sha256);
      }
      if (got === 'unsatisfiable') throw rangeError(range, got);
      if (got !== 'changed' && got.token === token) return streamRead(sha256, got.size, range, got.body);
      if (got !== 'changed') got.body.destroy();
      this.forget(sha256); // replaced since it was verified: hash it again
    }
    return this.verifyThenRead(sha256, range);
  }

  async verify(sha256: string, options: { force?: boolean } = {}): Promise<VerifyResult> {
    const key = this.keyOf(sha256);
    if (!options.force) {
      const head = await this.head(key);
      if (!head) throw await this.missingError(sha256);
      if (this.verified.get(sha256) === head.token) return { sha256, ok: true, size: head.size, cached: true };
    }
    const got = await this.get(key);
    if (got === 'missing') throw await this.missingError(sha256);
    if (got === 'changed' || got === 'unsatisfiable') throw rangeError(undefined, got);
    const actual = await hashStream(got.body);
    if (actual !== sha256) {
      this.forget(sha256);
      await this.quarantine(sha256, `verify: content hashes to sha256:${actual}`);
      return { sha256, ok: false, size: got.size, actual, cached: false };
    }
    this.verified.set(sha256, got.token);
    return { sha256, ok: true, size: got.size, cached: false };
  }

  async put(source: BlobSource, expected?: PutExpectation, options: PutOptions = {}): Promise<PutResult> {
    checkExpectation(expected);
    const limit = Math.min(options.maxSize ?? this.maxBlobSize, this.maxBlobSize);
    const reader = new SizedReader(source, expected, limit);
    const head = await reader.readUpTo(this.multipartThreshold + 1);
    if (head.done) return this.putSingle(head.bytes, reader, options);
    if (expected === undefined) return this.putSpooled(head.bytes, reader, limit, options);
    return this.putMultipart(head.bytes, reader, expected.sha256, options);
  }

  async quarantine(sha256: string, reason: string): Promise<boolean> {
    const key = this.keyOf(sha256);
    this.forget(sha256);
    const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
    const dir = `${this.prefix}${S3_BLOB_LAYOUT.quarantine}${sha256}/`;
    let kept = true;
    try {
      await this.call('CopyObject', key, () =>
        this.client.send(
          new (s3Sdk().CopyObjectCommand)({
            Bucket: this.bucket,
            Key: `${dir}${stamp}.blob`,
            CopySource: `${this.bucket}/${encodeURIComponent(key)}`,
          }),
        ),
      );
    } catch (err) {
      if (isStatus(err, 404)) return false;
      // Too big for one CopyObject (> 5 GiB): the record still says what happened; the bytes go.
      if (!isStatus(err, 400)) throw err;
      kept = false;
    }
    const record: QuarantineRecord & { bytesKept: boolean } = {
      sha256,
      reason,
      quarantinedAt: new Date().toISOString(),
      bytesKept: kept,
    };
    await this.call('PutObject', `${dir}${stamp}.json`, () =>
      this.client.send(
        new (s3Sdk().PutObjectCommand)({
          Bucket: this.bucket,
          Key: `${dir}${stamp}.json`,
          Body: `${JSON.stringify(record)}\n`,
          ContentType: 'application/json',
        }),
      ),
    );
    await this.call('DeleteObject', key, () =>
      this.client.send(new (s3Sdk().DeleteObjectCommand)({ Bucket: this.bucket, Key: key })),
    );
    return true;
  }

  async isQuarantined(sha256: string): Promise<boolean> {
    assertSha256Hex(sha256);
    const prefix = `${this.prefix}${S3_BLOB_LAYOUT.quarantine}${sha256}/`;
    const out = await this.call('ListObjectsV2', prefix, () =>
      this.client.send(new (s3Sdk().ListObjectsV2Command)({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 })),
    );
    return (out.KeyCount ?? out.Contents?.length ?? 0) > 0;
  }

  /** Why and when a blob was quarantined (one record per event, oldest first). */
  async quarantineRecords(sha256: string): Promise<QuarantineRecord[]> {
    assertSha256Hex(sha256);
    const prefix = `${this.prefix}${S3_BLOB_LAYOUT.quarantine}${sha256}/`;
    const out: QuarantineRecord[] = [];
    for await (const key of this.listKeys(prefix)) {
      if (!key.endsWith('.json')) continue;
      const got = await this.get(key);
      if (typeof got === 'string') continue;
      const text = Buffer.concat(await collect(got.body)).toString('utf8');
      const r = JSON.parse(text) as Record<string, unknown>;
      out.push({ sha256, reason: String(r['reason'] ?? ''), quarantinedAt: String(r['quarantinedAt'] ?? '') });
    }
    return out;
  }

  async delete(sha256: string): Promise<boolean> {
    const key = this.keyOf(sha256);
    this.forget(sha256);
    if (!(await this.head(key))) return false;
    await this.call('DeleteObject', key, () =>
      this.client.send(new (s3Sdk().DeleteObjectCommand)({ Bucket: this.bucket, Key: key })),
    );
    return true;
  }

  async *list(): AsyncIterable<string> {
    const prefix = `${this.prefix}${S3_BLOB_LAYOUT.blobs}`;
    // ListObjectsV2 returns keys in UTF-8 byte order: ascending hex.
    for await (const key of this.listKeys(prefix)) {
      const name = key.slice(prefix.length);
      if (isSha256Hex(name)) yield name;
    }
  }

  /** Aborts multipart uploads left under the blob prefix by a crashed put. */
  async removePartialUploads(): Promise<number> {
    const prefix = `${this.prefix}${S3_BLOB_LAYOUT.blobs}`;
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call('ListMultipartUploads', prefix, () =>
        this.client.send(
          new (s3Sdk().ListMultipartUploadsCommand)({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        await this.abortUpload(u.Key, u.UploadId);
        removed++;
      }
      if (!page.IsTruncated) return removed;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  // ---- put paths ----

  private async putSingle(bytes: Buffer, reader: SizedReader, options: PutOptions): Promise<PutResult> {
    const sha256 = reader.finish();
    const key = this.keyOf(sha256);
    const md5 = createHash('md5').update(bytes).digest('base64');
    for (let attempt = 0; attempt < 3; attempt++) {
      await options.beforePublish?.(sha256);
      try {
        await this.call('PutObject', key, () =>
          this.client.send(
            new (s3Sdk().PutObjectCommand)({
              Bucket: this.bucket,
              Key: key,
              Body: bytes,
              ContentLength: bytes.length,
              ContentMD5: md5,
              IfNoneMatch: '*',
            }),
          ),
        );
        return { sha256, size: bytes.length, created: true };
      } catch (err) {
        if (!isStatus(err, 412)) throw err;
      }
      // Write-once: the key exists. Keep a good copy; a corrupt one is quarantined by verify and replaced.
      if (await this.existingIsGood(sha256)) return { sha256, size: bytes.length, created: false };
    }
    throw publishError(sha256);
  }

  private async putMultipart(
    first: Buffer,
    reader: SizedReader,
    sha256: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const key = this.keyOf(sha256);
    const created = await this.call('CreateMultipartUpload', key, () =>
      this.client.send(new (s3Sdk().CreateMultipartUploadCommand)({ Bucket: this.bucket, Key: key })),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new S3Error('S3_REQUEST_FAILED', `CreateMultipartUpload ${this.where(key)}: no upload id`);
    try {
      const parts = await this.uploadParts(key, uploadId, first, reader);
      const actual = reader.finish(); // throws CAS_DIGEST_MISMATCH / CAS_SIZE_MISMATCH: caught below, upload aborted
      await options.beforePublish?.(actual);
      // Write-once where the server does not enforce If-None-Match on Complete: keep an intact existing copy.
      if ((await this.head(key)) && (await this.existingIsGood(sha256))) {
        await this.abortUpload(key, uploadId);
        return { sha256, size: reader.size, created: false };
      }
      try {
        await this.call('CompleteMultipartUpload', key, () =>
          this.client.send(
            new (s3Sdk().CompleteMultipartUploadCommand)({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
              IfNoneMatch: '*',
            }),
          ),
        );
      } catch (err) {
        if (!isStatus(err, 412)) throw err;
        if (!(await this.existingIsGood(sha256))) throw publishError(sha256);
        await this.abortUpload(key, uploadId);
        return { sha256, size: reader.size, created: false };
      }
      return { sha256, size: reader.size, created: true };
    } catch (err) {
      await this.abortUpload(key, uploadId).catch(() => undefined);
      throw err;
    }
  }

  private async uploadParts(
    key: string,
    uploadId: string,
    first: Buffer,
    reader: SizedReader,
  ): Promise<CompletedPart[]> {
    const parts: CompletedPart[] = [];
    const inFlight: Promise<void>[] = [];
    let pending = first;
    let done = false;
    let partNumber = 0;
    while (!done || pending.length > 0) {
      if (!done && pending.length < this.partSize) {
        const next = await reader.readUpTo(this.partSize - pending.length);
        pending = pending.length === 0 ? next.bytes : Buffer.concat([pending, next.bytes]);
        done = next.done;
        continue;
      }
      const body = pending.subarray(0, this.partSize);
      pending = pending.subarray(body.length);
      const number = ++partNumber;
      if (number > MAX_PARTS) throw new CasError('CAS_SIZE_LIMIT', `blob needs more than ${MAX_PARTS} parts`);
      const upload = this.uploadPart(key, uploadId, number, body).then((etag) => {
        parts[number - 1] = { PartNumber: number, ETag: etag };
      });
      // Awaited below; until then a failed part must not count as an unhandled rejection (it would end the process).
      upload.catch(() => undefined);
      inFlight.push(upload);
      if (inFlight.length >= this.partConcurrency) await inFlight.shift();
    }
    await Promise.all(inFlight);
    return parts;
  }

  private async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    const out = await this.call('UploadPart', key, () =>
      this.client.send(
        new (s3Sdk().UploadPartCommand)({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ContentMD5: createHash('md5').update(body).digest('base64'),
        }),
      ),
    );
    if (!out.ETag)
      throw new S3Error('S3_REQUEST_FAILED', `UploadPart ${this.where(key)}: no ETag for part ${partNumber}`);
    return out.ETag;
  }

  /** A large blob whose digest the caller does not know: hash it into a local temp file, then upload that. */
  private async putSpooled(first: Buffer, reader: SizedReader, limit: number, options: PutOptions): Promise<PutResult> {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-s3-spool-'));
    try {
      const file = join(dir, 'blob');
      const fh = await open(file, 'wx', 0o600);
      try {
        let chunk: { bytes: Buffer; done: boolean } = { bytes: first, done: false };
        for (;;) {
          await fh.write(chunk.bytes);
          if (chunk.done) break;
          chunk = await reader.readUpTo(this.partSize);
        }
      } finally {
        await fh.close();
      }
      const sha256 = reader.finish();
      return await this.put(createReadStream(file), { sha256, size: reader.size }, { ...options, maxSize: limit });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async existingIsGood(sha256: string): Promise<boolean> {
    try {
      return (await this.verify(sha256)).ok;
    } catch (err) {
      if (err instanceof CasError && (err.code === 'CAS_NOT_FOUND' || err.code === 'CAS_QUARANTINED')) return false;
      throw err;
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.call('AbortMultipartUpload', key, () =>
        this.client.send(
          new (s3Sdk().AbortMultipartUploadCommand)({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
        ),
      );
    } catch (err) {
      if (!isStatus(err, 404)) throw err; // NoSuchUpload: already gone
    }
  }

  // ---- reads ----

  /** Full read that hashes first: small blobs from one GET (kept in memory), large ones re-read by version. */
  private async verifyThenRead(sha256: string, range: ByteRange | undefined): Promise<VerifiedRead> {
    const key = this.keyOf(sha256);
    const got = await this.get(key);
    if (got === 'missing') throw await this.missingError(sha256);
    if (got === 'changed' || got === 'unsatisfiable') throw rangeError(range, got);
    if (got.size <= this.smallBlobBytes) {
      const bytes = Buffer.concat(await collect(got.body));
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== sha256) return this.corrupt(sha256, actual);
      this.verified.set(sha256, got.token);
      this.memory.set(sha256, got.token, bytes);
      return bufferedRead(sha256, bytes, range);
    }
    const actual = await hashStream(got.body);
    if (actual !== sha256) return this.corrupt(sha256, actual);
    this.verified.set(sha256, got.token);
    if (range) checkRange(range, got.size);
    // Stream the very version that was hashed: If-Match on its ETag, and the same token on the answer.
    const again = await this.get(key, { ...(range ? { range } : {}), ifMatch: etagOf(got.token) });
    if (typeof again === 'string' || again.token !== got.token) {
      if (typeof again !== 'string') again.body.destroy();
      this.forget(sha256);
      throw new CasError('CAS_CORRUPT', `blob sha256:${sha256} was replaced while it was being verified; retry`, {
        details: { sha256 },
      });
    }
    return streamRead(sha256, got.size, range, again.body);
  }

  private async corrupt(sha256: string, actual: string): Promise<never> {
    this.forget(sha256);
    await this.quarantine(sha256, `verify-on-read: content hashes to sha256:${actual}`);
    throw new CasError(
      'CAS_CORRUPT',
      `blob sha256:${sha256} failed verification (content hashes to sha256:${actual}); it has been quarantined and will not be served`,
      { details: { sha256, actual } },
    );
  }

  private forget(sha256: string): void {
    this.verified.delete(sha256);
    this.memory.forget(sha256);
  }

  private async head(key: string): Promise<{ size: number; token: string } | undefined> {
    try {
      const out = await this.call('HeadObject', key, () =>
        this.client.send(new (s3Sdk().HeadObjectCommand)({ Bucket: this.bucket, Key: key })),
      );
      const size = out.ContentLength ?? 0;
      return { size, token: tokenOf(out.ETag, out.LastModified, size) };
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private async get(
    key: string,
    options: { range?: ByteRange; ifMatch?: string } = {},
  ): Promise<{ body: Readable; size: number; token: string } | 'missing' | 'changed' | 'unsatisfiable'> {
    try {
      const out = await this.call('GetObject', key, () =>
        this.client.send(
          new (s3Sdk().GetObjectCommand)({
            Bucket: this.bucket,
            Key: key,
            ...(options.range ? { Range: `bytes=${options.range.start}-${options.range.end}` } : {}),
            ...(options.ifMatch ? { IfMatch: options.ifMatch } : {}),
          }),
        ),
      );
      if (!(out.Body instanceof Readable))
        throw new S3Error('S3_REQUEST_FAILED', `GetObject ${this.where(key)}: no body`);
      const size = totalSize(out.ContentRange, out.ContentLength);
      if (options.range && !out.ContentRange) {
        // A server that ignored Range: refuse rather than serve the wrong bytes.
        out.Body.destroy();
        throw new S3Error('S3_REQUEST_FAILED', `GetObject ${this.where(key)}: the server ignored the Range header`);
      }
      return { body: out.Body, size, token: tokenOf(out.ETag, out.LastModified, size) };
    } catch (err) {
      if (isStatus(err, 404)) return 'missing';
      if (isStatus(err, 412)) return 'changed';
      if (isStatus(err, 416)) return 'unsatisfiable';
      throw err;
    }
  }

  private async *listKeys(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', prefix, () =>
        this.client.send(
          new (s3Sdk().ListObjectsV2Command)({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of page.Contents ?? []) if (o.Key) yield o.Key;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async missingError(sha256: string): Promise<CasError> {
    if (await this.isQuarantined(sha256)) {
      return new CasError('CAS_QUARANTINED', `blob sha256:${sha256} was quarantined after failing verification`, {
        details: { sha256 },
      });
    }
    return new CasError('CAS_NOT_FOUND', `blob sha256:${sha256} is not in ${this.url}`, { details: { sha256 } });
  }

  private async checkBucket(create: boolean): Promise<void> {
    try {
      await this.call('HeadBucket', '', () =>
        this.client.send(new (s3Sdk().HeadBucketCommand)({ Bucket: this.bucket })),
      );
      return;
    } catch (err) {
      if (!(isStatus(err, 404) && create)) throw err;
    }
    await this.call('CreateBucket', '', () =>
      this.client.send(new (s3Sdk().CreateBucketCommand)({ Bucket: this.bucket })),
    );
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Runs one request; SDK failures become S3Errors (status kept in details, credentials never in the text). */
  private async call<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toS3Error(err, op, this.where(key), this.endpointLabel);
    }
  }
}

// ---- helpers ----

/** An S3 client for operator-configured connections (no other credential source, radosgw-safe checksums). */
export function makeClient(c: S3Connection, maxSockets: number): S3Client {
  // The SDK warns on Node 20 about its own future releases; that is not the operator's problem at run time.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new (s3Sdk().S3Client)({
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    region: c.region,
    forcePathStyle: c.forcePathStyle,
    credentials: {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
    },
    // aws-chunked trailing checksums break streaming PUTs on radosgw Pacific (411); Content-MD5 is sent instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: 5_000,
      httpAgent: new Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
    },
  });
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);

function statusOf(err: unknown): number | undefined {
  const s = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  if (typeof s === 'number') return s;
  return (err as { details?: { status?: unknown } } | null)?.details?.status as number | undefined;
}

export function isStatus(err: unknown, status: number): boolean {
  return statusOf(err) === status;
}

export function toS3Error(err: unknown, op: string, where: string, endpoint: string): Error {
  if (err instanceof CasError || err instanceof S3Error) return err;
  if (typeof err !== 'object' || err === null)
    return new S3Error('S3_REQUEST_FAILED', `${op} ${where}: ${String(err)}`);
  const e = err as { name?: unknown; code?: unknown; Code?: unknown };
  const status = statusOf(err);
  const name = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : 'Error';
  const errno = typeof e.code === 'string' ? e.code : undefined;
  if (status === undefined) {
    if ((errno && NETWORK_CODES.has(errno)) || name === 'TimeoutError' || name === 'RequestTimeout') {
      return new S3Error(
        'S3_UNREACHABLE',
        `cannot reach the object store at ${endpoint} (${errno ?? name}) during ${op} ${where}`,
        {
          details: { op, where, reason: errno ?? name },
        },
      );
    }
    return err instanceof Error ? err : new S3Error('S3_REQUEST_FAILED', `${op} ${where} failed`);
  }
  const details = { op, where, status, name };
  if (status === 403)
    return new S3Error(
      'S3_ACCESS_DENIED',
      `${op} ${where}: access denied (${name}); check the S3 credentials and the bucket policy`,
      { details },
    );
  if (name === 'NoSuchBucket' || (op === 'HeadBucket' && status === 404))
    return new S3Error('S3_BUCKET_MISSING', `bucket of ${where} does not exist (create it, or import with --create)`, {
      details,
    });
  if (status >= 500)
    return new S3Error('S3_UNAVAILABLE', `${op} ${where}: the object store answered ${status} ${name}`, { details });
  return new S3Error('S3_REQUEST_FAILED', `${op} ${where}: HTTP ${status} ${name}`, { details });
}

function tokenOf(etag: string | undefined, lastModified: Date | undefined, size: number): string {
  return `${etag ?? ''}|${lastModified?.getTime() ?? ''}|${size}`;
}

function etagOf(token: string): string {
  return token.slice(0, token.indexOf('|'));
}

function totalSize(contentRange: string | undefined, contentLength: number | undefined): number {
  const m = contentRange ? /\/(\d+)$/.exec(contentRange) : null;
  return m ? Number(m[1]) : (contentLength ?? 0);
}

function checkExpectation(expected: PutExpectation | undefined): void {
  if (expected === undefined) return;
  assertSha256Hex(expected.sha256, 'expected sha256');
  if (expected.size !== undefined && !(Number.isSafeInteger(expected.size) && expected.size >= 0))
    throw new CasError(
      'CAS_SIZE_MISMATCH',
      `expected size must be a non-negative integer, got ${String(expected.size)}`,
    );
}

function checkRangeShape(range: ByteRange): void {
  const ok =
    Number.isSafeInteger(range.start) &&
    Number.isSafeInteger(range.end) &&
    range.start >= 0 &&
    range.end >= range.start;
  if (!ok) throw new CasError('CAS_INVALID_RANGE', `range ${range.start}-${range.end} is not a valid byte range`);
}

function checkRange(range: ByteRange, size: number): void {
  checkRangeShape(range);
  if (range.end >= size)
    throw new CasError(
      'CAS_INVALID_RANGE',
      `range ${range.start}-${range.end} is not satisfiable for a blob of ${size} bytes`,
      {
        details: { size },
      },
    );
}

function rangeError(range: ByteRange | undefined, why: string): CasError {
  return new CasError(
    'CAS_INVALID_RANGE',
    range ? `range ${range.start}-${range.end} is not satisfiable (${why})` : `read failed (${why})`,
  );
}

function publishError(sha256: string): CasError {
  return new CasError(
    'CAS_CORRUPT',
    `could not publish blob sha256:${sha256}: the stored copy keeps failing verification`,
  );
}

function bufferedRead(sha256: string, whole: Buffer, range: ByteRange | undefined): VerifiedRead {
  if (range) checkRange(range, whole.length);
  const bytes = range ? whole.subarray(range.start, range.end + 1) : whole;
  let stream: Readable | undefined;
  return {
    sha256,
    size: whole.length,
    ...(range ? { range } : {}),
    bytes,
    get stream(): Readable {
      stream ??= Readable.from([bytes], { objectMode: false });
      return stream;
    },
  };
}

function streamRead(sha256: string, size: number, range: ByteRange | undefined, body: Readable): VerifiedRead {
  return { sha256, size, ...(range ? { range } : {}), stream: body };
}

async function collect(body: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return chunks;
}

async function hashStream(body: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of body) hash.update(c as Buffer);
  return hash.digest('hex');
}

/**
 * Pulls bytes from a put's source, hashing them and enforcing the expected size and the size limit as they
 * arrive (the same checks and codes as the filesystem backend).
 */
class SizedReader {
  private readonly iterator: AsyncIterator<unknown>;
  private readonly hash = createHash('sha256');
  private carry: Buffer | undefined;
  size = 0;

  constructor(
    source: BlobSource,
    private readonly expected: PutExpectation | undefined,
    private readonly limit: number,
  ) {
    this.iterator = (async function* () {
      yield* source as AsyncIterable<unknown> | Iterable<unknown>;
    })();
  }

  /** Up to `max` more bytes; `done` once the source is exhausted. */
  async readUpTo(max: number): Promise<{ bytes: Buffer; done: boolean }> {
    const chunks: Buffer[] = [];
    let have = 0;
    while (have < max) {
      let chunk = this.carry;
      this.carry = undefined;
      if (!chunk) {
        const next = await this.iterator.next();
        if (next.done) return { bytes: Buffer.concat(chunks), done: true };
        chunk = this.accept(next.value);
      }
      if (have + chunk.length > max) {
        this.carry = chunk.subarray(max - have);
        chunk = chunk.subarray(0, max - have);
      }
      chunks.push(chunk);
      have += chunk.length;
    }
    return { bytes: Buffer.concat(chunks), done: false };
  }

  /** The digest once every byte was read; checks it (and the size) against the expectation. */
  finish(): string {
    const sha256 = this.hash.digest('hex');
    const e = this.expected;
    if (e !== undefined && sha256 !== e.sha256) {
      throw new CasError(
        'CAS_DIGEST_MISMATCH',
        `blob content hashes to sha256:${sha256}, expected sha256:${e.sha256}`,
        {
          details: { expected: e.sha256, actual: sha256, size: this.size },
        },
      );
    }
    if (e?.size !== undefined && this.size !== e.size) {
      throw new CasError('CAS_SIZE_MISMATCH', `blob sha256:${sha256} has ${this.size} bytes, expected ${e.size}`, {
        details: { expected: e.size, actual: this.size },
      });
    }
    return sha256;
  }

  private accept(value: unknown): Buffer {
    if (!(value instanceof Uint8Array))
      throw new CasError('CAS_INVALID_SOURCE', `put() needs a byte stream; got a chunk of type ${typeof value}`);
    this.size += value.byteLength;
    const e = this.expected;
    if (e?.size !== undefined && this.size > e.size)
      throw new CasError('CAS_SIZE_MISMATCH', `blob sha256:${e.sha256} is larger than the expected ${e.size} bytes`);
    if (this.size > this.limit)
      throw new CasError('CAS_SIZE_LIMIT', `blob exceeds the size limit of ${this.limit} bytes`);
    this.hash.update(value);
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
}

/** A Map that drops its oldest entries beyond `max`. */
class BoundedMap<V> {
  private readonly entries = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.entries.get(key);
  }
  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
  delete(key: string): void {
    this.entries.delete(key);
  }
}
