import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyCheckpoint, type Checkpoint } from '../src/checkpoint.js';
import { RekorClient } from '../src/client.js';
import { verifyLogEntry, type LogEntry } from '../src/entry.js';
import { hashLeaf, verifyConsistencyProof, verifyInclusionProof } from '../src/merkle.js';
import { dsseEntry, hashedRekord, makeKeySigner, tempDir } from './helpers.js';

const SERVE_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'serve-main.js');
const CLIENTS = 8;

const children = new Set<ChildProcess>();
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const c of cleanups.splice(0)) c();
});

async function spawnLog(dataDir: string): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  if (!existsSync(SERVE_MAIN)) throw new Error(`${SERVE_MAIN} is missing: build first (npx tsc -b packages/tlog)`);
  const child = spawn(process.execPath, [SERVE_MAIN, '--data', dataDir, '--host', '127.0.0.1', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`serve-main exited (${code}) before listening: ${stderr}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return { child, url, exited };
}

describe('crash safety (kill -9)', () => {
  it('keeps every acknowledged entry at its index and extends every served checkpoint consistently', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const first = await spawnLog(dir.path);
    const client = new RekorClient({ baseUrl: first.url, timeoutMs: 5000 });
    const { publicKeyPem } = { publicKeyPem: await client.getPublicKey() };

    const acked = new Map<string, number>();
    const served: Checkpoint[] = [];
    let stop = false;
    const signer = makeKeySigner();
    let n = 0;
    const writer = async (w: number) => {
      while (!stop) {
        const i = n++;
        const p = i % 3 === 0 ? hashedRekord(signer, `crash ${w} ${i}`) : dsseEntry([signer], `crash ${w} ${i}`);
        try {
          const res = await fetch(`${first.url}/api/v1/log/entries`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify(p),
          });
          if (res.status !== 201) continue;
          const [uuid, value] = Object.entries((await res.json()) as Record<string, Omit<LogEntry, 'uuid'>>)[0]!;
          acked.set(uuid, value.logIndex);
          served.push(verifyCheckpoint(value.verification!.inclusionProof!.checkpoint, publicKeyPem));
        } catch {
          return; // the server is gone
        }
      }
    };
    const checkpointReader = async () => {
      while (!stop) {
        try {
          served.push(verifyCheckpoint((await client.getLogInfo()).signedTreeHead, publicKeyPem));
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const running = [...Array(CLIENTS).keys()].map(writer).concat(checkpointReader());
    // Kill mid-stream, once a fair number of appends has been acknowledged.
    for (let waited = 0; acked.size < 150 && waited < 30_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    await first.exited;
    stop = true;
    await Promise.all(running);
    expect(acked.size).toBeGreaterThanOrEqual(150);

    const second = await spawnLog(dir.path);
    const after = new RekorClient({ baseUrl: second.url });
    expect(await after.getPublicKey()).toBe(publicKeyPem);
    const info = await after.getLogInfo();
    const head = verifyCheckpoint(info.signedTreeHead, publicKeyPem);
    expect(head.size).toBeGreaterThanOrEqual(acked.size);

    // Every acknowledged entry survived at the index it was acknowledged with.
    const uuids = [...acked.keys()];
    const found = await after.retrieveEntries({ entryUUIDs: uuids });
    expect(found).toHaveLength(uuids.length);
    for (const e of found) expect(e.logIndex).toBe(acked.get(e.uuid));
    // … with an inclusion proof (and SET, checkpoint signature) that verifies against the restarted tree's head.
    for (const e of found) {
      verifyLogEntry(e, { publicKey: publicKeyPem });
      const proof = e.verification!.inclusionProof!;
      expect(proof.treeSize).toBe(head.size);
      const ok = verifyInclusionProof(
        hashLeaf(Buffer.from(e.body, 'base64')),
        e.logIndex,
        head.size,
        proof.hashes.map((h) => Buffer.from(h, 'hex')),
        head.rootHash,
      );
      expect(ok, `entry ${e.logIndex} is included in the restarted tree`).toBe(true);
    }

    // The restarted tree is a consistent extension of every checkpoint served before the kill.
    const sizes = new Map<number, string>();
    for (const cp of served) {
      const root = cp.rootHash.toString('hex');
      expect(sizes.get(cp.size) ?? root).toBe(root); // never two roots for one size
      sizes.set(cp.size, root);
    }
    expect(sizes.size).toBeGreaterThan(1);
    for (const [size, root] of sizes) {
      if (size === 0) continue;
      const proof = await after.getConsistencyProof(size, head.size);
      const ok = verifyConsistencyProof(
        size,
        head.size,
        Buffer.from(root, 'hex'),
        head.rootHash,
        proof.hashes.map((h) => Buffer.from(h, 'hex')),
      );
      expect(ok, `checkpoint of size ${size} is consistent with the restarted tree`).toBe(true);
    }

    // The log keeps working.
    const next = await after.createEntry(hashedRekord(signer, 'after the crash'));
    expect(next.logIndex).toBe(head.size);
    second.child.kill('SIGTERM');
    await second.exited;
    expect(second.child.exitCode).toBe(0);
  });
});
