/**
 * Issue 7, mirror and sync items, through the built CLI against a real trust plane and a loopback upstream:
 *  - a store that does not exist is an error (exit 2) for fsck / serve / export-bazel-cache / import without
 *    --create, and is not created;
 *  - `mirror import --max-snapshot-age` refuses a snapshot whose signed createdAt is older (exit 1), accepts a
 *    fresh one;
 *  - the signed manifest commits to the SBOM: a real bundle whose SBOM is swapped for another validly signed one,
 *    or stripped, is refused;
 *  - sync: empty inputs refused (exit 2) unless --allow-empty; the plane unreachable → exit 3 and the upstream
 *    never asked; an unwritable output → exit 2 and nothing fetched; a failed fetch → exit 1, counted, nothing
 *    written;
 *  - fsck and export-bazel-cache report progress on stderr.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncToBundle } from '@airlock/mirror-sync';
import { issueWorkloadToken, startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { sbomFromManifest } from '@airlock/sbom';
import { AirlockSigner } from '@airlock/sign';
import { writeBundle } from '../mirror-sync/src/bundle/bundle-writer.js';
import {
  generateLockfile,
  npmProblem,
  publishFixturePackages,
  readTar,
  startUpstream,
  toolsAvailable,
  type TarEntry,
  type Upstream,
} from '@airlock/testkit';
import { runCli, type CliResult } from './helpers/cli.js';

const npmAvailable = toolsAvailable('mirror hardening tests', [npmProblem()]);

const GENERIC = Buffer.from('a pinned generic file for the hardening tests\n'.repeat(200));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let root: string;
let planeDir: string;
let plane: RunningTrustPlane;
let up: Upstream;
let lockfile: string;
let list: string;
let syncIdentity: string;

const errorOf = (r: CliResult): { code: string; message: string } =>
  (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;

const importArgs = (bundle: string, store: string, extra: string[] = []): string[] => [
  'mirror',
  'import',
  bundle,
  '--store',
  store,
  '--data',
  planeDir,
  '--sync-identity',
  syncIdentity,
  '--sync-issuer',
  plane.endpoints.identityIssuerUrl,
  '--json',
  ...extra,
];

const syncArgs = (out: string, inputs: string[], extra: string[] = []): string[] => [
  'sync',
  ...inputs,
  '--out',
  out,
  '--data',
  planeDir,
  '--json',
  '--quiet',
  ...extra,
];

/** Head snapshot and row counts of a store (a child process: the test never holds the index open). */
const storeHead = (store: string): string =>
  spawnSync(process.execPath, [join(__dirname, 'helpers', 'store-head.mjs'), store], { encoding: 'utf8' }).stdout;

/** A bundle signed by the plane's sync identity through the library, with a chosen creation time. */
async function librarySync(out: string, createdAt: Date): Promise<void> {
  await syncToBundle({
    inputs: [{ path: list, kind: 'generic' }],
    out,
    createdAt,
    progress: 'none',
    signer: new AirlockSigner({
      fulcioUrl: plane.endpoints.caUrl,
      rekorUrl: plane.endpoints.tlogUrl,
      identity: () => issueWorkloadToken(planeDir, syncIdentity),
    }),
    sbom: async (m) => sbomFromManifest(m),
  });
}

