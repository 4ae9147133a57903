/**
 * Issue 12: the full plane's log on the distributed backends. `airlock up --index postgres://… --tiles
 * s3://bucket/prefix` keeps the log's entries and tree in PostgreSQL (no SQLite file in the data directory) and
 * publishes its C2SP tlog-tiles and checkpoint to a real S3 bucket (Ceph radosgw). With the plane stopped, the
 * checkpoint and tiles read straight from the bucket give the same signed tree head, the same inclusion proofs and
 * the same entries the log server gave. A missing bucket or a non-postgres index is refused at start (exit 2).
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  postgresProblem,
  radosgwProblem,
  startPostgres,
  startRadosgw,
  toolsAvailable,
  type PostgresServer,
  type RunningRadosgw,
} from '@airlock/testkit';
import { RekorClient, TileReader, verifyCheckpoint, type LogEntry } from '@airlock/tlog';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from './helpers/cli.js';
import { runCliJson } from './helpers/upstream-e2e.js';

const available = toolsAvailable('log tiles on S3 + log metadata on PostgreSQL', [postgresProblem(), radosgwProblem()]);
const BUCKET = 'airlock-tlog';
const PREFIX = 'log/';
const ENTRIES = 40;

let root: string;
let rgw: RunningRadosgw | undefined;
let raw: S3Client;
let pg: PostgresServer | undefined;
let indexUrl: string;
let dbName: string;
const savedEnv: Record<string, string | undefined> = {};

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signerPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

function hashedRekord(artifact: string): unknown {
  const data = Buffer.from(artifact);
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(data).digest('hex') } },
      signature: {
        content: sign('sha256', data, privateKey).toString('base64'),
        publicKey: { content: Buffer.from(signerPem).toString('base64') },
      },
    },
  };
}

/** Reads one object of the log's prefix straight from the bucket (no log server involved). */
async function fromBucket(path: string): Promise<Buffer | undefined> {
  try {
    const out = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}${path}` }));
    return Buffer.from(await out.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

describe.runIf(available)('airlock up --index postgres://… --tiles s3://…', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-tlog-s3-pg-'));
    rgw = await startRadosgw();
    // The CLI children read the endpoint and credentials from the environment they inherit.
    for (const [k, v] of Object.entries(rgw.env())) {
      savedEnv[k] = process.env[k];
      process.env[k] = v;
    }
    raw = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    pg = await startPostgres();
    const db = await pg.createDatabase();
    dbName = db.name;
    process.env.PGPASSWORD = db.password;
    indexUrl = `postgres://${db.user}@127.0.0.1:${pg.port}/${db.name}`;
  }, 600_000);

  afterAll(async () => {
    raw?.destroy();
    await pg?.stop();
    await rgw?.stop();
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    delete process.env.PGPASSWORD;
    if (root) rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('refuses a missing bucket and a non-postgres index at start (exit 2), on up and tlog serve', async () => {
    const upMissing = await runCliJson(['up', '--data', join(root, 'bad1'), '--tiles', `s3://${BUCKET}/log`, '--json']);
    expect(upMissing.code, upMissing.stdout).toBe(2);
    expect(upMissing.errorCode).toBe('S3_BUCKET_MISSING');
    const serveMissing = await runCliJson([
      'tlog',
      'serve',
      '--data',
      join(root, 'bad2'),
      '--tiles',
      `s3://${BUCKET}/log`,
      '--json',
    ]);
    expect(serveMissing.code, serveMissing.stdout).toBe(2);
    expect(serveMissing.errorCode).toBe('S3_BUCKET_MISSING');
    const notPg = await runCliJson(['up', '--data', join(root, 'bad3'), '--index', 'mysql://u:pw@x/db', '--json']);
    expect(notPg.code, notPg.stdout).toBe(2);
    expect(notPg.stdout + notPg.stderr).not.toContain(':pw@');
    const s3ConfigAlone = await runCliJson(['up', '--data', join(root, 'bad4'), '--s3-config', 'x.json', '--json']);
    expect(s3ConfigAlone.code).toBe(2);
    // Nothing was started or created for the refused runs.
    for (const d of ['bad1', 'bad2', 'bad3', 'bad4']) expect(existsSync(join(root, d, 'tlog.sqlite'))).toBe(false);
  }, 240_000);

  it('keeps the log in PostgreSQL and its tiles in the bucket; the bucket alone gives the same head and proofs', async () => {
    await raw.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const data = join(root, 'plane');
    const plane = await startCli(
      ['up', '--data', data, '--index', indexUrl, '--tiles', `s3://${BUCKET}/${PREFIX}`, '--json'],
      (o) => o.includes('"tlogUrl"') && o.trim().endsWith('}'),
      180_000,
    );
    const server: { head?: ReturnType<typeof verifyCheckpoint>; entries: LogEntry[]; key?: string } = { entries: [] };
    try {
      const { tlogUrl } = JSON.parse(plane.stdout()) as { tlogUrl: string };
      const client = new RekorClient({ baseUrl: tlogUrl, timeoutMs: 60_000 });
      for (let i = 0; i < ENTRIES; i += 8)
        await Promise.all(
          [...Array(Math.min(8, ENTRIES - i)).keys()].map((k) => client.createEntry(hashedRekord(`tiles ${i + k}`))),
        );
      server.key = await client.getPublicKey();
      server.head = verifyCheckpoint((await client.getLogInfo()).signedTreeHead, server.key);
      expect(server.head.size).toBe(ENTRIES);
      for (let i = 0; i < ENTRIES; i++) server.entries.push(await client.getEntryByIndex(i));
    } finally {
      await plane.stop();
    }
    // The metadata is PostgreSQL's: no SQLite log in the data directory, every entry in the database.
    expect(readdirSync(data).filter((f) => f.endsWith('.sqlite'))).toEqual([]);
    expect(pg!.adminSql('SELECT count(*) FROM tlog_entries', dbName).trim()).toBe(String(ENTRIES));
    // No tile directory either: the tiles went to the bucket.
    expect(existsSync(join(data, 'tiles'))).toBe(false);

    // The plane is stopped: everything below comes from the bucket.
    const reader = new TileReader(fromBucket);
    const head = verifyCheckpoint(await reader.checkpointText(), server.key!);
    expect(head.size).toBe(ENTRIES);
    expect(head.rootHash.equals(server.head!.rootHash)).toBe(true);
    expect((await reader.rootAt(ENTRIES)).equals(server.head!.rootHash)).toBe(true);
    for (const e of server.entries) {
      const proof = e.verification!.inclusionProof!;
      expect(proof.treeSize).toBe(ENTRIES);
      const fromTiles = await reader.inclusionProof(e.logIndex, ENTRIES);
      expect(fromTiles.map((h) => h.toString('hex'))).toEqual(proof.hashes);
    }
    // The entry bundle holds the very bodies the server returned (checked against the tile hashes by the reader).
    const leaves = await reader.entries(0, ENTRIES);
    expect(leaves.map((b) => b.toString('base64'))).toEqual(server.entries.map((e) => e.body));
  }, 600_000);
});
