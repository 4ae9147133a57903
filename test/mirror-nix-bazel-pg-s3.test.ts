/**
 * Issue 12 acceptance, the Nix and Bazel half of the mirror e2e on the distributed backends: one signed bundle
 * (a Nix fetch list and a Bazel fetch list) is imported through the CLI into blobs on a real S3 server (Ceph
 * radosgw) with the index in PostgreSQL; two `airlock mirror serve` replicas over that one store, each with its own
 * state directory (as on two hosts), see the snapshot through PostgreSQL. Then real `nix-build` (hashed-mirrors) and
 * real `bazel build` (downloader-config rewrite) run inside `unshare -n` against EACH replica in turn, the replica
 * being the only thing reachable: the same builders and fixtures as test/mirror-nix.test.ts and
 * test/mirror-bazel.test.ts, nothing changed but the store flags. A file the mirror lacks still fails the build.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { toSri } from '@airlock/core';
import { postgresProblem, startPostgres, startUpstream, type PostgresServer, type Upstream } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';
import { bazelCommand, bazelDownloaderConfig, bazelProblem, writeFixtureWorkspace } from './helpers/bazel.js';
import {
  deterministicTarGz,
  networkIsolationProblem,
  removeTree,
  runIsolated,
  startUnixBridge,
  toolsAvailable,
  type UnixBridge,
} from './helpers/netns.js';
import { makeNixSandbox, nixBuildCommand, nixProblem, storeFile } from './helpers/nix.js';
import { startStoreBackend, storeBackendAvailable, type StoreBackend } from './helpers/store-backends.js';
import {
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
  type StoreRef,
} from './helpers/upstream-e2e.js';

const enabled =
  toolsAvailable('nix and bazel through mirror replicas on S3 + PostgreSQL', [
    nixProblem(),
    bazelProblem(),
    networkIsolationProblem(),
    postgresProblem(),
  ]) && storeBackendAvailable('s3');

const UPSTREAM = 'https://upstream.airlock.invalid';
/** Bazel's pin is fixed by the fixture WORKSPACE; Nix's URLs are arguments, so they live elsewhere on the host. */
const BAZEL_GREET_URL = `${UPSTREAM}/airlock-fixture/greet-1.0.tar.gz`;
const NIX_GREET_URL = `${UPSTREAM}/nix-fixture/greet-1.0.tar.gz`;
const NIX_NOTES_URL = `${UPSTREAM}/nix-fixture/notes.txt`;
const MIRROR_INSIDE = 'http://127.0.0.1:18080';
const EXPECTED_HELLO =
  'hello from the greet fixture archive (bazel)\nHELLO FROM THE GREET FIXTURE ARCHIVE (BAZEL)\nbuilt-by-bazel\n';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let root: string;
let backend: StoreBackend | undefined;
let pg: PostgresServer | undefined;
let indexUrl: string;
let dbPassword: string;
let dbName: string;
let plane: CliPlane | undefined;
let up: Upstream | undefined;
let nixGreet: Buffer;
let nixNotes: Buffer;
let bazelGreet: Buffer;
let nixArgs: Record<string, string>;
const replicas: RunningMirror[] = [];
const bridges: UnixBridge[] = [];
const outputs: string[] = [];

/** The shared S3 store and PostgreSQL index; each process keeps its local state in a directory of its own. */
function storeFor(role: string): StoreRef {
  const ref = backend!.ref as { args: string[] };
  const s3 = ref.args[ref.args.indexOf('--store') + 1]!;
  return { args: ['--store', s3, '--index', indexUrl, '--state-dir', join(root, `state-${role}`)] };
}

async function waitForSequence(m: RunningMirror, sequence: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const head = ((await (await fetch(`${m.url}/`)).json()) as { head: { sequence: number } | null }).head;
    if (head?.sequence === sequence) return;
    await sleep(50);
  }
  throw new Error(`replica ${m.url} never saw snapshot ${sequence}`);
}

