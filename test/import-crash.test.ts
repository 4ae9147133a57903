/**
 * Crash safety through the CLI, on every store backend (a directory; S3 on a real radosgw with the index in a
 * directory): `airlock mirror import` killed with SIGKILL at several moments leaves the store exactly as it was
 * (fsck clean, no head, no blob left once the next opener recovered, no dangling multipart upload), and a later
 * good import of the same bundle succeeds. Then a blob corrupted at rest after import is never served, and fsck
 * reports it.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get as httpGet, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { CLI, runCli, startCli } from './helpers/cli.js';
import {
  STORE_BACKENDS,
  startStoreBackend,
  storeBackendAvailable,
  type StoreBackend,
} from './helpers/store-backends.js';
import { storeArgs } from './helpers/upstream-e2e.js';

let root: string;
let plane: RunningTrustPlane;
let files: Server;
let bundle: string;
const blobs = new Map<string, Buffer>();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-crash-'));
  plane = await startTrustPlane({ dataDir: join(root, 'plane') });
  // 160 blobs of 512 KiB: enough work that an import is mid-way when killed; two of 20 MiB go up to S3 in parts.
  for (let i = 0; i < 160; i++) {
    const b = randomBytes(512 * 1024);
    blobs.set(`/f/${i}.bin`, b);
  }
  for (const i of [40, 120]) blobs.set(`/f/${i}.bin`, randomBytes(20 * 1024 * 1024));
  files = createServer((req, res) => {
    const b = blobs.get(req.url ?? '');
    if (!b) return void res.writeHead(404).end();
    res.end(b);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  writeFileSync(
    join(root, 'list.json'),
    JSON.stringify(
      [...blobs].map(([p, b]) => ({ url: `${base}${p}`, sha256: createHash('sha256').update(b).digest('hex') })),
    ),
  );
  bundle = join(root, 'big.tar');
  const s = await runCli([
    'sync',
    '--list',
    join(root, 'list.json'),
    '--out',
    bundle,
    '--data',
    join(root, 'plane'),
    '--json',
  ]);
  expect(s.code, s.stdout + s.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await new Promise((r) => files?.close(r));
  await plane?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

const BACKENDS = STORE_BACKENDS.filter(storeBackendAvailable);

/** GET on a new connection (no keep-alive), so successive requests can land on different server processes. */
function getFresh(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe.each(BACKENDS)('kill -9 during import (%s store)', (backendName) => {
  let backend: StoreBackend;
  beforeAll(async () => {
    const dir = join(root, backendName);
    mkdirSync(dir);
    backend = await startStoreBackend(backendName, dir);
  }, 120_000);
  afterAll(async () => {
    await backend?.stop();
  });

  const importArgs = (): string[] => [
    'mirror',
    'import',
    bundle,
    ...storeArgs(backend.ref),
    '--create',
    '--data',
    join(root, 'plane'),
    '--sync-identity',
    `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`,
    '--sync-issuer',
    plane.endpoints.identityIssuerUrl,
  ];

  /**
   * Starts an import and SIGKILLs it `when` ms after it reports the bundle verified (i.e. while blobs stream in), or
   * as soon as the first blob is visible in the store ('first-blob': a fast import's only window with blobs in but
   * nothing committed, which fixed delays can miss on a quiet machine).
   */
  function killMidImport(when: number | 'first-blob'): Promise<{ killed: boolean; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...importArgs()], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let armed = false;
      let exited = false;
      let timer: NodeJS.Timeout | undefined;
      const killOnFirstBlob = async (): Promise<void> => {
        while (!exited && (await backend.storedBlobs()).length === 0) await new Promise((r) => setImmediate(r));
        if (!exited) child.kill('SIGKILL');
      };
      child.stderr.on('data', (d: Buffer) => {
        stderr += d;
        if (armed || !stderr.includes('verified snapshot')) return;
        armed = true;
        if (when === 'first-blob') void killOnFirstBlob().catch(reject);
        else timer = setTimeout(() => child.kill('SIGKILL'), when);
      });
      child.on('error', reject);
      child.on('exit', (_code, signal) => {
        exited = true;
        if (timer) clearTimeout(timer);
        resolve({ killed: signal === 'SIGKILL', stderr });
      });
    });
  }

  async function fsckJson(): Promise<{
    code: number | null;
    report: { clean: boolean; checked: number; corrupt: unknown[]; missing: unknown[] };
  }> {
    const r = await runCli(['mirror', 'fsck', ...storeArgs(backend.ref), '--json']);
    return { code: r.code, report: JSON.parse(r.stdout) };
  }

  const serveArgs = (): string[] => ['mirror', 'serve', ...storeArgs(backend.ref), '--json'];

  it('leaves the store unchanged at every kill point, then a good import succeeds', async () => {
    let killedMidway = 0;
    let killedWithBlobsIn = 0;
    let completedBeforeKill = false;
    // Later kills too: the directory store makes blobs visible a batch (up to 64 MiB) at a time, not one by one.
    for (const when of [0, 'first-blob', 40, 150, 400, 1200, 2500, 5000] as const) {
      const { killed, stderr } = await killMidImport(when);
      if (!killed) {
        completedBeforeKill = true; // it finished first: the good import below has happened already
        break;
      }
      expect(stderr).not.toMatch(/imported snapshot/);
      const blobsAtKill = (await backend.storedBlobs()).length;
      const serve = await startCli(serveArgs(), (o) => o.trim().endsWith('}'));
      const head = JSON.parse(serve.stdout()) as { snapshot: string | null };
      await serve.stop();
      if (head.snapshot !== null) {
        // Killed after its commit became durable but before it said so: the whole snapshot is there (checked below).
        completedBeforeKill = true;
        break;
      }
      killedMidway++;
      // Before anyone recovers: blobs may have been written, but none is published (no head).
      if (blobsAtKill > 0) killedWithBlobsIn++;
      // The next opener recovered: the blobs the dead import had written are gone, its uploads aborted.
      const f = await fsckJson();
      expect(f.code, JSON.stringify(f.report)).toBe(0);
      expect(f.report).toMatchObject({ clean: true, checked: 0, corrupt: [], missing: [] });
      expect(await backend.storedBlobs()).toEqual([]);
      expect(await backend.partialUploads()).toBe(0);
    }
    // At least one kill must have landed mid-import, with blobs already written, for the test to mean anything.
    expect(killedMidway).toBeGreaterThan(0);
    expect(killedWithBlobsIn).toBeGreaterThan(0);
    if (!completedBeforeKill) {
      const ok = await runCli([...importArgs(), '--json']);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, blobs: 160 });
    }
    const f = await fsckJson();
    expect(f.report).toMatchObject({ clean: true, checked: 160 });
    expect((await backend.storedBlobs()).length).toBe(160);
  }, 480_000);

  it('a blob corrupted at rest after import is never served, and fsck reports it', async () => {
    const bytes = [...blobs.values()][7]!;
    const hex = createHash('sha256').update(bytes).digest('hex');
    await backend.corrupt(hex);
    // Two processes serve: the worker opens the same store (for S3, through the CLI's store opener).
    const serve = await startCli([...serveArgs(), '--workers', '2'], (o) => o.trim().endsWith('}'));
    try {
      const { url } = JSON.parse(serve.stdout()) as { url: string };
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${url}/blobs/sha256/${hex}`);
        const body = Buffer.from(await r.arrayBuffer());
        expect(r.status).toBeGreaterThanOrEqual(400);
        expect(body.includes(bytes.subarray(0, 64))).toBe(false);
      }
      // Intact neighbours are still served, by whichever process accepts each fresh connection.
      for (const good of [...blobs.values()].slice(8, 28)) {
        const got = await getFresh(`${url}/blobs/sha256/${createHash('sha256').update(good).digest('hex')}`);
        expect(got.status).toBe(200);
        expect(got.body.equals(good)).toBe(true);
      }
    } finally {
      await serve.stop();
    }
    const f = await fsckJson();
    expect(f.code).toBe(1);
    expect(f.report.clean).toBe(false);
  });
});
