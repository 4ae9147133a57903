/**
 * Issue 12: several `airlock mirror serve` processes over one store and one PostgreSQL index (`--index
 * postgres://…`), driven only through the CLI, on a directory store and on S3 (real Ceph radosgw; each replica
 * then has its own --state-dir, as on separate hosts). A snapshot imported by another process reaches every replica within
 * the documented bound (LISTEN/NOTIFY at once; polling every --index-poll when a notification is lost — here the
 * listening sessions are terminated on the server to prove it), and the replicas serve identical bytes. The
 * connection string's password (PGPASSWORD here) never appears in any output, and a wrong one or an unreachable
 * server fails with a typed error (exit 3 when unreachable).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { postgresProblem, startPostgres, toolsAvailable, type PgDatabase, type PostgresServer } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it as vit } from 'vitest';
import {
  startStoreBackend,
  STORE_BACKENDS,
  storeBackendAvailable,
  type StoreBackend,
} from './helpers/store-backends.js';
import {
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
  type StoreRef,
} from './helpers/upstream-e2e.js';
import { sha256Hex, startFixtureUpstream, type FixtureUpstream } from './helpers/upstream.js';

const available = toolsAvailable('mirror replicas on PostgreSQL', [postgresProblem()]);

const files: Record<string, Buffer> = {};
for (let i = 0; i < 6; i++) files[`a-${i}`] = randomBytes(4096 + i * 5000);
for (let i = 0; i < 6; i++) files[`b-${i}`] = randomBytes(4096 + i * 7000);
files['big'] = randomBytes(3 * 1024 * 1024);

let root: string;
let backend: StoreBackend | undefined;
let pg: PostgresServer | undefined;
let db: PgDatabase;
let indexUrl: string; // without the password: it comes from PGPASSWORD
let plane: CliPlane | undefined;
let upstream: FixtureUpstream | undefined;
const bundles: string[] = [];
const replicas: RunningMirror[] = [];
const outputs: string[] = [];

async function headOf(m: RunningMirror): Promise<number | null> {
  const r = await fetch(`${m.url}/`);
  return ((await r.json()) as { head: { sequence: number } | null }).head?.sequence ?? null;
}

/** Polls every replica until all report `sequence`; returns how long that took (ms), or throws after `limitMs`. */
async function allSee(sequence: number, limitMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const heads = await Promise.all(replicas.map(headOf));
    if (heads.every((h) => h === sequence)) return performance.now() - start;
    if (performance.now() - start > limitMs)
      throw new Error(`replicas still at ${heads.join(', ')} after ${limitMs} ms`);
    await sleep(20);
  }
}

/** The store flags of one process: the shared store and index; with S3, a local state dir of its own. */
function storeFor(role: string): StoreRef {
  const ref = backend!.ref;
  if (typeof ref === 'string') return { args: ['--store', ref, '--index', indexUrl] };
  const s3 = ref.args[ref.args.indexOf('--store') + 1]!;
  return { args: ['--store', s3, '--index', indexUrl, '--state-dir', join(root, `state-${role}`)] };
}

async function importBundle(i: number): Promise<string> {
  const r = await runCliJson(importArgs(bundles[i]!, storeFor('importer'), plane!));
  outputs.push(r.stdout, r.stderr);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return (r.json.snapshot as { id: string }).id;
}

const cases = STORE_BACKENDS.map((name) => [name, available && storeBackendAvailable(name)] as const);

