/**
 * Issue 12 §2, the mirror's serving hot path (a cache of request target → blob, prebuilt headers for whole-blob
 * 200s, packuments rendered once per snapshot) must keep every guarantee of the slow path:
 *  - a tarball served (so its route is cached) and then corrupted on disk is never served again, through the
 *    cached route, a Range request or HEAD; an intact neighbour still is;
 *  - conditional requests (304), Range (206) and HEAD still answer correctly on a cached route;
 *  - a packument served for snapshot 1 is replaced by the new one as soon as snapshot 2 is published (same
 *    server process, no restart), and its tarball URL of the new version is served;
 *  - request targets with a query string or longer than the key limit are answered but not cached (attacker-chosen
 *    keys cannot grow the cache), checked through the route cache's own size;
 *  - `workers: 2` deals connections out round-robin between the primary and the worker, over plain HTTP and TLS:
 *    of four keep-alive connections, exactly the two the worker holds break when it is SIGKILLed, the other two
 *    keep answering (with workers accepting on the shared socket, one process took 13 of 16 connections).
 * A real MirrorStore on disk, a real startMirrorServer on 127.0.0.1, fetch as the client.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore, type MirrorEntryInput } from '@airlock/cas';
import { createMirrorServer, startMirrorServer, type RunningMirrorServer } from '@airlock/mirror';
import { makeNpmTarball, makePki, opensslProblem, toolsAvailable } from '@airlock/testkit';

const opensslAvailable = toolsAvailable('mirror hot path TLS workers test', [opensslProblem()]);

const sha = (alg: 'sha256' | 'sha512' | 'sha1', b: Buffer): string => createHash(alg).update(b).digest('hex');
const blobFile = (store: string, hex: string): string => join(store, 'blobs', 'sha256', hex.slice(0, 2), hex);

interface Pkg {
  name: string;
  version: string;
  tarball: Buffer;
}

let root: string;
let storeDir: string;
let store: MirrorStore;
let server: RunningMirrorServer;
let previous: string | null = null;
let sequence = 0;

async function pkg(name: string, version: string): Promise<Pkg> {
  const packed = await makeNpmTarball({ name, version, description: `${name} ${version}` });
  return { name, version, tarball: packed.tarball };
}

const tarballPath = (p: Pkg): string => `/${p.name}/-/${p.name.split('/').pop()!}-${p.version}.tgz`;

/** Publishes one snapshot holding `pkgs` straight into the store (what the importer does after verification). */
async function publish(pkgs: Pkg[]): Promise<void> {
  const session = await store.beginImport();
  const entries: MirrorEntryInput[] = [];
  for (const p of pkgs) {
    await session.put(Readable.from([p.tarball]), { sha256: sha('sha256', p.tarball), size: p.tarball.length });
    entries.push({
      ecosystem: 'npm',
      name: p.name,
      version: p.version,
      filename: `${p.name.split('/').pop()!}-${p.version}.tgz`,
      size: p.tarball.length,
      digests: { sha256: sha('sha256', p.tarball), sha512: sha('sha512', p.tarball), sha1: sha('sha1', p.tarball) },
      metadata: { manifest: { name: p.name, version: p.version } },
    });
  }
  const id = `sha256:${createHash('sha256').update(`snapshot ${++sequence}`).digest('hex')}`;
  const manifest = {
    snapshot: { id, sequence, previous, createdAt: new Date().toISOString() },
    blobs: pkgs.map((p) => ({ sha256: sha('sha256', p.tarball), size: p.tarball.length })),
    entries,
  };
  await session.commit({ manifest, signedBundles: {}, entries });
  previous = id;
}

