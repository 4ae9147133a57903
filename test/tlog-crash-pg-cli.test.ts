/**
 * Issue 12 acceptance, the log's durability promise on PostgreSQL through the CLI: `airlock tlog serve --index
 * postgres://…` is SIGKILLed while 8 clients append; restarted on the same data directory and database, it holds
 * every acknowledged entry at the index it was acknowledged with (inclusion proofs verify against the restarted
 * head), the restarted tree is a consistent extension of every checkpoint served before the kill, and appends go on.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  hashLeaf,
  RekorClient,
  verifyCheckpoint,
  verifyConsistencyProof,
  verifyInclusionProof,
  verifyLogEntry,
  type Checkpoint,
  type LogEntry,
} from '@airlock/tlog';
import { postgresProblem, startPostgres, toolsAvailable, type PostgresServer } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from './helpers/cli.js';

const available = toolsAvailable('tlog serve kill -9 on PostgreSQL', [postgresProblem()]);
const CLIENTS = 8;
const KILL_AFTER = 150;

let pg: PostgresServer | undefined;
let root: string;
const procs: Array<{ stop: () => Promise<void> }> = [];

beforeAll(async () => {
  if (!available) return;
  pg = await startPostgres();
  root = mkdtempSync(join(tmpdir(), 'airlock-tlog-crash-pg-'));
}, 180_000);
afterAll(async () => {
  for (const p of procs) await p.stop();
  await pg?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** A proposed hashedrekord entry (Rekor v1) over `artifact`, signed with the test key. */
function hashedRekord(artifact: string): unknown {
  const data = Buffer.from(artifact);
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(data).digest('hex') } },
      signature: {
        content: sign('sha256', data, privateKey).toString('base64'),
        publicKey: { content: Buffer.from(publicPem).toString('base64') },
      },
    },
  };
}

async function serve(data: string, index: string) {
  const p = await startCli(['tlog', 'serve', '--data', data, '--index', index, '--json'], (o) =>
    o.trim().endsWith('}'),
  );
  procs.push(p);
  const { url } = JSON.parse(p.stdout()) as { url: string };
  return { ...p, url };
}

describe.runIf(available)('airlock tlog serve --index postgres:// killed with -9 during appends', () => {
  it(
    'keeps every acknowledged entry, serves a tree consistent with every earlier checkpoint, and goes on',
    { timeout: 300_000 },
    async () => {
      const db = await pg!.createDatabase();
      process.env.PGPASSWORD = db.password;
      const index = `postgres://${db.user}@127.0.0.1:${pg!.port}/${db.name}`;
      const data = join(root, 'data');
      try {
        const first = await serve(data, index);
        const client = new RekorClient({ baseUrl: first.url, timeoutMs: 5000 });
        const logKey = await client.getPublicKey();
        const acked = new Map<string, number>();
        const served: Checkpoint[] = [];
        let stop = false;
        let n = 0;
        const writer = async (): Promise<void> => {
          while (!stop) {
            const body = JSON.stringify(hashedRekord(`crash entry ${n++} ${Math.random()}`));
            try {
              const res = await fetch(`${first.url}/api/v1/log/entries`, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json' },
                body,
              });
              if (res.status !== 201) continue;
              const [uuid, value] = Object.entries((await res.json()) as Record<string, Omit<LogEntry, 'uuid'>>)[0]!;
              acked.set(uuid, value.logIndex);
              served.push(verifyCheckpoint(value.verification!.inclusionProof!.checkpoint, logKey));
            } catch {
              return; // the server is gone
            }
          }
        };
        const reader = async (): Promise<void> => {
          while (!stop) {
            try {
              served.push(verifyCheckpoint((await client.getLogInfo()).signedTreeHead, logKey));
            } catch {
              return;
            }
            await sleep(5);
          }
        };
        const running = [...Array(CLIENTS).keys()].map(writer).concat(reader());
        for (let waited = 0; acked.size < KILL_AFTER && waited < 60_000; waited += 10) await sleep(10);
        const exited = new Promise((r) => first.child.once('exit', r));
        first.child.kill('SIGKILL');
        await exited;
        stop = true;
        await Promise.all(running);
        expect(acked.size).toBeGreaterThanOrEqual(KILL_AFTER);
        // The log metadata was never in a local database file.
        expect(readdirSync(data).filter((f) => f.endsWith('.sqlite'))).toEqual([]);

        const second = await serve(data, index);
        const after = new RekorClient({ baseUrl: second.url, timeoutMs: 10_000 });
        expect(await after.getPublicKey()).toBe(logKey);
        const head = verifyCheckpoint((await after.getLogInfo()).signedTreeHead, logKey);
        expect(head.size).toBeGreaterThanOrEqual(acked.size);
        const uuids = [...acked.keys()];
        const found = await after.retrieveEntries({ entryUUIDs: uuids });
        expect(found).toHaveLength(uuids.length);
        for (const e of found) {
          expect(e.logIndex).toBe(acked.get(e.uuid));
          verifyLogEntry(e, { publicKey: logKey });
          const proof = e.verification!.inclusionProof!;
          expect(proof.treeSize).toBe(head.size);
          const ok = verifyInclusionProof(
            hashLeaf(Buffer.from(e.body, 'base64')),
            e.logIndex,
            head.size,
            proof.hashes.map((h) => Buffer.from(h, 'hex')),
            head.rootHash,
          );
          expect(ok, `entry ${e.logIndex} is in the restarted tree`).toBe(true);
        }
        const roots = new Map<number, string>();
        for (const cp of served) {
          const r = cp.rootHash.toString('hex');
          expect(roots.get(cp.size) ?? r).toBe(r); // never two roots for one size
          roots.set(cp.size, r);
        }
        expect(roots.size).toBeGreaterThan(1);
        for (const [size, r] of roots) {
          if (size === 0) continue;
          const proof = await after.getConsistencyProof(size, head.size);
          const ok = verifyConsistencyProof(
            size,
            head.size,
            Buffer.from(r, 'hex'),
            head.rootHash,
            proof.hashes.map((h) => Buffer.from(h, 'hex')),
          );
          expect(ok, `checkpoint of size ${size} is consistent with the restarted tree`).toBe(true);
        }
        const next = await after.createEntry(hashedRekord('after the crash'));
        expect(next.logIndex).toBe(head.size);
        console.log(`acknowledged before kill -9: ${acked.size}; restarted tree size ${head.size}`);
      } finally {
        delete process.env.PGPASSWORD;
      }
    },
  );
});
