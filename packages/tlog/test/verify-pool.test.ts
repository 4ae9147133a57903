import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareEntry } from '../src/types/index.js';
import type { VerifierPool as Pool } from '../src/verify-pool.js';
import { dsseEntry, hashedRekord, makeKeySigner } from './helpers.js';

// The worker threads run the compiled worker, so this drives the built pool (like crash.test.ts drives dist).
const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'verify-pool.js');

let pool: Pool;
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build first (npx tsc -b packages/tlog)`);
  const { VerifierPool } = (await import(pathToFileURL(DIST).href)) as { VerifierPool: typeof Pool };
  pool = new VerifierPool(2);
});
afterAll(async () => {
  await pool?.close();
});

describe('VerifierPool (worker threads, batched across callers)', () => {
  it('runs on threads and gives exactly what inline prepareEntry gives, for many concurrent proposals', async () => {
    expect(pool.threads).toBe(2);
    const signer = makeKeySigner();
    const proposals = Array.from({ length: 40 }, (_, i) =>
      i % 2 === 0 ? dsseEntry([signer], `pool ${i}`) : hashedRekord(signer, `pool ${i}`),
    );
    const results = await Promise.all(proposals.map((p) => pool.prepare(p)));
    results.forEach((r, i) => {
      const inline = prepareEntry(proposals[i]);
      expect(Buffer.isBuffer(r.body) && Buffer.isBuffer(r.leafHash)).toBe(true);
      expect(r).toEqual(inline);
    });
  });

  it('refuses bad proposals with the same typed error as inline, without failing the others in the batch', async () => {
    const signer = makeKeySigner();
    const good = hashedRekord(signer, 'good');
    const forged = hashedRekord(signer, 'forged');
    forged.spec.signature.content = hashedRekord(signer, 'other').spec.signature.content;
    const settled = await Promise.allSettled([pool.prepare(good), pool.prepare(forged), pool.prepare({ kind: 1 })]);
    expect(settled[0]!.status).toBe('fulfilled');
    let inlineError: unknown;
    try {
      prepareEntry(forged);
    } catch (err) {
      inlineError = err;
    }
    const reason = (settled[1] as PromiseRejectedResult).reason as { code: string; message: string };
    expect(reason.code).toBe('TLOG_SIGNATURE_INVALID');
    expect(reason.message).toBe((inlineError as Error).message);
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'TLOG_INVALID_ENTRY' });
  });
});

describe('defaultVerifierThreads', () => {
  it('verifies inline below 4 cores (threads cost more than they saved on 2 cores) and uses threads above', async () => {
    const { defaultVerifierThreads } = await import('../src/verify-pool.js');
    expect([1, 2, 3].map((c) => defaultVerifierThreads(c))).toEqual([0, 0, 0]);
    expect([4, 5, 6, 16].map((c) => defaultVerifierThreads(c))).toEqual([2, 3, 4, 4]);
  });
});