async function get(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const r = await fetch(`${server.url}${path}`, { headers, method });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

let a1: Pkg;
let b1: Pkg;
let c1: Pkg;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-hotpath-'));
  storeDir = join(root, 'store');
  store = await MirrorStore.open(storeDir, { create: true, fs: { fsync: false } });
  a1 = await pkg('hot-a', '1.0.0');
  b1 = await pkg('@hot/b', '1.0.0');
  c1 = await pkg('hot-c', '1.0.0');
  await publish([a1, b1, c1]);
  server = await startMirrorServer({ store, host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('mirror serving hot path', () => {
  it('a cached route answers 200, HEAD, 304 and 206 like the slow path', async () => {
    const path = tarballPath(b1);
    const first = await get(path);
    expect(first.status).toBe(200);
    expect(first.body.equals(b1.tarball)).toBe(true);
    const etag = `"sha256:${sha('sha256', b1.tarball)}"`;
    expect(first.headers.get('etag')).toBe(etag);
    // The second request takes the cached route and the prebuilt headers.
    const again = await get(path);
    expect(again.body.equals(b1.tarball)).toBe(true);
    expect(again.headers.get('content-length')).toBe(String(b1.tarball.length));
    expect(again.headers.get('cache-control')).toContain('immutable');
    const head = await get(path, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers.get('content-length')).toBe(String(b1.tarball.length));
    expect((await get(path, { 'if-none-match': etag })).status).toBe(304);
    const part = await get(path, { range: 'bytes=10-19' });
    expect(part.status).toBe(206);
    expect(part.body.equals(b1.tarball.subarray(10, 20))).toBe(true);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${b1.tarball.length}`);
    expect((await get(path, { range: `bytes=${b1.tarball.length + 5}-` })).status).toBe(416);
  });

  it('a cached route honours Range and If-None-Match in any letter case (the hot path reads raw header names)', async () => {
    const path = tarballPath(b1);
    expect((await get(path)).status).toBe(200);
    const etag = `"sha256:${sha('sha256', b1.tarball)}"`;
    const u = new URL(server.url);
    const raw = async (
      headerLines: string,
      method = 'GET',
    ): Promise<{ status: number; head: string; body: Buffer }> => {
      const socket = tcpConnect({ host: u.hostname, port: Number(u.port) });
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\n${headerLines}Connection: close\r\n\r\n`);
      const chunks: Buffer[] = [];
      for await (const c of socket) chunks.push(c as Buffer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end).toString('latin1');
      return { status: Number(head.split(' ')[1]), head, body: all.subarray(end + 4) };
    };
    for (const name of ['RANGE', 'Range', 'rAnGe']) {
      const r = await raw(`${name}: bytes=2-5\r\n`);
      expect(r.status, name).toBe(206);
      expect(r.body.equals(b1.tarball.subarray(2, 6)), name).toBe(true);
    }
    for (const name of ['IF-NONE-MATCH', 'If-None-Match']) {
      const r = await raw(`${name}: ${etag}\r\n`);
      expect(r.status, name).toBe(304);
      expect(r.body.length, name).toBe(0);
    }
    // Neither (only look-alikes and an If-Range without a Range): the whole blob, from the hot path.
    const whole = await raw(`X-Range: bytes=2-5\r\nIf-None-Matches: ${etag}\r\nIf-Range: ${etag}\r\n`);
    expect(whole.status).toBe(200);
    expect(whole.body.equals(b1.tarball)).toBe(true);
    const head = await raw('', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.head).toMatch(new RegExp(`\r\ncontent-length: ${b1.tarball.length}\r\n`, 'i'));
  });

  it('a tarball served (route cached) and then corrupted on disk is never served again; a neighbour still is', async () => {
    const path = tarballPath(a1);
    const file = blobFile(storeDir, sha('sha256', a1.tarball));
    // Whole seconds, so they can be put back to the ns after the write: then only the ctime tells.
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect((await get(path)).body.equals(a1.tarball)).toBe(true);
    expect((await get(path)).body.equals(a1.tarball)).toBe(true);
    chmodSync(file, 0o644);
    const bytes = readFileSync(file);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = bytes[mid]! ^ 0x01;
    writeFileSync(file, bytes);
    // Same size, same inode, mtime put back: only the ctime betrays the change to the in-memory hot path.
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    for (const [headers, method] of [
      [{}, 'GET'],
      [{ range: `bytes=${mid - 4}-${mid + 4}` }, 'GET'],
      [{}, 'GET'],
      [{}, 'HEAD'],
    ] as [Record<string, string>, string][]) {
      const r = await get(path, headers, method);
      expect([410, 500], `${method} ${JSON.stringify(headers)} → ${r.status}`).toContain(r.status);
      expect(r.body.includes(a1.tarball.subarray(mid - 8, mid + 8))).toBe(false);
      expect(r.body.includes(bytes.subarray(mid - 8, mid + 8))).toBe(false);
    }
    const neighbour = await get(tarballPath(c1));
    expect(neighbour.status).toBe(200);
    expect(neighbour.body.equals(c1.tarball)).toBe(true);
  });

  it('a new snapshot serves the new packument at once (same process), and its new tarball', async () => {
    const before = await get('/hot-c', { accept: 'application/vnd.npm.install-v1+json' });
    expect(before.status).toBe(200);
    expect(Object.keys((JSON.parse(before.body.toString('utf8')) as { versions: object }).versions)).toEqual(['1.0.0']);
    const full = await get('/hot-c');
    expect((JSON.parse(full.body.toString('utf8')) as { 'dist-tags': { latest: string } })['dist-tags'].latest).toBe(
      '1.0.0',
    );
    const c2 = await pkg('hot-c', '2.0.0');
    await publish([c2]);
    const after = await get('/hot-c', { accept: 'application/vnd.npm.install-v1+json' });
    const doc = JSON.parse(after.body.toString('utf8')) as {
      versions: Record<string, { dist: { tarball: string } }>;
      'dist-tags': { latest: string };
    };
    expect(Object.keys(doc.versions).sort()).toEqual(['1.0.0', '2.0.0']);
    expect(doc['dist-tags'].latest).toBe('2.0.0');
    expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
    const fullAfter = JSON.parse((await get('/hot-c')).body.toString('utf8')) as { 'dist-tags': { latest: string } };
    expect(fullAfter['dist-tags'].latest).toBe('2.0.0');
    const tarball = await get(new URL(doc.versions['2.0.0']!.dist.tarball).pathname);
    expect(tarball.status).toBe(200);
    expect(tarball.body.equals(c2.tarball)).toBe(true);
  });

  it('request targets with a query string or over the key limit are answered but never cached', async () => {
    const mirror = createMirrorServer({ store });
    await new Promise<void>((resolve) => mirror.server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = mirror.server.address() as { port: number };
      const base = `http://127.0.0.1:${port}`;
      const size = (): number => mirror.cachedRoutes;
      const path = tarballPath(c1);
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`${base}${path}?n=${i}`);
        expect(Buffer.from(await r.arrayBuffer()).equals(c1.tarball)).toBe(true);
      }
      const long = `${path}${'?'.padEnd(600, 'x')}`;
      expect((await fetch(`${base}${long}`)).status).toBe(200);
      expect(size()).toBe(0);
      await (await fetch(`${base}${path}`)).arrayBuffer();
      expect(size()).toBe(1);
    } finally {
      await new Promise<void>((resolve) => {
        mirror.server.close(() => resolve());
        mirror.server.closeAllConnections();
      });
    }
  });
});

