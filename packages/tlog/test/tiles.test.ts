import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RekorWitness } from '@sigstore/sign';
import { nginxProblem, startStaticNginx, toolsAvailable, type StaticNginx } from '@airlock/testkit';
import { preAuthEncoding } from '@airlock/core';
import { verifyCheckpoint } from '../src/checkpoint.js';
import { startTlogServer, type RunningTlog } from '../src/http/server.js';
import { hashLeaf, verifyConsistencyProof, verifyInclusionProof } from '../src/merkle.js';
import {
  cosignCheckpoint,
  parseWitnessVkey,
  requireCosignatures,
  verifyCosignatures,
  witnessVkey,
} from '../src/note.js';
import { encodeEntryBundle, encodeTileIndex, entriesPath, tilePath } from '../src/tiles/layout.js';
import { httpTileFetch, TileReader } from '../src/tiles/reader.js';
import { prepareEntry } from '../src/types/index.js';
import { b64, hashedRekord, makeCertSigner, makeKeySigner, postJson, tempDir } from './helpers.js';

// Rekor v2 on the same tree as v1: the v2 write path, and C2SP tlog-tiles published per commit into a directory
// that the log, and nginx alone, serve with the same checkpoint and proofs.

let server: RunningTlog;
let dir: ReturnType<typeof tempDir>;
const key = makeKeySigner();
const spki = (): string => createPublicKey64(key.publicKeyPem);

function createPublicKey64(pem: string): string {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').toString('base64');
}

function v2Request(artifact: string, verifier: Record<string, unknown> = { publicKey: { rawBytes: spki() } }) {
  const data = Buffer.from(artifact);
  return {
    hashedRekordRequestV002: {
      digest: createHash('sha256').update(data).digest('base64'),
      signature: {
        content: sign('sha256', data, key.privateKey).toString('base64'),
        verifier: { ...verifier, keyDetails: 'PKIX_ECDSA_P256_SHA_256' },
      },
    },
  };
}

interface TleJson {
  kindVersion: unknown;
  inclusionPromise?: unknown;
  logId: { keyId: string };
  logIndex: string;
  canonicalizedBody: string;
  inclusionProof: { treeSize: string; hashes: string[]; checkpoint: { envelope: string } };
}

beforeAll(async () => {
  dir = tempDir();
  server = await startTlogServer({ dataDir: dir.path });
});
afterAll(async () => {
  await server?.close();
  dir?.remove();
});

describe('tile paths (C2SP tlog-tiles)', () => {
  it('encodes indices in groups of three digits with x-prefixed directories', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(tilePath(1, 5, 17)).toBe('tile/1/005.p/17');
    expect(tilePath(0, 1000, 256)).toBe('tile/0/x001/000');
  });
});

