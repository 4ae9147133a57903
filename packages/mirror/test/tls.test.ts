import { mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorStore } from '@airlock/cas';
import { makePki, opensslProblem, toolsAvailable } from '@airlock/testkit';
import { startMirrorServer, type RunningMirrorServer } from '../src/index.js';
import { npmFile, openStore, populateFromManifest, removeDir, tempDir } from './helpers/populate.js';

function get(
  url: string,
  path: string,
  tls: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status: number; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path, ca: tls.ca, cert: tls.cert, key: tls.key, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('TLS and mTLS', () => {
  const available = toolsAvailable('mirror TLS and mTLS', [opensslProblem()]);
  let dir: string;
  let store: MirrorStore;
  const servers: RunningMirrorServer[] = [];
  const tgz = Buffer.from('tls tarball '.repeat(10));
  const file = (name: string) => readFileSync(join(dir, name));

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir();
    makePki(dir);
    store = await openStore(dir);
    await populateFromManifest(store, [npmFile(tgz, { name: 'over-tls', version: '1.0.0' })]);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await store?.close();
    if (dir) removeDir(dir);
  });

  it.skipIf(!available)('serves over https and rewrites tarball URLs to https', async () => {
    const server = await startMirrorServer({ store, tls: { cert: file('server.crt'), key: file('server.key') } });
    servers.push(server);
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await get(server.url, '/over-tls', { ca: file('ca.crt') });
    expect(res.status).toBe(200);
    const doc = JSON.parse(res.body.toString()) as { versions: Record<string, { dist: { tarball: string } }> };
    expect(doc.versions['1.0.0']!.dist.tarball).toBe(`${server.url}/over-tls/-/over-tls-1.0.0.tgz`);
  });

  it.skipIf(!available)('requires a client certificate from the configured CA when mTLS is on', async () => {
    const server = await startMirrorServer({
      store,
      tls: { cert: file('server.crt'), key: file('server.key'), ca: file('ca.crt') },
    });
    servers.push(server);
    await expect(get(server.url, '/over-tls', { ca: file('ca.crt') })).rejects.toThrow();
    const ok = await get(server.url, '/over-tls/-/over-tls-1.0.0.tgz', {
      ca: file('ca.crt'),
      cert: file('client.crt'),
      key: file('client.key'),
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual(tgz);
    // A certificate from another CA is refused too.
    const other = join(dir, 'other');
    mkdirSync(other);
    const rogue = makePki(other);
    await expect(
      get(server.url, '/over-tls', {
        ca: file('ca.crt'),
        cert: readFileSync(rogue.clientCertFile),
        key: readFileSync(rogue.clientKeyFile),
      }),
    ).rejects.toThrow();
  });

  it('rejects a publicUrl that is not a plain http(s) URL', async () => {
    const dir2 = tempDir();
    const s = await openStore(dir2);
    try {
      await expect(startMirrorServer({ store: s, publicUrl: 'ftp://x' })).rejects.toMatchObject({
        code: 'MIRROR_CONFIG_INVALID',
      });
      await expect(startMirrorServer({ store: s, publicUrl: 'https://user:pw@x/' })).rejects.toMatchObject({
        code: 'MIRROR_CONFIG_INVALID',
      });
      const srv = await startMirrorServer({ store: s, publicUrl: 'https://mirror.example/npm/' });
      expect(srv.publicUrl).toBe('https://mirror.example/npm');
      await srv.close();
    } finally {
      await s.close();
      removeDir(dir2);
    }
  });
});
