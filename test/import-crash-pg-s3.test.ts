/**
 * Issue 12 acceptance, crash safety and import serialisation through the CLI on the distributed backends: blobs on
 * a real S3 server (Ceph radosgw), the index in PostgreSQL, each importer with a state directory of its own (two
 * hosts).
 *  - `airlock mirror import` SIGKILLed at several moments publishes nothing (no head in PostgreSQL), the next
 *    opener on that host leaves no blob and no multipart upload behind, and a re-run completes.
 *  - Two importers on different hosts cannot interleave: while one holds the import slot (stopped mid-import with
 *    SIGSTOP) the other fails at once with IMPORT_LOCKED, exit 1, naming the holder; so does fsck. The held import
 *    then completes.
 *  - A holder killed with SIGKILL releases the slot (a session-level advisory lock ends with its connection): the
 *    other host imports at once, and the dead host's recovery later removes nothing the published snapshot needs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { postgresProblem, startPostgres, toolsAvailable, type PostgresServer } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from './helpers/cli.js';
import { startStoreBackend, storeBackendAvailable, type StoreBackend } from './helpers/store-backends.js';
import { runCliJson, startPlane, type CliPlane } from './helpers/upstream-e2e.js';

const enabled =
  toolsAvailable('import crash and lock on S3 + PostgreSQL', [postgresProblem()]) && storeBackendAvailable('s3');

let root: string;
let backend: StoreBackend | undefined;
let pg: PostgresServer | undefined;
let dbName: string;
let dbPassword: string;
let indexUrl: string;
let plane: CliPlane | undefined;
let files: Server | undefined;
const bundles: string[] = [];
const counts: number[] = []; // blobs in bundle i (cumulative: each bundle extends the previous snapshot)
const outputs: string[] = [];
const children = new Set<ChildProcess>();

/** The CLI flags of one host: the shared S3 store and PostgreSQL index, its own state directory. */
function storeOf(host: string): string[] {
  const ref = backend!.ref as { args: string[] };
  const s3 = ref.args[ref.args.indexOf('--store') + 1]!;
  return ['--store', s3, '--index', indexUrl, '--state-dir', join(root, `state-${host}`)];
}

function importArgs(i: number, host: string): string[] {
  return [
    'mirror',
    'import',
    bundles[i]!,
    ...storeOf(host),
    '--create',
    '--data',
    plane!.dir,
    '--sync-identity',
    plane!.syncIdentity,
    '--sync-issuer',
    plane!.endpoints.identityIssuerUrl,
  ];
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts an import (progress on stderr) and resolves once it reports the bundle verified (slot held, blobs next). */
async function startImport(i: number, host: string): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...importArgs(i, host)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      outputs.push(out, err);
      resolve({ code, signal });
    }),
  );
  for (;;) {
    if (err.includes('verified snapshot')) break;
    if (child.exitCode !== null) throw new Error(`import exited early (${child.exitCode}): ${out}${err}`);
    await sleep(5);
  }
  return { child, stderr: () => err, stdout: () => out, exited };
}

const head = (): string =>
  pg!.adminSql("SELECT count(*) || ':' || coalesce(max(sequence), 0) FROM mirror_head", dbName).trim();

async function fsckOn(
  host: string,
): Promise<{ code: number | null; json: Record<string, unknown>; errorCode?: string }> {
  const r = await runCliJson(['mirror', 'fsck', ...storeOf(host), '--json']);
  outputs.push(r.stdout, r.stderr);
  return { code: r.code, json: r.json, ...(r.errorCode ? { errorCode: r.errorCode } : {}) };
}