describe.skipIf(!enabled)('nix + bazel e2e through two mirror replicas on S3 (radosgw) + PostgreSQL', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-e2e-pg-s3-'));
    mkdirSync(join(root, 'home'));
    backend = await startStoreBackend('s3', root);
    pg = await startPostgres();
    const db = await pg.createDatabase();
    dbPassword = db.password;
    dbName = db.name;
    process.env.PGPASSWORD = db.password; // inherited by every CLI child; never in a URL or argv
    indexUrl = `postgres://${db.user}@127.0.0.1:${pg.port}/${db.name}`;
    plane = await startPlane(join(root, 'plane'));
    nixGreet = deterministicTarGz(join(REPO_ROOT, 'fixtures', 'nix', 'upstream'), 'greet-1.0', join(root, 'n.tgz'));
    nixNotes = readFileSync(join(REPO_ROOT, 'fixtures', 'nix', 'upstream', 'notes.txt'));
    bazelGreet = deterministicTarGz(join(REPO_ROOT, 'fixtures', 'bazel', 'upstream'), 'greet-1.0', join(root, 'b.tgz'));
    up = await startUpstream();
    up.file('/nix-fixture/greet-1.0.tar.gz', nixGreet);
    up.file('/nix-fixture/notes.txt', nixNotes);
    up.file('/airlock-fixture/greet-1.0.tar.gz', bazelGreet, 'application/gzip');
    nixArgs = {
      greetUrl: NIX_GREET_URL,
      greetSha256: sha256(nixGreet),
      notesUrl: NIX_NOTES_URL,
      notesHash: toSri('sha256', sha256(nixNotes)),
    };
  }, 600_000);

  afterAll(async () => {
    for (const b of bridges.splice(0)) await b.close().catch(() => undefined);
    for (const r of replicas.splice(0)) await r.stop();
    await up?.close();
    await plane?.stop();
    await pg?.stop();
    await backend?.stop();
    delete process.env.PGPASSWORD;
    if (root) removeTree(root);
  }, 120_000);

  it('syncs a Nix and a Bazel fetch list into one signed bundle and imports it into S3 + PostgreSQL', async () => {
    const nixList = join(root, 'nix-fetch.json');
    writeFileSync(
      nixList,
      JSON.stringify([
        { url: NIX_GREET_URL, hash: toSri('sha256', sha256(nixGreet)) },
        { url: NIX_NOTES_URL, hash: toSri('sha256', sha256(nixNotes)), name: 'notes.txt' },
      ]),
    );
    const bazelList = join(root, 'bazel-fetch.json');
    writeFileSync(
      bazelList,
      JSON.stringify([
        { name: 'greet', urls: [BAZEL_GREET_URL], sha256: sha256(bazelGreet), strip_prefix: 'greet-1.0' },
      ]),
    );
    const bundle = join(root, 'bundle.tar');
    const s = await runCliJson([
      'sync',
      '--nix-fetch',
      nixList,
      '--bazel-fetch',
      bazelList,
      '--rewrite-host',
      `${UPSTREAM}=${up!.url}`,
      '--out',
      bundle,
      '--data',
      plane!.dir,
      '--json',
    ]);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    expect(s.json).toMatchObject({ ok: true, signed: true, entries: 3 });
    const imp = await runCliJson(importArgs(bundle, storeFor('importer'), plane!));
    outputs.push(imp.stdout, imp.stderr);
    expect(imp.code, imp.stdout + imp.stderr).toBe(0);
    expect(imp.json).toMatchObject({ ok: true, entries: 3 });
    // From here on there is no upstream: only the replicas have the files.
    await up!.close();
    up = undefined;
    // Two replicas, each with a state directory of its own (two hosts), over the one S3 + PostgreSQL store.
    for (const r of ['r0', 'r1']) {
      const m = await startMirror(storeFor(r), ['--index-poll', '1s']);
      replicas.push(m);
      expect(m.sequence, JSON.stringify(m)).toBe(1);
    }
    for (const r of replicas) await waitForSequence(r, 1);
    // The index is PostgreSQL's: no process made a local SQLite index.
    for (const role of ['importer', 'r0', 'r1'])
      expect(existsSync(join(root, `state-${role}`, 'index.sqlite')), role).toBe(false);
    expect(pg!.adminSql('SELECT sequence FROM mirror_head', dbName).trim()).toBe('1');
  });

  for (const i of [0, 1]) {
    it(`real nix-build fetches both fixed-output derivations from replica ${i} (empty store, unshare -n)`, async () => {
      const bridge = await startUnixBridge(join(root, `nix-${i}.sock`), replicas[i]!.url);
      bridges.push(bridge);
      const nix = makeNixSandbox(join(root, `nix-build-${i}`));
      const r = await runIsolated(
        nixBuildCommand(nix, join(REPO_ROOT, 'fixtures', 'nix', 'consumer.nix'), nixArgs, `${MIRROR_INSIDE}/`),
        { cwd: root, env: nix.env, bridge: { socketPath: bridge.socketPath, port: 18080 }, timeoutMs: 120_000 },
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(bridge.connections()).toBeGreaterThanOrEqual(2);
      const out = readFileSync(storeFile(nix, r.stdout.trim()), 'utf8');
      expect(out).toMatch(/^greet archive: \/nix\/store\/[a-z0-9]{32}-greet-1\.0\.tar\.gz$/m);
      expect(out).toContain('notes: second line');
      const greetPath = /^greet archive: (\S+)$/m.exec(out)![1]!;
      expect(sha256(readFileSync(storeFile(nix, greetPath)))).toBe(sha256(nixGreet));
    });
  }

  for (const i of [0, 1]) {
    it(`real bazel build fetches the http_archive from replica ${i} through a downloader-config rewrite`, async () => {
      const bridge = await startUnixBridge(join(root, `bazel-${i}.sock`), replicas[i]!.url);
      bridges.push(bridge);
      const config = join(root, `downloader-${i}.cfg`);
      writeFileSync(
        config,
        bazelDownloaderConfig([{ urls: [BAZEL_GREET_URL], sha256: sha256(bazelGreet) }], MIRROR_INSIDE),
      );
      const ws = realpathSync(
        writeFixtureWorkspace(
          join(REPO_ROOT, 'fixtures', 'bazel', 'workspace'),
          join(root, `ws-${i}`),
          sha256(bazelGreet),
        ),
      );
      // A fresh output root per build: nothing in a repository cache from the other replica's run.
      const r = await runIsolated(
        bazelCommand(join(root, `bazel-out-${i}`), 'build', [`--experimental_downloader_config=${config}`, '//:hello']),
        {
          cwd: ws,
          env: { HOME: join(root, 'home') },
          timeoutMs: 240_000,
          bridge: { socketPath: bridge.socketPath, port: 18080 },
        },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(
        `Rewritten [${BAZEL_GREET_URL}] as [${MIRROR_INSIDE}/sha256/${sha256(bazelGreet)}/greet-1.0.tar.gz]`,
      );
      expect(bridge.connections()).toBeGreaterThanOrEqual(1);
      expect(readFileSync(join(ws, 'bazel-bin', 'hello.txt'), 'utf8')).toBe(EXPECTED_HELLO);
    });
  }

  it('a file the replicas lack fails the nix build (404 on both; nothing fetched upstream)', async () => {
    const missing = Buffer.from('never synced\n');
    const live = await startUpstream();
    try {
      live.file('/missing.txt', missing);
      for (const r of replicas) expect((await fetch(`${r.url}/sha256/${sha256(missing)}`)).status).toBe(404);
      const bridge = await startUnixBridge(join(root, 'nix-missing.sock'), replicas[1]!.url);
      bridges.push(bridge);
      const nix = makeNixSandbox(join(root, 'nix-missing'));
      const args = { url: `${live.url}/missing.txt`, sha256: sha256(missing) };
      const r = await runIsolated(
        nixBuildCommand(nix, join(REPO_ROOT, 'fixtures', 'nix', 'fetch.nix'), args, `${MIRROR_INSIDE}/`, [
          '--option',
          'download-attempts',
          '1',
        ]),
        { cwd: root, env: nix.env, bridge: { socketPath: bridge.socketPath, port: 18080 }, timeoutMs: 120_000 },
      );
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(bridge.connections()).toBeGreaterThanOrEqual(1);
      expect(live.totalHits()).toBe(0);
    } finally {
      await live.close();
    }
  });

  it('the database password never appears in any output', () => {
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of outputs) expect(o).not.toContain(dbPassword);
  });
});
