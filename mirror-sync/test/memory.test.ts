import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncToBundle } from '../src/index.js';
import { loopbackFetch, startUpstream, type Upstream } from '@airlock/testkit';

const MiB = 1024 * 1024;
const BLOCKS = 200;

let up: Upstream;
let dir: string;
beforeAll(async () => {
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-mem-'));
});
afterAll(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('streaming', () => {
  it('syncs a ~200 MB blob generated on the fly without growing RSS by more than a few tens of MB', async () => {
    // One 1 MiB block, different bytes per position so nothing compresses or dedupes by accident.
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
    const h = createHash('sha256');
    for (let i = 0; i < BLOCKS; i++) h.update(block);
    const expected = h.digest('hex');
    const serve = (blocks: number) => async (_req: unknown, res: import('node:http').ServerResponse) => {
      res.setHeader('content-length', String(blocks * MiB));
      for (let i = 0; i < blocks; i++) if (!res.write(block)) await once(res, 'drain');
      res.end();
    };
    up.route('/huge.bin', serve(BLOCKS));
    up.route('/warmup.bin', serve(8));
    const listPath = join(dir, 'list.json');
    writeFileSync(listPath, JSON.stringify([{ url: `${up.url}/huge.bin`, sha256: expected }]));

    // Warm-up with a small blob: module loading, JIT, schema compilation and stream buffers are a fixed cost we
    // do not want to count. What must not happen is growth with the size of the blob.
    const w = createHash('sha256');
    for (let i = 0; i < 8; i++) w.update(block);
    const warmList = join(dir, 'warm.json');
    writeFileSync(warmList, JSON.stringify([{ url: `${up.url}/warmup.bin`, sha256: w.digest('hex') }]));
    await syncToBundle({
      inputs: [{ path: warmList, kind: 'generic' }],
      out: join(dir, 'warm.tar'),
      quiet: true,
      fetch: loopbackFetch,
    });

    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const r = await syncToBundle({
        inputs: [{ path: listPath, kind: 'generic' }],
        out: join(dir, 'big.tar'),
        quiet: true,
        createdAt: '2026-01-01T00:00:00Z',
        fetch: loopbackFetch,
      });
      expect(r.manifest.blobs).toEqual([{ sha256: expected, size: BLOCKS * MiB }]);
      expect(statSync(r.bundlePath).size).toBeGreaterThan(BLOCKS * MiB);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const growth = (peak - before) / MiB;
    console.log(
      `rss before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, growth ${growth.toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(64);
  });
});
