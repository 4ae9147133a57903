import { createHash, verify } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '@airlock/core';
import { verifyCheckpoint } from '../src/checkpoint.js';
import { RekorClient } from '../src/client.js';
import { verifyLogEntry, type LogEntry } from '../src/entry.js';
import { startTlogServer, type RunningTlog } from '../src/http/server.js';
import { hashLeaf, verifyConsistencyProof, verifyInclusionProof } from '../src/merkle.js';
import {
  b64,
  dsseEntry,
  getJson,
  hashedRekord,
  makeCertSigner,
  makeKeySigner,
  postJson,
  statement,
  tempDir,
  type TestSigner,
} from './helpers.js';

let server: RunningTlog;
let dir: ReturnType<typeof tempDir>;
let cert: TestSigner;
let client: RekorClient;

beforeAll(async () => {
  dir = tempDir();
  cert = await makeCertSigner();
  server = await startTlogServer({ dataDir: dir.path, maxBodyBytes: 64 * 1024 });
  client = new RekorClient({ baseUrl: server.url });
});
afterAll(async () => {
  await server?.close();
  dir?.remove();
});

const api = (path: string) => `${server.url}${path}`;

/** The single `{uuid: entry}` of a Rekor response, as a LogEntry. */
function only(json: unknown): LogEntry {
  const keys = Object.keys(json as object);
  expect(keys).toHaveLength(1);
  return { uuid: keys[0]!, ...(json as Record<string, Omit<LogEntry, 'uuid'>>)[keys[0]!]! };
}

/** Checks an entry the way a sigstore client does, with independent code where it is short enough. */
function checkEntry(entry: LogEntry): void {
  // SET over JCS {body, integratedTime, logID, logIndex}
  const payload = canonicalize({
    body: entry.body,
    integratedTime: entry.integratedTime,
    logID: entry.logID,
    logIndex: entry.logIndex,
  });
  expect(
    verify(
      'sha256',
      Buffer.from(payload),
      server.publicKeyPem,
      Buffer.from(entry.verification!.signedEntryTimestamp!, 'base64'),
    ),
  ).toBe(true);
  expect(entry.logID).toBe(createHash('sha256').update(server.publicKeyDer).digest('hex'));
  expect(entry.uuid).toBe(hashLeaf(Buffer.from(entry.body, 'base64')).toString('hex'));
  const proof = entry.verification!.inclusionProof!;
  const cp = verifyCheckpoint(proof.checkpoint, server.publicKeyPem, server.logName);
  expect(cp.origin).toBe(server.origin);
  expect(cp.size).toBe(proof.treeSize);
  expect(cp.rootHash.toString('hex')).toBe(proof.rootHash);
  const ok = verifyInclusionProof(
    hashLeaf(Buffer.from(entry.body, 'base64')),
    proof.logIndex,
    cp.size,
    proof.hashes.map((h) => Buffer.from(h, 'hex')),
    cp.rootHash,
  );
  expect(ok).toBe(true);
  verifyLogEntry(entry, { publicKey: server.publicKeyDer, expectedKeyName: '127.0.0.1' });
}