/** Rewrites a bundle in the sync job's own canonical tar form, with some attestation files replaced or removed. */
async function rewriteBundle(
  from: TarEntry[],
  out: string,
  attestations: Map<string, Buffer | undefined>,
): Promise<void> {
  const blobDir = mkdtempSync(join(root, 'blobs-'));
  const files = from
    .filter((e) => e.name.startsWith('attestations/'))
    .map((e) => ({ name: e.name, bytes: attestations.has(e.name) ? attestations.get(e.name) : e.body }))
    .filter((f): f is { name: string; bytes: Buffer } => f.bytes !== undefined);
  const blobs = from
    .filter((e) => e.name.startsWith('blobs/'))
    .map((e) => {
      const hex = e.name.slice('blobs/sha256/'.length);
      writeFileSync(join(blobDir, hex), e.body);
      return { sha256: hex, size: e.size, path: join(blobDir, hex) };
    });
  await writeBundle(out, from.find((e) => e.name === 'manifest.json')!.body, files, blobs);
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe.skipIf(!npmAvailable)('mirror and sync hardening (issue 7, CLI)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-mirror-hardening-'));
    planeDir = join(root, 'plane');
    plane = await startTrustPlane({ dataDir: planeDir });
    syncIdentity = `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`;
    up = await startUpstream();
    await publishFixturePackages(up, root);
    up.file('/files/generic.bin', GENERIC);
    lockfile = await generateLockfile(up, root, 3);
    list = join(root, 'list.json');
    writeFileSync(list, JSON.stringify([{ url: `${up.url}/files/generic.bin`, sha256: sha256(GENERIC) }]));
  }, 120_000);
  afterAll(async () => {
    await up?.close();
    await plane?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('fsck, serve, export-bazel-cache and import without --create refuse a store that does not exist (exit 2), creating nothing', async () => {
    const missing = join(root, 'no-such-store');
    const cases: string[][] = [
      ['mirror', 'fsck', '--store', missing, '--json'],
      ['mirror', 'serve', '--store', missing, '--json'],
      ['mirror', 'export-bazel-cache', join(root, 'bazel-cache'), '--store', missing, '--json'],
    ];
    for (const args of cases) {
      const r = await runCli(args);
      expect(r.code, `${args[1]}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(errorOf(r).message).toContain(`no mirror store at ${missing}`);
      expect(errorOf(r).message).toContain('mirror import --create');
      expect(existsSync(missing), args[1]).toBe(false);
    }
    const s = await runCli(syncArgs(join(root, 'create.tar'), ['--list', list]));
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const imp = await runCli(importArgs(join(root, 'create.tar'), missing));
    expect(imp.code, imp.stdout).toBe(2);
    expect(errorOf(imp).message).toContain(`no mirror store at ${missing}`);
    expect(existsSync(missing)).toBe(false);
    // An empty directory is not a store either.
    mkdirSync(join(root, 'empty-dir'));
    expect((await runCli(['mirror', 'fsck', '--store', join(root, 'empty-dir'), '--json'])).code).toBe(2);
    // --create is where creation is meant; later imports and fsck find the store.
    const created = await runCli(importArgs(join(root, 'create.tar'), missing, ['--create']));
    expect(created.code, created.stdout + created.stderr).toBe(0);
    const f = await runCli(['mirror', 'fsck', '--store', missing, '--json']);
    expect(f.code, f.stdout).toBe(0);
  }, 120_000);

  it('--max-snapshot-age refuses a snapshot whose signed createdAt is older (exit 1, store unchanged) and accepts a fresh one', async () => {
    const old = join(root, 'old.tar');
    const fresh = join(root, 'fresh.tar');
    await librarySync(old, new Date(Date.now() - 40 * 86_400_000));
    await librarySync(fresh, new Date());
    const store = join(root, 'age-store');
    const bad = await runCli(importArgs(old, store, ['--create', '--max-snapshot-age', '30d']));
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(errorOf(bad).code).toBe('IMPORT_SNAPSHOT_EXPIRED');
    expect(errorOf(bad).message).toMatch(/older than the maximum age of 30\.0 days/);
    const before = storeHead(store);
    expect(before).toContain('"snapshots":0');
    // A malformed duration is a usage error, never "no limit".
    const typo = await runCli(importArgs(old, store, ['--max-snapshot-age', '30 days']));
    expect(typo.code, typo.stdout).toBe(2);
    expect(storeHead(store)).toBe(before);
    // Forward-dating does not buy a snapshot eternal life.
    const future = join(root, 'future.tar');
    await librarySync(future, new Date(Date.now() + 3 * 86_400_000));
    const ahead = await runCli(importArgs(future, store, ['--max-snapshot-age', '30d']));
    expect(ahead.code, ahead.stdout).toBe(1);
    expect(errorOf(ahead).code).toBe('IMPORT_SNAPSHOT_EXPIRED');
    expect(errorOf(ahead).message).toContain('in the future');
    expect(storeHead(store)).toBe(before);
    const ok = await runCli(importArgs(fresh, store, ['--max-snapshot-age', '30d']));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    // Without the flag there is no limit (the default stays off).
    const noLimit = await runCli(importArgs(old, join(root, 'age-store-2'), ['--create']));
    expect(noLimit.code, noLimit.stdout).toBe(0);
  }, 120_000);

  it('refuses a real bundle whose SBOM was swapped for another validly signed one, or stripped', async () => {
    const real = join(root, 'real.tar');
    const s = await runCli(syncArgs(real, ['--npm-lock', lockfile, '--list', list]));
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const other = join(root, 'other-sbom.tar');
    await librarySync(other, new Date(Date.now() - 3_600_000));
    const realEntries = await readTar(real);
    const otherEntries = await readTar(other);
    const pick = (es: TarEntry[], n: string): Buffer => es.find((e) => e.name === n)!.body;
    expect(
      pick(otherEntries, 'attestations/sbom.cdx.json').equals(pick(realEntries, 'attestations/sbom.cdx.json')),
    ).toBe(false);

    const swapped = join(root, 'swapped.tar');
    await rewriteBundle(
      realEntries,
      swapped,
      new Map([
        ['attestations/sbom.cdx.json', pick(otherEntries, 'attestations/sbom.cdx.json')],
        ['attestations/sbom.sigstore.json', pick(otherEntries, 'attestations/sbom.sigstore.json')],
      ]),
    );
    const stripped = join(root, 'stripped.tar');
    await rewriteBundle(
      realEntries,
      stripped,
      new Map([
        ['attestations/sbom.cdx.json', undefined],
        ['attestations/sbom.sigstore.json', undefined],
      ]),
    );
    const store = join(root, 'sbom-store');
    for (const [what, bundle] of [
      ['swapped', swapped],
      ['stripped', stripped],
    ] as const) {
      const r = await runCli(importArgs(bundle, store, ['--create']));
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(errorOf(r).code, what).toBe('IMPORT_SBOM_MISMATCH');
      expect(storeHead(store), what).toContain('"snapshots":0');
    }
    // What makes the difference: the signed manifest names the SBOM it was made with.
    const manifest = JSON.parse(pick(realEntries, 'manifest.json').toString('utf8')) as {
      sbom: { sha256: string; size: number } | null;
    };
    expect(manifest.sbom).toEqual({
      sha256: sha256(pick(realEntries, 'attestations/sbom.cdx.json')),
      size: pick(realEntries, 'attestations/sbom.cdx.json').length,
    });
    // Control: the untouched bundle, rewritten the same way, imports.
    const control = join(root, 'control.tar');
    await rewriteBundle(realEntries, control, new Map());
    expect(readFileSync(control).equals(readFileSync(real))).toBe(true);
    const ok = await runCli(importArgs(control, store));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 120_000);

  it('a sync whose inputs pin nothing is refused (exit 2) unless --allow-empty', async () => {
    const empty = join(root, 'empty-lock.json');
    writeFileSync(empty, JSON.stringify({ name: 'e', lockfileVersion: 3, packages: { '': { name: 'e' } } }));
    const out = join(root, 'empty.tar');
    const r = await runCli(syncArgs(out, ['--npm-lock', empty]));
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(errorOf(r).code).toBe('SYNC_EMPTY');
    expect(errorOf(r).message).toContain('--allow-empty');
    expect(existsSync(out)).toBe(false);
    const ok = await runCli(syncArgs(out, ['--npm-lock', empty, '--allow-empty']));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, entries: 0 });
  }, 60_000);

  it('checks the plane and the output path before downloading anything', async () => {
    const port = await closedPort();
    up.resetCounters();
    const out = join(root, 'unreachable.tar');
    const down = await runCli(
      syncArgs(
        out,
        ['--npm-lock', lockfile, '--list', list],
        ['--fulcio-url', `http://127.0.0.1:${port}`, '--rekor-url', `http://127.0.0.1:${port}`],
      ),
    );
    expect(down.code, down.stdout + down.stderr).toBe(3);
    expect(errorOf(down).code).toBe('SYNC_PLANE_UNREACHABLE');
    expect(up.totalHits()).toBe(0);
    expect(existsSync(out)).toBe(false);

    // An output under a regular file cannot be written: refused before any download too.
    writeFileSync(join(root, 'a-file'), 'x');
    const bad = await runCli(syncArgs(join(root, 'a-file', 'b.tar'), ['--npm-lock', lockfile, '--list', list]));
    expect(bad.code, bad.stdout + bad.stderr).toBe(2);
    expect(errorOf(bad).code).toBe('SYNC_OUTPUT_UNWRITABLE');
    expect(up.totalHits()).toBe(0);
  }, 60_000);

  it('a failed fetch fails the sync (exit 1) with the failure counted, and writes neither bundle nor state', async () => {
    const bad = join(root, 'bad-list.json');
    writeFileSync(
      bad,
      JSON.stringify([
        { url: `${up.url}/files/generic.bin`, sha256: sha256(GENERIC) },
        { url: `${up.url}/files/gone.bin`, sha256: sha256(Buffer.from('gone')) },
      ]),
    );
    const state = join(root, 'fail-state.json');
    const out = join(root, 'failed.tar');
    const r = await runCli(syncArgs(out, ['--list', bad], ['--state', state]));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(errorOf(r).code).toBe('SYNC_ENTRIES_FAILED');
    expect(errorOf(r).message).toContain('1 of 2 entries failed');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(state)).toBe(false);
    // The progress on stderr counts it as a failure too, not as one more entry done.
    const human = await runCli(['sync', '--list', bad, '--out', out, '--data', planeDir]);
    expect(human.code, human.stderr).toBe(1);
    expect(human.stderr).toMatch(/^sync: \d+\/\d+ done, [\d.]+ MB, 1 FAILED$/m);
    expect(human.stderr).toContain('1 of 2 entries failed');
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('fsck and export-bazel-cache show progress on stderr', async () => {
    const store = join(root, 'progress-store');
    const s = await runCli(syncArgs(join(root, 'progress.tar'), ['--npm-lock', lockfile, '--list', list]));
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const imp = await runCli(importArgs(join(root, 'progress.tar'), store, ['--create']));
    expect(imp.code, imp.stdout).toBe(0);
    const blobs = (JSON.parse(imp.stdout) as { blobs: number }).blobs;
    const f = await runCli(['mirror', 'fsck', '--store', store]);
    expect(f.code, f.stdout + f.stderr).toBe(0);
    expect(f.stderr).toContain(`checked blobs ${blobs}/${blobs}`);
    const e = await runCli(['mirror', 'export-bazel-cache', join(root, 'bazel-cache'), '--store', store]);
    expect(e.code, e.stdout + e.stderr).toBe(0);
    expect(e.stderr).toContain(`exported blobs ${blobs}/${blobs}`);
  }, 120_000);
});