/** A raw keep-alive HTTP/1.1 connection: `get` resolves to the status, or to 'closed' when the server side went. */
async function rawConnection(url: string, ca?: string) {
  const u = new URL(url);
  const socket: Socket = await new Promise((resolve, reject) => {
    const s =
      u.protocol === 'https:'
        ? tlsConnect({ host: u.hostname, port: Number(u.port), ca }, () => resolve(s))
        : tcpConnect({ host: u.hostname, port: Number(u.port) }, () => resolve(s));
    s.once('error', reject);
  });
  let buffered = Buffer.alloc(0);
  let closed = false;
  let waiting: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    waiting?.();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    waiting?.();
  });
  const response = (): { status: number; length: number } | undefined => {
    const end = buffered.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = buffered.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (buffered.length < end + 4 + length) return undefined;
    buffered = buffered.subarray(end + 4 + length);
    return { status: Number(head.split(' ')[1]), length };
  };
  return {
    async get(path: string): Promise<number | 'closed'> {
      if (!closed) socket.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
      for (;;) {
        const r = response();
        if (r) return r.status;
        if (closed) return 'closed';
        await new Promise<void>((resolve) => (waiting = resolve));
      }
    },
    close: () => socket.destroy(),
  };
}

async function roundRobin(tls?: { cert: string; key: string; ca: string }): Promise<void> {
  // Server certificate only (a `ca` would make the server require client certificates).
  const serverTls = tls ? { tls: { cert: tls.cert, key: tls.key } } : {};
  const running = await startMirrorServer({ store, host: '127.0.0.1', port: 0, workers: 2, ...serverTls });
  const conns: Awaited<ReturnType<typeof rawConnection>>[] = [];
  try {
    expect(running.workerPids).toHaveLength(1);
    const path = tarballPath(c1);
    for (let i = 0; i < 4; i++) {
      const c = await rawConnection(running.url, tls?.ca);
      conns.push(c);
      expect(await c.get(path)).toBe(200);
    }
    process.kill(running.workerPids[0]!, 'SIGKILL');
    const after = await Promise.all(conns.map((c) => c.get(path)));
    expect(
      after.filter((r) => r === 'closed'),
      JSON.stringify(after),
    ).toHaveLength(2);
    expect(
      after.filter((r) => r === 200),
      JSON.stringify(after),
    ).toHaveLength(2);
  } finally {
    for (const c of conns) c.close();
    await running.close();
  }
}

describe('mirror serve --workers', () => {
  it('deals connections out round-robin between the primary and the worker (plain HTTP)', async () => {
    await roundRobin();
  });

  it.skipIf(!opensslAvailable)('deals TLS connections out the same way (the worker does the handshake)', async () => {
    const dir = join(root, 'pki');
    mkdirSync(dir);
    const pki = makePki(dir);
    await roundRobin({
      cert: readFileSync(pki.certFile, 'utf8'),
      key: readFileSync(pki.keyFile, 'utf8'),
      ca: readFileSync(pki.caFile, 'utf8'),
    });
  });
});
