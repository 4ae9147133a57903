import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CasError, MirrorStore, fsck } from '@airlock/cas';
import { radosgwProblem, startRadosgw, toolsAvailable, type RunningRadosgw } from '@airlock/testkit';
import {
  S3BlobStore,
  S3Error,
  openS3BlobStore,
  parseS3Url,
  resolveS3Connection,
  type S3BlobStoreOptions,
} from '../src/index.js';

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const BUCKET = 'airlock-blobs';
const MiB = 1024 * 1024;

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(out);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return 'no error';
}

const enabled = toolsAvailable('S3 blob store tests (real Ceph radosgw)', [radosgwProblem()]);

describe.runIf(enabled)('S3BlobStore on a real radosgw', () => {
  let rgw: RunningRadosgw;
  let raw: S3Client;
  let n = 0;
  const opened: S3BlobStore[] = [];

  beforeAll(async () => {
    rgw = await startRadosgw();
    raw = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await raw.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  afterAll(async () => {
    for (const s of opened) s.close();
    raw?.destroy();
    await rgw?.stop();
  });

  /** A store on a fresh prefix of the shared bucket (one cluster per file; tests do not see each other). */
  async function store(options: Partial<S3BlobStoreOptions> = {}): Promise<S3BlobStore> {
    const s = await openS3BlobStore(`s3://${BUCKET}/t${++n}`, { env: rgw.env(), ...options });
    opened.push(s);
    return s;
  }

  async function keys(prefix: string): Promise<string[]> {
    const out = await raw.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (out.Contents ?? []).map((o) => o.Key!);
  }

  async function uploads(prefix: string): Promise<number> {
    const out = await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
    return out.Uploads?.length ?? 0;
  }

  /** Replaces an object behind the store's back (what a bucket-level attacker or bit rot does). */
  async function overwrite(s: S3BlobStore, digest: string, bytes: Buffer): Promise<void> {
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: s.keyOf(digest), Body: bytes }));
  }

  it('puts, stats and reads back a blob under prefix/blobs/sha256/<hex>', async () => {
    const s = await store();
    const bytes = Buffer.from('hello s3');
    const r = await s.put([bytes], { sha256: sha256(bytes), size: bytes.length });
    expect(r).toEqual({ sha256: sha256(bytes), size: 8, created: true });
    expect(await keys(s.prefix)).toEqual([`${s.prefix}blobs/sha256/${sha256(bytes)}`]);
    expect(await s.stat(r.sha256)).toEqual({ size: 8 });
    expect(await s.has(sha256('other'))).toBe(false);
    const read = await s.openVerifiedRead(r.sha256);
    expect(read.size).toBe(8);
    expect((await readAll(read.stream)).toString()).toBe('hello s3');
    expect((await readAll(await s.openRead(r.sha256, { start: 6, end: 7 }))).toString()).toBe('s3');
  });

  it('accepts a Readable with no expectation, and an empty blob', async () => {
    const s = await store();
    const r = await s.put(Readable.from([Buffer.from('a'), Buffer.from('bc')]));
    expect(r.sha256).toBe(sha256('abc'));
    const empty = await s.put([]);
    expect(empty).toEqual({ sha256: sha256(''), size: 0, created: true });
    expect((await readAll((await s.openVerifiedRead(empty.sha256)).stream)).length).toBe(0);
  });

  it('refuses wrong digests, wrong sizes and oversized blobs, leaving no object behind', async () => {
    const s = await store();
    const bytes = Buffer.from('payload');
    expect(await codeOf(s.put([bytes], { sha256: sha256('other') }))).toBe('CAS_DIGEST_MISMATCH');
    expect(await codeOf(s.put([bytes], { sha256: sha256(bytes), size: 3 }))).toBe('CAS_SIZE_MISMATCH');
    expect(await codeOf(s.put([bytes], { sha256: sha256(bytes), size: 100 }))).toBe('CAS_SIZE_MISMATCH');
    expect(await codeOf(s.put([bytes], undefined, { maxSize: 4 }))).toBe('CAS_SIZE_LIMIT');
    expect(await codeOf(s.put(['text' as unknown as Uint8Array]))).toBe('CAS_INVALID_SOURCE');
    expect(await codeOf(s.put([bytes], { sha256: '../../etc' }))).toBe('CAS_INVALID_DIGEST');
    expect(await keys(s.prefix)).toEqual([]);
  });

  it('is write-once: the server refuses a second conditional PUT, and a re-put keeps the stored copy', async () => {
    const s = await store();
    const bytes = Buffer.from('once');
    const first = await s.put([bytes]);
    const before = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: s.keyOf(first.sha256) }));
    const again = await s.put([bytes], { sha256: first.sha256 });
    expect(again.created).toBe(false);
    const after = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: s.keyOf(first.sha256) }));
    expect(after.LastModified?.getTime()).toBe(before.LastModified?.getTime());
    // The property the store relies on, checked on the server itself: If-None-Match: * never replaces.
    const conditional = raw.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: s.keyOf(first.sha256), Body: 'evil', IfNoneMatch: '*' }),
    );
    await expect(conditional).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
  });

  it('multipart: parts are hashed and the blob becomes visible only after the digest is checked', async () => {
    const s = await store({ partSize: 5 * MiB, multipartThreshold: 5 * MiB, smallBlobBytes: 1024 });
    const bytes = randomBytes(12 * MiB + 123);
    const digest = sha256(bytes);
    const seen: string[] = [];
    const r = await s.put(
      Readable.from([bytes.subarray(0, 3 * MiB), bytes.subarray(3 * MiB)]),
      { sha256: digest, size: bytes.length },
      {
        beforePublish: async (d) => {
          // Called after every part is up and hashed: nothing is visible yet under the name.
          seen.push(d, (await keys(s.prefix)).length === 0 ? 'invisible' : 'VISIBLE', String(await uploads(s.prefix)));
        },
      },
    );
    expect(seen).toEqual([digest, 'invisible', '1']);
    expect(r).toEqual({ sha256: digest, size: bytes.length, created: true });
    expect(await uploads(s.prefix)).toBe(0);
    const whole = await s.openVerifiedRead(digest);
    expect((await readAll(whole.stream)).equals(bytes)).toBe(true);
    const part = await s.openVerifiedRead(digest, { start: 6 * MiB, end: 6 * MiB + 9 });
    expect(part.size).toBe(bytes.length);
    expect((await readAll(part.stream)).equals(bytes.subarray(6 * MiB, 6 * MiB + 10))).toBe(true);
    expect((await s.put(Readable.from([bytes]), { sha256: digest })).created).toBe(false);
    expect(await uploads(s.prefix)).toBe(0);
  });

  it('multipart with a wrong digest is aborted before completion: no object, no dangling upload', async () => {
    const s = await store({ partSize: 5 * MiB, multipartThreshold: 5 * MiB });
    const bytes = randomBytes(11 * MiB);
    let published = false;
    const err = await codeOf(
      s.put([bytes], { sha256: sha256('not these bytes') }, { beforePublish: () => void (published = true) }),
    );
    expect(err).toBe('CAS_DIGEST_MISMATCH');
    expect(published).toBe(false);
    expect(await keys(s.prefix)).toEqual([]);
    expect(await uploads(s.prefix)).toBe(0);
  });

  it('a large blob without an expected digest is spooled, hashed, then uploaded under its name', async () => {
    const s = await store({ partSize: 5 * MiB, multipartThreshold: 5 * MiB });
    const bytes = randomBytes(6 * MiB);
    const r = await s.put(Readable.from([bytes]));
    expect(r).toEqual({ sha256: sha256(bytes), size: bytes.length, created: true });
    expect((await readAll((await s.openVerifiedRead(r.sha256)).stream)).equals(bytes)).toBe(true);
  });

  it('verify-on-read refuses and quarantines a small blob replaced after it was verified and cached', async () => {
    const s = await store();
    const good = Buffer.from('good bytes');
    const { sha256: d } = await s.put([good]);
    expect((await s.openVerifiedRead(d)).bytes?.toString()).toBe('good bytes'); // now cached in memory
    await overwrite(s, d, Buffer.from('evil bytes'));
    expect(await codeOf(s.openVerifiedRead(d))).toBe('CAS_CORRUPT');
    expect(await s.isQuarantined(d)).toBe(true);
    expect(await s.has(d)).toBe(false);
    expect(await codeOf(s.openVerifiedRead(d))).toBe('CAS_QUARANTINED');
    const records = await s.quarantineRecords(d);
    expect(records).toHaveLength(1);
    expect(records[0]!.reason).toContain(`sha256:${sha256('evil bytes')}`);
    // The bad bytes are kept for forensics, outside the served namespace.
    expect((await keys(`${s.prefix}quarantine/${d}/`)).some((k) => k.endsWith('.blob'))).toBe(true);
  });

  it('verify-on-read guards streamed (large) blobs and their ranges after a replacement', async () => {
    const s = await store({ smallBlobBytes: 1024 });
    const good = randomBytes(64 * 1024);
    const { sha256: d } = await s.put([good]);
    expect((await readAll((await s.openVerifiedRead(d, { start: 0, end: 99 })).stream)).length).toBe(100);
    const evil = Buffer.from(good);
    evil[5000] ^= 1;
    await overwrite(s, d, evil);
    expect(await codeOf(s.openVerifiedRead(d, { start: 0, end: 99 }))).toBe('CAS_CORRUPT');
    expect(await s.isQuarantined(d)).toBe(true);
  });

  it('verify() uses the per-version cache unless forced, and a mismatch quarantines', async () => {
    const s = await store();
    const { sha256: d } = await s.put([Buffer.from('verify me')]);
    expect(await s.verify(d)).toMatchObject({ ok: true, cached: false });
    expect(await s.verify(d)).toMatchObject({ ok: true, cached: true });
    expect(await s.verify(d, { force: true })).toMatchObject({ ok: true, cached: false });
    await overwrite(s, d, Buffer.from('changed!!'));
    expect(await s.verify(d)).toMatchObject({ ok: false, actual: sha256('changed!!'), cached: false });
    expect(await s.isQuarantined(d)).toBe(true);
  });

  it('heals: a put of the right bytes replaces a corrupt copy', async () => {
    const s = await store();
    const good = Buffer.from('heal me');
    const { sha256: d } = await s.put([good]);
    await overwrite(s, d, Buffer.from('rotten'));
    const r = await s.put([good], { sha256: d });
    expect(r.created).toBe(true);
    expect((await s.openVerifiedRead(d)).bytes?.toString()).toBe('heal me');
  });

  it('refuses unsatisfiable and malformed ranges', async () => {
    const s = await store({ smallBlobBytes: 4 });
    const small = await s.put([Buffer.from('abc')]);
    const big = await s.put([Buffer.from('0123456789')]);
    expect(await codeOf(s.openVerifiedRead(small.sha256, { start: 2, end: 3 }))).toBe('CAS_INVALID_RANGE');
    expect(await codeOf(s.openVerifiedRead(big.sha256, { start: 5, end: 10 }))).toBe('CAS_INVALID_RANGE');
    expect(await codeOf(s.openVerifiedRead(big.sha256, { start: 5, end: 4 }))).toBe('CAS_INVALID_RANGE');
    expect(await codeOf(s.openRead(big.sha256, { start: 20, end: 30 }))).toBe('CAS_INVALID_RANGE');
    expect((await readAll((await s.openVerifiedRead(big.sha256, { start: 5, end: 9 })).stream)).toString()).toBe(
      '56789',
    );
  });

  it('lists in ascending order, deletes, and aborts partial uploads left by a crash', async () => {
    const s = await store();
    const digests = [];
    for (const t of ['one', 'two', 'three', 'four']) digests.push((await s.put([Buffer.from(t)])).sha256);
    const listed = [];
    for await (const d of s.list()) listed.push(d);
    expect(listed).toEqual([...digests].sort());
    expect(await s.delete(digests[0]!)).toBe(true);
    expect(await s.delete(digests[0]!)).toBe(false);
    expect(await codeOf(s.openVerifiedRead(digests[0]!))).toBe('CAS_NOT_FOUND');
    await raw.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: s.keyOf(sha256('crashed')) }));
    expect(await uploads(s.prefix)).toBe(1);
    expect(await s.removePartialUploads()).toBe(1);
    expect(await uploads(s.prefix)).toBe(0);
  });

  it('fsck over S3: re-hashes every blob, quarantines a corrupt one, reports orphans', async () => {
    const blobs = await store();
    const dir = mkdtempSync(join(tmpdir(), 'airlock-s3-fsck-'));
    const mirror = await MirrorStore.open(dir, { blobStore: blobs });
    try {
      const a = await blobs.put([Buffer.from('orphan a')]);
      const b = await blobs.put([Buffer.from('orphan b')]);
      await overwrite(blobs, b.sha256, Buffer.from('tampered'));
      const report = await fsck(mirror);
      expect(report.checked).toBe(2);
      expect(report.corrupt.map((c) => c.sha256)).toEqual([b.sha256]);
      expect(report.orphans).toEqual([a.sha256]);
      expect(await blobs.isQuarantined(b.sha256)).toBe(true);
      const cleaned = await fsck(mirror, { removeOrphans: true });
      expect(cleaned.removedOrphans).toBe(1);
      expect(await blobs.has(a.sha256)).toBe(false);
    } finally {
      await mirror.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names what is wrong with the connection, and never prints the secret', async () => {
    const env = rgw.env();
    const badSecret = { ...env, AWS_SECRET_ACCESS_KEY: 'WRONG-SECRET-do-not-print' };
    const denied = await openS3BlobStore(`s3://${BUCKET}/x`, { env: badSecret }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(S3Error);
    expect((denied as S3Error).code).toBe('S3_ACCESS_DENIED');
    expect(JSON.stringify(denied) + String(denied)).not.toContain('WRONG-SECRET');
    const missing = await openS3BlobStore('s3://no-such-bucket/x', { env }).catch((e: unknown) => e);
    expect((missing as S3Error).code).toBe('S3_BUCKET_MISSING');
    const down = await openS3BlobStore(`s3://${BUCKET}/x`, {
      env: { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:1' },
    }).catch((e: unknown) => e);
    expect((down as S3Error).code).toBe('S3_UNREACHABLE');
    expect(String(down)).not.toContain(env.AWS_SECRET_ACCESS_KEY!);
    const created = await openS3BlobStore('s3://made-on-demand/p', { env, createBucket: true });
    opened.push(created);
    expect((await created.put([Buffer.from('x')])).created).toBe(true);
  });
});

describe('S3 configuration (no server needed)', () => {
  it('parses s3://bucket/prefix and refuses anything else', () => {
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url('s3://my-bucket/a/b/')).toEqual({ bucket: 'my-bucket', prefix: 'a/b/' });
    for (const bad of [
      'http://x/y',
      's3://UPPER/x',
      's3://b/../x',
      's3://ok-bucket/a//b',
      's3://x',
      's3://ok-bucket/a b',
    ])
      expect(() => parseS3Url(bad), bad).toThrow(S3Error);
  });

  it('takes the connection from a config file over the environment; errors never quote the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-s3-conf-'));
    try {
      const env = { AWS_ACCESS_KEY_ID: 'envkey', AWS_SECRET_ACCESS_KEY: 'envsecret', AWS_REGION: 'eu-west-1' };
      expect(resolveS3Connection({ env })).toMatchObject({ accessKeyId: 'envkey', region: 'eu-west-1' });
      const file = join(dir, 's3.json');
      writeFileSync(file, JSON.stringify({ endpoint: 'http://127.0.0.1:9', secretAccessKey: 'filesecret' }));
      expect(resolveS3Connection({ env, configFile: file })).toMatchObject({
        endpoint: 'http://127.0.0.1:9',
        accessKeyId: 'envkey',
        secretAccessKey: 'filesecret',
      });
      writeFileSync(file, '{"secretAccessKey": "SUPERSECRET", oops}');
      let broken: S3Error | undefined;
      try {
        resolveS3Connection({ env, configFile: file });
      } catch (err) {
        broken = err as S3Error;
      }
      expect(broken?.code).toBe('S3_CONFIG_INVALID');
      expect(broken?.message).not.toContain('SUPERSECRET');
      writeFileSync(file, JSON.stringify({ secretKey: 'x' }));
      expect(() => resolveS3Connection({ env, configFile: file })).toThrow(/unknown field 'secretKey'/);
      writeFileSync(file, JSON.stringify({ endpoint: 'http://user:pw@127.0.0.1:9' }));
      expect(() => resolveS3Connection({ env, configFile: file })).toThrow(/must not carry credentials/);
      expect(() => resolveS3Connection({ env: {} })).toThrow(
        expect.objectContaining({ code: 'S3_CREDENTIALS_MISSING' }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CasError and S3Error stay distinct types with stable codes', () => {
    expect(new S3Error('S3_UNREACHABLE', 'x').code).toBe('S3_UNREACHABLE');
    expect(new CasError('CAS_NOT_FOUND', 'x')).not.toBeInstanceOf(S3Error);
  });
});
