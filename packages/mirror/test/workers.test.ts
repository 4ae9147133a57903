import { get } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorStore } from '@airlock/cas';
import { startMirrorServer } from '../src/index.js';
import { npmFile, openStore, populateFromManifest, removeDir, tempDir } from './helpers/populate.js';
import { removeTranspiled, transpileForChild } from './helpers/transpile.js';

function fetchFresh(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('multi-process serving (workers)', () => {
  let dir: string;
  let build: string;
  let store: MirrorStore;
  const tgz = Buffer.from('served by many processes '.repeat(50));
  beforeAll(async () => {
    dir = tempDir();
    build = transpileForChild();
    store = await openStore(dir);
    await populateFromManifest(store, [npmFile(tgz, { name: 'multi', version: '1.0.0' })]);
  });
  afterAll(async () => {
    await store?.close();
    removeDir(dir);
    if (build) removeTranspiled(build);
  });

  it('worker processes serve the same socket and store, are replaced when they die, and stop on close', async () => {
    const running = await startMirrorServer({
      store,
      workers: 3,
      workerScript: join(build, 'server', 'worker-main.js'),
    });
    let pids: number[] = [];
    try {
      pids = running.workerPids;
      expect(pids).toHaveLength(2);
      expect(pids.every(alive)).toBe(true);
      // The primary accepts and hands connections out round-robin (itself included), so fresh connections land
      // on every process; which process answered each is checked in mirror-serve-hotpath.test.ts.
      for (let i = 0; i < 20; i++) {
        const res = await fetchFresh(`${running.url}/multi/-/multi-1.0.0.tgz`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual(tgz);
      }
      const packument = JSON.parse((await fetchFresh(`${running.url}/multi`)).body.toString()) as {
        versions: Record<string, { dist: { tarball: string } }>;
      };
      expect(packument.versions['1.0.0']!.dist.tarball).toBe(`${running.url}/multi/-/multi-1.0.0.tgz`);
      // A worker killed hard is replaced.
      process.kill(pids[0]!, 'SIGKILL');
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (running.workerPids.length < 2 || running.workerPids.includes(pids[0]!))) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(running.workerPids).toHaveLength(2);
      expect(running.workerPids).not.toContain(pids[0]);
      // Connections handed to the replacement are answered too.
      for (let i = 0; i < 9; i++) expect((await fetchFresh(`${running.url}/multi/-/multi-1.0.0.tgz`)).status).toBe(200);
      pids = [...pids, ...running.workerPids];
    } finally {
      await running.close();
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && pids.some(alive)) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive)).toEqual([]);
  });

  it('refuses a missing worker entry point', async () => {
    await expect(startMirrorServer({ store, workers: 2, workerScript: join(dir, 'nope.js') })).rejects.toMatchObject({
      code: 'MIRROR_CONFIG_INVALID',
    });
  });
});