describe('POST /api/v2/log/entries', () => {
  it('logs a hashedrekord v0.0.2 request and answers a TransparencyLogEntry with proof and checkpoint', async () => {
    const res = await postJson(`${server.url}/api/v2/log/entries`, v2Request('v2 artifact'));
    expect(res.status).toBe(201);
    const tle = res.json as TleJson;
    expect(tle.kindVersion).toEqual({ kind: 'hashedrekord', version: '0.0.2' });
    expect(tle.inclusionPromise).toBeUndefined();
    expect(Buffer.from(tle.logId.keyId, 'base64').toString('hex')).toBe(server.logId);
    const body = JSON.parse(Buffer.from(tle.canonicalizedBody, 'base64').toString());
    expect(body.spec.hashedRekordV002.data.algorithm).toBe('SHA2_256');
    expect(body.spec.hashedRekordV002.signature.verifier.publicKey.rawBytes).toBe(spki());
    const cp = verifyCheckpoint(tle.inclusionProof.checkpoint.envelope, server.publicKeyPem, server.logName);
    expect(String(cp.size)).toBe(tle.inclusionProof.treeSize);
    const hashes = tle.inclusionProof.hashes.map((h: string) => Buffer.from(h, 'base64'));
    const leaf = hashLeaf(Buffer.from(tle.canonicalizedBody, 'base64'));
    expect(verifyInclusionProof(leaf, Number(tle.logIndex), cp.size, hashes, cp.rootHash)).toBe(true);
    // The checkpoint the answer carries is readable from the tiles already (its root from the tile store alone).
    // The tile-store checkpoint follows once those tiles are durable (tiles-background.test.ts): it used to be
    // written before the answer, which kept four fsync rounds on every v2 append's path.
    const fromTiles = new TileReader((p) => server.tiles!.store.get(p));
    expect((await fromTiles.rootAt(cp.size)).equals(cp.rootHash)).toBe(true);
    await server.tiles!.flush();
    expect(server.tiles!.checkpoint!.size).toBeGreaterThanOrEqual(cp.size);
  });

  it('stock sigstore-js RekorWitness (majorApiVersion 2) logs a certificate-signed message signature', async () => {
    const certSigner = await makeCertSigner();
    const artifact = Buffer.from('signed by sigstore-js');
    const witness = new RekorWitness({ rekorBaseURL: server.url, majorApiVersion: 2 });
    const material = await witness.testify(
      {
        $case: 'messageSignature',
        messageSignature: {
          messageDigest: { algorithm: 1, digest: createHash('sha256').update(artifact).digest() },
          signature: sign('sha256', artifact, certSigner.privateKey),
        },
      },
      certSigner.pem,
    );
    const entry = material.tlogEntries![0]!;
    expect(entry.kindVersion).toEqual({ kind: 'hashedrekord', version: '0.0.2' });
    expect(entry.inclusionProof?.checkpoint?.envelope).toContain(`\u2014 ${server.logName} `);
  });

  it('logs a dsseRequestV002 (what sigstore-js 4 sends) as hashedrekord over SHA-256(PAE)', async () => {
    const payload = Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}');
    const type = 'application/vnd.in-toto+json';
    const pae = preAuthEncoding(type, payload);
    const sig = sign('sha256', pae, key.privateKey);
    const res = await postJson(`${server.url}/api/v2/log/entries`, {
      dsseRequestV002: {
        envelope: { payload: b64(payload), payloadType: type, signatures: [{ sig: b64(sig), keyid: '' }] },
        verifiers: [{ publicKey: { rawBytes: spki() }, keyDetails: 'PKIX_ECDSA_P256_SHA_256' }],
      },
    });
    expect(res.status).toBe(201);
    const body = JSON.parse(Buffer.from((res.json as TleJson).canonicalizedBody, 'base64').toString());
    expect(body.kind).toBe('hashedrekord');
    expect(body.spec.hashedRekordV002.data.digest).toBe(createHash('sha256').update(pae).digest('base64'));
  });

  it.each([
    [
      'a signature over another digest',
      () => ({
        ...v2Request('x'),
        hashedRekordRequestV002: {
          ...v2Request('x').hashedRekordRequestV002,
          digest: createHash('sha256').update('y').digest('base64'),
        },
      }),
      400,
      /does not verify/,
    ],
    [
      'keyDetails for another curve',
      () => {
        const r = v2Request('z');
        (r.hashedRekordRequestV002.signature.verifier as Record<string, unknown>).keyDetails =
          'PKIX_ECDSA_P384_SHA_384';
        return r;
      },
      400,
      /does not match keyDetails/,
    ],
    ['an unknown request type', () => ({ intotoRequestV002: {} }), 400, /unsupported request/],
    [
      'a public key labelled as a certificate',
      () => v2Request('w', { x509Certificate: { rawBytes: spki() } }),
      400,
      /does not parse/,
    ],
  ])('refuses %s', async (_name, make, status, message) => {
    const res = await postJson(`${server.url}/api/v2/log/entries`, make());
    expect(res.status).toBe(status);
    expect((res.json as { message: string }).message).toMatch(message);
  });

  it('answers 409 for an entry already logged', async () => {
    const req = v2Request('twice');
    expect((await postJson(`${server.url}/api/v2/log/entries`, req)).status).toBe(201);
    expect((await postJson(`${server.url}/api/v2/log/entries`, req)).status).toBe(409);
  });
});