describe.skipIf(!enabled)('mirror import on S3 (radosgw) + PostgreSQL through the CLI: kill -9 and two hosts', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-crash-pg-s3-'));
    backend = await startStoreBackend('s3', root);
    pg = await startPostgres();
    const db = await pg.createDatabase();
    dbName = db.name;
    dbPassword = db.password;
    process.env.PGPASSWORD = db.password;
    indexUrl = `postgres://${db.user}@127.0.0.1:${pg.port}/${db.name}`;
    plane = await startPlane(join(root, 'plane'));
    // Three snapshots, each adding 100 blobs of 256 KiB (the first also one of 20 MiB, sent to S3 in parts).
    const blobs = new Map<string, Buffer>();
    files = createServer((req, res) => {
      const b = blobs.get(req.url ?? '');
      if (!b) return void res.writeHead(404).end();
      res.end(b);
    });
    await new Promise<void>((r) => files!.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    blobs.set('/big.bin', randomBytes(20 * 1024 * 1024));
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 100; i++) blobs.set(`/f/${b}-${i}.bin`, randomBytes(256 * 1024));
      const list = join(root, `list${b}.json`);
      writeFileSync(
        list,
        JSON.stringify(
          [...blobs].map(([p, v]) => ({ url: `${base}${p}`, sha256: createHash('sha256').update(v).digest('hex') })),
        ),
      );
      const out = join(root, `b${b}.tar`);
      const s = await runCli([
        'sync',
        '--list',
        list,
        '--out',
        out,
        '--state',
        join(root, 'sync-state.json'),
        '--data',
        plane.dir,
        '--json',
      ]);
      expect(s.code, s.stdout + s.stderr).toBe(0);
      bundles.push(out);
      counts.push(blobs.size);
    }
  }, 600_000);

  afterAll(async () => {
    for (const c of children) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    await new Promise((r) => files?.close(r));
    await plane?.stop();
    await pg?.stop();
    await backend?.stop();
    delete process.env.PGPASSWORD;
    if (root) rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('kill -9 at several points publishes nothing and leaves nothing once the host reopens; a re-run completes', async () => {
    let killedWithBlobsIn = 0;
    for (const delay of [0, 40, 150, 400, 1200]) {
      const run = await startImport(0, 'a');
      await sleep(delay);
      run.child.kill('SIGKILL');
      const { signal } = await run.exited;
      if (signal !== 'SIGKILL') continue; // finished first: nothing to check (and it would have published)
      expect(run.stderr()).not.toMatch(/imported snapshot/);
      // Nothing half-published: no head row in PostgreSQL for anyone to serve.
      expect(head()).toBe('0:0');
      if ((await backend!.storedBlobs()).length > 0) killedWithBlobsIn++;
      // The next opener on that host recovers: the dead import's blobs gone, its multipart uploads aborted.
      const f = await fsckOn('a');
      expect(f.code, JSON.stringify(f.json)).toBe(0);
      expect(f.json).toMatchObject({ clean: true, checked: 0 });
      expect(await backend!.storedBlobs()).toEqual([]);
      expect(await backend!.partialUploads()).toBe(0);
    }
    expect(killedWithBlobsIn).toBeGreaterThan(0);
    const ok = await runCliJson([...importArgs(0, 'a'), '--json']);
    outputs.push(ok.stdout, ok.stderr);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, blobs: counts[0] });
    expect(head()).toBe('1:1');
    const f = await fsckOn('a');
    expect(f.json).toMatchObject({ clean: true, checked: counts[0] });
  }, 600_000);

  it('while host A imports, host B’s import and fsck fail at once with IMPORT_LOCKED naming A (exit 1); A then completes', async () => {
    const a = await startImport(1, 'a');
    a.child.kill('SIGSTOP'); // A holds the slot and stays mid-import
    try {
      const b = await runCliJson([...importArgs(1, 'b'), '--json']);
      outputs.push(b.stdout, b.stderr);
      expect(b.errorCode, b.stdout + b.stderr).toBe('IMPORT_LOCKED');
      expect(b.code).toBe(1);
      const message = (b.json.error as { message: string }).message;
      expect(message).toContain(`airlock-mirror-import pid ${a.child.pid}`);
      expect(message).not.toContain(dbPassword);
      const f = await fsckOn('b');
      expect(f.errorCode).toBe('IMPORT_LOCKED');
      expect(f.code).toBe(1);
      expect(head()).toBe('1:1');
    } finally {
      a.child.kill('SIGCONT');
    }
    const done = await a.exited;
    expect(done.code, a.stdout() + a.stderr()).toBe(0);
    expect(a.stdout()).toMatch(/imported snapshot/);
    expect(head()).toBe('1:2');
  }, 300_000);

  it('a holder killed with -9 releases the slot: host B imports at once; A’s later recovery keeps what B published', async () => {
    const a = await startImport(2, 'a');
    await sleep(300); // some of A's new blobs are on S3 now
    a.child.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    // The server ends the dead session when it reads the closed socket: allow it a moment, not an import's length.
    let b = await runCliJson([...importArgs(2, 'b'), '--json']);
    for (let i = 0; i < 20 && b.errorCode === 'IMPORT_LOCKED'; i++) {
      await sleep(250);
      b = await runCliJson([...importArgs(2, 'b'), '--json']);
    }
    outputs.push(b.stdout, b.stderr);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.json).toMatchObject({ ok: true, blobs: counts[2] });
    expect(head()).toBe('1:3');
    // Host A comes back: its opener recovers the dead import's journal, and every blob B published stays.
    const f = await fsckOn('a');
    expect(f.code, JSON.stringify(f.json)).toBe(0);
    expect(f.json).toMatchObject({ clean: true, checked: counts[2], missing: [] });
    expect((await backend!.storedBlobs()).length).toBe(counts[2]);
    expect(await backend!.partialUploads()).toBe(0);
  }, 300_000);

  it('the database password never appears in any output', () => {
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of outputs) expect(o).not.toContain(dbPassword);
  });
});
