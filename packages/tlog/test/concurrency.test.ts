import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RekorClient } from '../src/client.js';
import type { LogEntry } from '../src/entry.js';
import { startTlogServer, type RunningTlog } from '../src/http/server.js';
import { verifyCheckpoint } from '../src/checkpoint.js';
import { dsseEntry, hashedRekord, makeKeySigner, postJson, referenceRoot, tempDir } from './helpers.js';

const WRITERS = 8;
const PER_WRITER = 50;

let server: RunningTlog;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  dir = tempDir();
  server = await startTlogServer({ dataDir: dir.path });
});
afterAll(async () => {
  await server?.close();
  dir?.remove();
});

describe(`${WRITERS} concurrent writers × ${PER_WRITER} entries over HTTP`, () => {
  it('acknowledges every entry exactly once at dense indices, and the final root is the reference root', async () => {
    // Proposals are built first so the writers only compete for the log.
    const proposals = Array.from({ length: WRITERS }, (_, w) => {
      const signer = makeKeySigner();
      return Array.from({ length: PER_WRITER }, (_, i) =>
        i % 2 === 0 ? dsseEntry([signer], `writer ${w} entry ${i}`) : hashedRekord(signer, `writer ${w} entry ${i}`),
      );
    });
    const acked: LogEntry[] = [];
    await Promise.all(
      proposals.map(async (mine) => {
        for (const p of mine) {
          const res = await postJson(`${server.url}/api/v1/log/entries`, p);
          expect(res.status).toBe(201);
          const [uuid, value] = Object.entries(res.json as Record<string, Omit<LogEntry, 'uuid'>>)[0]!;
          acked.push({ uuid, ...value });
        }
      }),
    );
    const N = WRITERS * PER_WRITER;
    expect(acked).toHaveLength(N);
    expect(new Set(acked.map((e) => e.uuid)).size).toBe(N);
    expect(acked.map((e) => e.logIndex).sort((a, b) => a - b)).toEqual([...Array(N).keys()]);
    // Concurrency actually happened: some batches held more than one entry (shared checkpoints).
    const checkpoints = new Set(acked.map((e) => e.verification?.inclusionProof?.checkpoint));
    expect(checkpoints.size).toBeLessThan(N);

    // Read everything back; the stored bodies, in index order, hash to the log's signed root.
    const client = new RekorClient({ baseUrl: server.url });
    const stored = new Map<number, LogEntry>();
    for (let i = 0; i < N; i += 100) {
      const res = await postJson(`${server.url}/api/v1/log/entries/retrieve`, {
        logIndexes: [...Array(Math.min(100, N - i)).keys()].map((k) => i + k),
      });
      for (const item of res.json as Array<Record<string, Omit<LogEntry, 'uuid'>>>) {
        const [uuid, value] = Object.entries(item)[0]!;
        expect(stored.has(value.logIndex)).toBe(false);
        stored.set(value.logIndex, { uuid, ...value });
      }
    }
    expect(stored.size).toBe(N);
    for (const e of acked) {
      expect(stored.get(e.logIndex)?.uuid).toBe(e.uuid);
      expect(stored.get(e.logIndex)?.body).toBe(e.body);
    }
    const info = await client.getLogInfo();
    expect(info.treeSize).toBe(N);
    const cp = verifyCheckpoint(info.signedTreeHead, server.publicKeyPem);
    const bodies = [...Array(N).keys()].map((i) => Buffer.from(stored.get(i)!.body, 'base64'));
    expect(referenceRoot(bodies).toString('hex')).toBe(cp.rootHash.toString('hex'));
  });
});