describe('tiles', () => {
  let nginx: StaticNginx | undefined;
  beforeAll(async () => {
    // Enough v1 entries for full level-0 tiles, partial ones and a level-1 tile (v1 and v2 share the tree).
    const batch = Array.from({ length: 700 }, (_, i) => prepareEntry(hashedRekord(key, `bulk ${i}`)));
    await server.log.appendBatch(batch.slice(0, 300));
    await server.log.appendBatch(batch.slice(300));
    // Tiles are published in the background (v1 appends do not wait for them): wait for the publication.
    await server.tiles!.flush();
    expect(server.tiles!.checkpoint!.size).toBe(server.log.size);
    if (toolsAvailable('tiles served by nginx', [nginxProblem()]))
      nginx = await startStaticNginx(server.tilesDir!, '/api/v2/');
  });
  afterAll(async () => {
    await nginx?.close();
  });

  it('the log serves tiles from which roots and proofs equal the log’s own', async () => {
    const size = server.log.size;
    const reader = new TileReader(httpTileFetch(`${server.url}/api/v2`));
    const cp = verifyCheckpoint(await reader.checkpointText(), server.publicKeyPem, server.logName);
    expect(cp.size).toBe(size);
    expect((await reader.rootAt(size)).equals(await server.log.rootAt(size))).toBe(true);
    for (const [i, n] of [
      [0, size],
      [255, 256],
      [256, 700],
      [size - 1, size],
      [511, 513],
    ] as const)
      expect(await reader.inclusionProof(i, n)).toEqual(await server.log.inclusionProof(i, n));
    for (const [a, b] of [
      [1, size],
      [256, 512],
      [300, 700],
      [513, size],
    ] as const) {
      const proof = await reader.consistencyProof(a, b);
      expect(proof).toEqual(await server.log.consistencyProof(a, b));
      expect(verifyConsistencyProof(a, b, await server.log.rootAt(a), await server.log.rootAt(b), proof)).toBe(true);
    }
    const entries = await reader.entries(1, size);
    expect(entries[0]!.equals((await server.log.getEntryRange(256, 1))[0]!.body)).toBe(true);
  });

  it('nginx serving the tile directory alone gives the same checkpoint and proofs', async (ctx) => {
    if (!nginx) return ctx.skip();
    const size = server.log.size;
    const fromLog = new TileReader(httpTileFetch(`${server.url}/api/v2`));
    const fromNginx = new TileReader(httpTileFetch(`${nginx.url}/api/v2`));
    expect(await fromNginx.checkpointText()).toBe(await fromLog.checkpointText());
    for (const i of [0, 1, 257, 600, size - 1])
      expect(await fromNginx.inclusionProof(i, size)).toEqual(await fromLog.inclusionProof(i, size));
    expect(await fromNginx.consistencyProof(10, size)).toEqual(await fromLog.consistencyProof(10, size));
    expect(await fromNginx.entries(2, size)).toEqual(await fromLog.entries(2, size));
    const tile = await fetch(`${nginx.url}/api/v2/${tilePath(1, 0, Math.floor(size / 256))}`);
    expect(tile.status).toBe(200);
  });

  it('tiles are write-once: full tiles stay byte-identical as the log grows', async () => {
    const path = tilePath(0, 0, 256);
    const before = await server.tiles!.store.get(path);
    await postJson(`${server.url}/api/v2/log/entries`, v2Request('one more'));
    expect((await server.tiles!.store.get(path))!.equals(before!)).toBe(true);
    await expect(server.tiles!.store.put(path, Buffer.alloc(32 * 256))).rejects.toThrow(/different contents/);
  });

  it('rejects tile paths outside the layout', async () => {
    for (const p of ['tile/0/../../tlog.sqlite', 'tile/0/1', 'tlog-signing-key.pem'])
      expect((await fetch(`${server.url}/api/v2/${p}`)).status).toBeGreaterThanOrEqual(400);
  });
});