describe('Rekor v1 HTTP API', () => {
  it('logs a hashedrekord entry (certificate): 201, Location/ETag = UUID, one key, verifiable SET/proof/checkpoint', async () => {
    const res = await postJson(api('/api/v1/log/entries'), hashedRekord(cert, 'artifact one'));
    expect(res.status).toBe(201);
    const entry = only(res.json);
    expect(entry.uuid).toMatch(/^[0-9a-f]{64}$/);
    expect(res.headers.get('location')).toBe(`/api/v1/log/entries/${entry.uuid}`);
    expect(res.headers.get('etag')).toBe(entry.uuid);
    expect(Object.keys(entry).sort()).toEqual(['body', 'integratedTime', 'logID', 'logIndex', 'uuid', 'verification']);
    expect(Math.abs(entry.integratedTime - Date.now() / 1000)).toBeLessThan(120);
    checkEntry(entry);
    const body = JSON.parse(Buffer.from(entry.body, 'base64').toString());
    expect(body.kind).toBe('hashedrekord');
  });

  it('logs a dsse entry: canonical body without proposedContent, verifiable', async () => {
    const signer = makeKeySigner();
    const res = await postJson(api('/api/v1/log/entries'), dsseEntry([signer], statement('a.tgz', 'A')));
    expect(res.status).toBe(201);
    const entry = only(res.json);
    checkEntry(entry);
    const body = JSON.parse(Buffer.from(entry.body, 'base64').toString());
    expect(body.kind).toBe('dsse');
    expect(body.spec.proposedContent).toBeUndefined();
    expect(body.spec.signatures[0].verifier).toBe(b64(signer.pem));
  });

  it('rejects a bad signature with 400 and a Rekor-style {code, message}', async () => {
    const p = hashedRekord(cert, 'signed');
    p.spec.data.hash.value = createHash('sha256').update('something else').digest('hex');
    const res = await postJson(api('/api/v1/log/entries'), p);
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ code: 400, message: expect.stringMatching(/signature does not verify/) });
    const d = dsseEntry([makeKeySigner()], 'x', [makeKeySigner()]);
    const res2 = await postJson(api('/api/v1/log/entries'), d);
    expect(res2.status).toBe(400);
    expect((res2.json as { message: string }).message).toMatch(/envelope signature 0 does not verify/);
  });

  it('rejects malformed bodies with 400', async () => {
    for (const body of ['{not json', '', '[]', '{"kind":"rekord","apiVersion":"0.0.1","spec":{}}']) {
      const res = await fetch(api('/api/v1/log/entries'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
      const json = (await res.json()) as { code: number; message: string };
      expect(json.code).toBe(400);
      expect(json.message.length).toBeGreaterThan(5);
    }
  });

  it('answers a duplicate with 409, Location of the existing entry and {code:409, message}', async () => {
    const p = hashedRekord(cert, 'dup');
    const first = await postJson(api('/api/v1/log/entries'), p);
    expect(first.status).toBe(201);
    const uuid = only(first.json).uuid;
    const again = await postJson(api('/api/v1/log/entries'), p);
    expect(again.status).toBe(409);
    expect(again.headers.get('location')).toBe(`/api/v1/log/entries/${uuid}`);
    expect(again.json).toEqual({ code: 409, message: expect.stringContaining(uuid) });
    // The client follows the Location.
    const created = await client.createEntry(p);
    expect(created.existed).toBe(true);
    expect(created.uuid).toBe(uuid);
  });

  it('gets entries by UUID (64 and 80 hex) and by index, with fresh proofs against the current tree', async () => {
    const created = await client.createEntry(hashedRekord(cert, 'lookup'));
    const info = await client.getLogInfo();
    const byUuid = await client.getEntryByUuid(created.uuid);
    const byId = await client.getEntryByUuid(`${BigInt(info.treeID).toString(16).padStart(16, '0')}${created.uuid}`);
    const byIndex = await client.getEntryByIndex(created.logIndex);
    for (const e of [byUuid, byId, byIndex]) {
      expect(e.logIndex).toBe(created.logIndex);
      expect(e.verification?.signedEntryTimestamp).toBe(created.verification?.signedEntryTimestamp);
      checkEntry({ ...e, uuid: created.uuid });
    }
    expect((await getJson(api(`/api/v1/log/entries/${'ab'.repeat(32)}`))).status).toBe(404);
    expect((await getJson(api(`/api/v1/log/entries/${'0'.repeat(16)}${created.uuid}`))).status).toBe(404);
    expect((await getJson(api('/api/v1/log/entries/not-hex'))).status).toBe(400);
    expect((await getJson(api('/api/v1/log/entries?logIndex=999999'))).status).toBe(404);
    expect((await getJson(api('/api/v1/log/entries?logIndex=-1'))).status).toBe(400);
    expect((await getJson(api('/api/v1/log/entries'))).status).toBe(400);
  });

  it('retrieves several entries at once, skipping unknown ones', async () => {
    const a = await client.createEntry(hashedRekord(cert, 'r1'));
    const b = await client.createEntry(hashedRekord(cert, 'r2'));
    const res = await postJson(api('/api/v1/log/entries/retrieve'), {
      entryUUIDs: [a.uuid, 'cd'.repeat(32)],
      logIndexes: [b.logIndex, 10_000],
    });
    expect(res.status).toBe(200);
    const list = (res.json as unknown[]).map(only);
    expect(list.map((e) => e.uuid).sort()).toEqual([a.uuid, b.uuid].sort());
    expect((await client.retrieveEntries({ logIndexes: [a.logIndex, b.logIndex] })).map((e) => e.uuid)).toEqual([
      a.uuid,
      b.uuid,
    ]);
    // By proposed content (re-canonicalized, so a fresh proposal of a logged signature finds it).
    const p = hashedRekord(cert, 'r3');
    const c = await client.createEntry(p);
    const byContent = await postJson(api('/api/v1/log/entries/retrieve'), {
      entries: [p, hashedRekord(cert, 'never logged')],
    });
    expect((byContent.json as unknown[]).map(only).map((e) => e.uuid)).toEqual([c.uuid]);
    expect((await postJson(api('/api/v1/log/entries/retrieve'), { entries: Array(11).fill(p) })).status).toBe(400);
    expect((await postJson(api('/api/v1/log/entries/retrieve'), {})).status).toBe(400);
    expect((await postJson(api('/api/v1/log/entries/retrieve'), { logIndexes: Array(101).fill(0) })).status).toBe(400);
    expect((await postJson(api('/api/v1/log/entries/retrieve'), { entryUUIDs: ['zz'] })).status).toBe(400);
  });

  it('serves log info with a signed tree head, and the public key', async () => {
    const info = await client.getLogInfo();
    expect(info.inactiveShards).toEqual([]);
    const cp = verifyCheckpoint(info.signedTreeHead, server.publicKeyPem, server.logName);
    expect(cp.size).toBe(info.treeSize);
    expect(cp.rootHash.toString('hex')).toBe(info.rootHash);
    expect(cp.origin).toBe(`127.0.0.1 - ${info.treeID}`);
    expect(await client.getPublicKey()).toBe(server.publicKeyPem);
    const res = await fetch(api('/api/v1/log/publicKey'));
    expect(res.headers.get('content-type')).toBe('application/x-pem-file');
  });

  it('serves consistency proofs that verify, and 400 on bad sizes', async () => {
    const before = await client.getLogInfo();
    await client.createEntry(hashedRekord(cert, 'grow 1'));
    await client.createEntry(hashedRekord(cert, 'grow 2'));
    const after = await client.getLogInfo();
    const proof = await client.getConsistencyProof(before.treeSize, after.treeSize);
    expect(proof.rootHash).toBe(after.rootHash);
    const ok = verifyConsistencyProof(
      before.treeSize,
      after.treeSize,
      Buffer.from(before.rootHash, 'hex'),
      Buffer.from(after.rootHash, 'hex'),
      proof.hashes.map((h) => Buffer.from(h, 'hex')),
    );
    expect(ok).toBe(true);
    const same = await client.getConsistencyProof(after.treeSize, after.treeSize);
    expect(same.hashes).toEqual([]);
    for (const q of [
      'firstSize=3&lastSize=2',
      `firstSize=1&lastSize=${after.treeSize + 1}`,
      'firstSize=0&lastSize=1',
      'firstSize=x&lastSize=2',
      'firstSize=1',
      `lastSize=1&treeID=5`,
    ]) {
      const res = await getJson(api(`/api/v1/log/proof?${q}`));
      expect([400, 404]).toContain(res.status);
      expect((res.json as { code: number }).code).toBe(res.status);
    }
  });

  it('searches the index by artifact hash and by signer, with and/or', async () => {
    const s1 = await makeCertSigner('search-1');
    const s2 = makeKeySigner();
    const a = await client.createEntry(hashedRekord(s1, 'needle'));
    const b = await client.createEntry(hashedRekord(s2, 'needle'));
    const c = await client.createEntry(dsseEntry([s1], statement('needle.txt', 'needle')));
    const hash = `sha256:${createHash('sha256').update('needle').digest('hex')}`;
    expect(await client.searchIndex({ hash })).toEqual([a.uuid, b.uuid, c.uuid]);
    expect(await client.searchIndex({ publicKey: s1.pem })).toEqual([a.uuid, c.uuid]);
    expect(await client.searchIndex({ publicKey: s2.pem, hash, operator: 'and' })).toEqual([b.uuid]);
    expect(await client.searchIndex({ hash: `sha256:${'0'.repeat(64)}` })).toEqual([]);
    // A bare hex digest means sha256, as in Rekor.
    expect(await client.searchIndex({ hash: hash.slice(7) })).toHaveLength(3);
    for (const q of [
      {},
      { hash: 'sha256:xyz' },
      { email: 'a@b' },
      { publicKey: { format: 'pgp', content: 'AA==' } },
      { hash, operator: 'xor' },
    ]) {
      expect((await postJson(api('/api/v1/index/retrieve'), q)).status).toBe(400);
    }
  });

  it('bounds request bodies (413) and answers unknown routes 404 and wrong methods 405', async () => {
    const big = { apiVersion: '0.0.1', kind: 'hashedrekord', spec: { pad: 'x'.repeat(70 * 1024) } };
    const res = await postJson(api('/api/v1/log/entries'), big);
    expect(res.status).toBe(413);
    expect((res.json as { code: number }).code).toBe(413);
    // Chunked (no Content-Length) bodies are cut off too.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(
        api('/api/v1/log/entries'),
        { method: 'POST', headers: { 'Content-Type': 'application/json' } },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(8 * 1024));
      req.end();
    });
    expect(chunked).toBe(413);
    const nf = await getJson(api('/api/v1/nothing'));
    expect(nf.status).toBe(404);
    expect(nf.json).toEqual({ code: 404, message: expect.any(String) });
    const m = await fetch(api('/api/v1/log'), { method: 'DELETE' });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
    expect((await fetch(api('/api/v1/log/publicKey'), { method: 'POST' })).status).toBe(405);
  });

  it('the client reports HTTP errors with the server message and validates responses', async () => {
    await expect(client.getEntryByIndex(123456)).rejects.toMatchObject({
      code: 'TLOG_HTTP_ERROR',
      details: { status: 404 },
    });
    const p = hashedRekord(cert, 'x');
    p.spec.signature.content = b64('bad');
    await expect(client.createEntry(p)).rejects.toThrow(/HTTP 400: hashedrekord: the signature does not verify/);
    const liar = new RekorClient({
      baseUrl: server.url,
      fetch: async () => new Response(JSON.stringify({ a: {}, b: {} }), { status: 200 }),
    });
    await expect(liar.getEntryByIndex(0)).rejects.toMatchObject({ code: 'TLOG_BAD_RESPONSE' });
  });
});