describe.each(cases)(
  'mirror serve replicas over one %s store + PostgreSQL index (CLI)',
  (name, ok) => {
    const it = ok ? vit : vit.skip;
    beforeAll(async () => {
      if (!ok) return;
      root = mkdtempSync(join(tmpdir(), 'airlock-replicas-'));
      backend = await startStoreBackend(name, root);
      pg = await startPostgres();
      db = await pg.createDatabase();
      process.env.PGPASSWORD = db.password; // inherited by every CLI child
      indexUrl = `postgres://${db.user}@127.0.0.1:${pg.port}/${db.name}`;
      plane = await startPlane(join(root, 'plane'));
      upstream = await startFixtureUpstream({ files });
      const state = join(root, 'state.json');
      const groups = [['a-'], ['a-', 'b-', 'big'], ['a-', 'b-', 'big']];
      for (const [i, prefixes] of groups.entries()) {
        const keys = Object.keys(files).filter((k) => prefixes.some((p) => k.startsWith(p)));
        const list = join(root, `l${i}.json`);
        writeFileSync(
          list,
          JSON.stringify(keys.map((k) => ({ url: upstream!.fileUrl(k), sha256: sha256Hex(files[k]!) }))),
        );
        const out = join(root, `b${i}.tar`);
        const s = await runCliJson([
          'sync',
          '--list',
          list,
          '--out',
          out,
          '--state',
          state,
          '--data',
          plane.dir,
          '--json',
        ]);
        expect(s.code, s.stdout + s.stderr).toBe(0);
        bundles.push(out);
      }
      await upstream.close();
      upstream = undefined;
      await importBundle(0);
      for (let i = 0; i < 2; i++) replicas.push(await startMirror(storeFor(`r${i}`), ['--index-poll', '1s']));
      // A third replica polls only (no LISTEN): it bounds the delay when notifications cannot arrive at all.
      replicas.push(await startMirror(storeFor('r2'), ['--index-poll', '1s', '--no-index-listen']));
    }, 900_000);

    afterAll(async () => {
      for (const r of replicas.splice(0)) await r.stop();
      await upstream?.close();
      await plane?.stop();
      await pg?.stop();
      await backend?.stop();
      bundles.splice(0);
      outputs.splice(0);
      delete process.env.PGPASSWORD;
      if (root) rmSync(root, { recursive: true, force: true });
    }, 120_000);

    it('the index lives in PostgreSQL (no index.sqlite in the store) with its migrations recorded', () => {
      const dirs =
        name === 'directory'
          ? [backend!.ref as string]
          : ['importer', 'r0', 'r1', 'r2'].map((r) => join(root, `state-${r}`));
      for (const dir of dirs) expect(existsSync(join(dir, 'index.sqlite')), dir).toBe(false);
      const tables = pg!.adminSql('SELECT version, name FROM schema_migrations ORDER BY version', db.name);
      expect(tables.trim().split('\n')[0]).toBe('1|mirror_index');
      expect(pg!.adminSql('SELECT sequence FROM mirror_head', db.name).trim()).toBe('1');
      expect(replicas.map((r) => r.sequence)).toEqual([1, 1, 1]);
    });

    it('a snapshot imported by another process reaches every replica (NOTIFY; polling for the third), identical bytes', async () => {
      const id = await importBundle(1);
      // Bound: NOTIFY at commit; without it one --index-poll interval (1 s) plus a refresh. 10 s: a loaded machine.
      const ms = await allSee(2, 10_000);
      console.log(`all replicas saw snapshot 2 ${ms.toFixed(0)} ms after the import exited`);
      for (const key of ['b-3', 'big', 'a-1']) {
        const hex = sha256Hex(files[key]!);
        const bodies = await Promise.all(
          replicas.map(async (r) => Buffer.from(await (await fetch(`${r.url}/blobs/sha256/${hex}`)).arrayBuffer())),
        );
        for (const b of bodies) expect(b.equals(files[key]!), key).toBe(true);
      }
      // The snapshot's manifest and sync signature, as each replica serves them: identical.
      const docs = await Promise.all(
        replicas.map(async (r) => {
          const res = await fetch(`${r.url}/-/airlock/snapshots/${id}`);
          expect(res.status).toBe(200);
          return res.text();
        }),
      );
      expect(new Set(docs).size).toBe(1);
      expect(docs[0]).toContain(id);
    });

    it('with the LISTEN sessions killed on the server, the replicas reconnect or poll and see the next snapshot', async () => {
      const killed = pg!.adminSql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN %'",
      );
      expect(Number(killed.trim())).toBe(2);
      await importBundle(2);
      const ms = await allSee(3, 10_000);
      console.log(`all replicas saw snapshot 3 ${ms.toFixed(0)} ms after the import exited (listeners were killed)`);
      const hex = sha256Hex(files['b-5']!);
      for (const r of replicas) {
        const got = Buffer.from(await (await fetch(`${r.url}/blobs/sha256/${hex}`)).arrayBuffer());
        expect(got.equals(files['b-5']!)).toBe(true);
      }
    });

    it('the password never appears in any output; a wrong password and an unreachable server fail typed', async () => {
      for (const o of outputs) expect(o).not.toContain(db.password);
      const wrong = `postgres://${db.user}:not-the-password-${randomBytes(4).toString('hex')}@127.0.0.1:${pg!.port}/${db.name}`;
      const secret = new URL(wrong).password;
      const args = (index: string): string[] => {
        const a = [...(storeFor('checker') as { args: string[] }).args];
        a[a.indexOf('--index') + 1] = index;
        return ['mirror', 'fsck', ...a, '--json'];
      };
      const bad = await runCliJson(args(wrong));
      expect(bad.errorCode).toBe('PG_AUTH_FAILED');
      expect(bad.stdout + bad.stderr).not.toContain(secret);
      expect(bad.code).toBe(1);
      const down = await runCliJson(args(`postgres://u:${secret}@127.0.0.1:1/x`));
      expect(down.errorCode).toBe('PG_UNREACHABLE');
      expect(down.code).toBe(3);
      expect(down.stdout + down.stderr).not.toContain(secret);
      const notPg = await runCliJson(args('mysql://x@y/z'));
      expect(notPg.code).toBe(2);
    });

    it('fsck over the PostgreSQL index is clean and checks every blob', async () => {
      const f = await runCliJson(['mirror', 'fsck', ...(storeFor('checker') as { args: string[] }).args, '--json']);
      expect(f.code, f.stdout).toBe(0);
      expect(f.json).toMatchObject({ clean: true, checked: Object.keys(files).length });
    });
  },
  300_000,
);