describe('witness cosignatures (C2SP tlog-cosignature)', () => {
  const w1 = generateKeyPairSync('ed25519');
  const w2 = generateKeyPairSync('ed25519');
  const k1 = parseWitnessVkey(witnessVkey('witness.example/w1', w1.publicKey));
  const k2 = parseWitnessVkey(witnessVkey('witness.example/w2', w2.publicKey));

  it('cosigned checkpoints keep the log signature first and verify per witness; unknown signers are ignored', () => {
    const note = server.log.checkpoint().note;
    const once = cosignCheckpoint(note, 'witness.example/w1', w1.privateKey);
    const twice = cosignCheckpoint(once, 'witness.example/w2', w2.privateKey);
    expect(twice.startsWith(note)).toBe(true);
    expect(verifyCheckpoint(twice, server.publicKeyPem, server.logName).size).toBe(server.log.size);
    expect(verifyCosignatures(twice, [k1, k2]).map((c) => c.name)).toEqual([
      'witness.example/w1',
      'witness.example/w2',
    ]);
    expect(verifyCosignatures(once, [k2])).toEqual([]);
    expect(() => requireCosignatures(once, [k1, k2], 2)).toThrow(/1 valid witness cosignature/);
    requireCosignatures(twice, [k1, k2], 2);
  });

  it('a cosignature over another checkpoint is refused', () => {
    const note = server.log.checkpoint().note;
    const cosigned = cosignCheckpoint(note, 'witness.example/w1', w1.privateKey);
    const line = cosigned.slice(note.length);
    const other = note.replace(/\n\d+\n/, (m) => `\n${Number(m.trim()) + 1}\n`);
    expect(() => verifyCosignatures(other + line, [k1])).toThrow(/does not verify/);
  });

  it('a vkey whose key ID does not match is refused', () => {
    const vkey = witnessVkey('witness.example/w1', w1.publicKey);
    expect(() => parseWitnessVkey(vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+'))).toThrow(/does not match/);
  });
});

describe('tile catch-up at start', () => {
  it('after a restart the partial tile and entry bundle continue byte for byte what the stored entries give', async () => {
    const d = tempDir();
    try {
      const first = await startTlogServer({ dataDir: d.path });
      for (let i = 0; i < 3; i++) await first.log.append(hashedRekord(key, `edge ${i}`));
      await first.close();
      // The writer's in-memory edge (encoded bundle entries, partial tile hashes) is rebuilt from the files.
      const again = await startTlogServer({ dataDir: d.path });
      try {
        await Promise.all([0, 1, 2, 3].map((i) => again.log.append(hashedRekord(key, `after restart ${i}`))));
        await again.tiles!.flush();
        const size = again.log.size;
        expect(size).toBe(7);
        const stored = await again.log.getEntryRange(0, size);
        const tiles = join(d.path, 'tiles');
        expect(readFileSync(join(tiles, entriesPath(0, size)))).toEqual(encodeEntryBundle(stored.map((e) => e.body)));
        expect(readFileSync(join(tiles, tilePath(0, 0, size)))).toEqual(Buffer.concat(stored.map((e) => e.leafHash)));
        const cp = verifyCheckpoint(readFileSync(join(tiles, 'checkpoint'), 'utf8'), again.publicKeyPem, again.logName);
        expect(cp.size).toBe(size);
        expect(cp.rootHash.equals(await again.log.rootAt(size))).toBe(true);
      } finally {
        await again.close();
      }
    } finally {
      d.remove();
    }
  });

  it('entries committed without their tiles (a crash before publication) are tiled when the server starts', async () => {
    const d = tempDir();
    try {
      const first = await startTlogServer({ dataDir: d.path });
      await first.log.appendBatch(Array.from({ length: 10 }, (_, i) => prepareEntry(hashedRekord(key, `before ${i}`))));
      await first.close();
      // The log alone (no tile hook): 300 more durable entries the tile directory knows nothing of.
      const { TransparencyLog } = await import('../src/log.js');
      const bare = await TransparencyLog.open({ dataDir: d.path });
      await bare.appendBatch(
        Array.from({ length: 300 }, (_, i) => prepareEntry(hashedRekord(key, `unpublished ${i}`))),
      );
      await bare.close();
      const again = await startTlogServer({ dataDir: d.path });
      try {
        expect(again.tiles!.checkpoint!.size).toBe(310);
        const reader = new TileReader(httpTileFetch(`${again.url}/api/v2`));
        verifyCheckpoint(await reader.checkpointText(), again.publicKeyPem, again.logName);
        expect((await reader.rootAt(310)).equals(await again.log.rootAt(310))).toBe(true);
        expect(await reader.inclusionProof(5, 310)).toEqual(await again.log.inclusionProof(5, 310));
      } finally {
        await again.close();
      }
    } finally {
      d.remove();
    }
  });
});
