/**
 * Issue 3 through the CLI, end to end: trust plane up → `airlock sync` from a loopback npm-registry-shaped
 * upstream → `airlock mirror import` → `airlock mirror serve` → upstream stopped → real `npm ci` from the mirror.
 * Then the store must refuse a replay, a tampered bundle and a bundle signed by another identity, and stay
 * exactly as it was each time.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import {
  generateLockfile,
  makeWheel,
  npmProblem,
  publishFixturePackages,
  startUpstream,
  toolsAvailable,
  type Upstream,
} from '@airlock/testkit';
import { expectedFlip, tarLayout } from './helpers/bundle-flips.js';
import { runCli, startCli } from './helpers/cli.js';

const npmAvailable = toolsAvailable('sync → import → serve e2e', [npmProblem()]);

let root: string;
let planeDir: string;
let plane: RunningTrustPlane;
let up: Upstream | undefined;
let lockfile: string;
let store: string;
let syncIdentity: string;
const GENERIC = Buffer.from('a generic pinned file\n'.repeat(1000));

const WHEEL = makeWheel('fixture_pkg', '1.0.0');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The outside world: an npm-registry-shaped server, a PEP 691/503 index and a plain file, all on loopback. */
async function startFixtureUpstream(): Promise<Upstream> {
  const u = await startUpstream();
  await publishFixturePackages(u, root);
  u.file('/files/generic.bin', GENERIC);
  const file = {
    filename: WHEEL.filename,
    url: `${u.url}/pypi-files/${WHEEL.filename}`,
    hashes: { sha256: sha256(WHEEL.wheel) },
    'requires-python': '>=3.8',
    'core-metadata': { sha256: sha256(WHEEL.metadata) },
  };
  u.route('/simple/fixture-pkg/', (_req, res) => {
    res.setHeader('content-type', 'application/vnd.pypi.simple.v1+json');
    res.end(
      JSON.stringify({ meta: { 'api-version': '1.1' }, name: 'fixture-pkg', versions: ['1.0.0'], files: [file] }),
    );
  });
  u.file(`/pypi-files/${WHEEL.filename}`, WHEEL.wheel);
  u.file(`/pypi-files/${WHEEL.filename}.metadata`, WHEEL.metadata);
  writeFileSync(
    join(root, 'list.json'),
    JSON.stringify([{ url: `${u.url}/files/generic.bin`, sha256: sha256(GENERIC) }]),
  );
  return u;
}

const sync = (out: string, extra: string[] = []): ReturnType<typeof runCli> =>
  runCli([
    'sync',
    '--npm-lock',
    lockfile,
    '--list',
    join(root, 'list.json'),
    '--requirements',
    join(root, 'requirements.txt'),
    '--pypi-index',
    `${up!.url}/simple`,
    '--out',
    out,
    '--data',
    planeDir,
    '--json',
    ...extra,
  ]);
const importArgs = (bundle: string, extra: string[] = [], into = store): string[] => [
  'mirror',
  'import',
  bundle,
  '--store',
  into,
  '--create',
  '--data',
  planeDir,
  '--sync-identity',
  syncIdentity,
  '--sync-issuer',
  plane.endpoints.identityIssuerUrl,
  '--json',
  ...extra,
];

/** What must not change when an import is refused: head, every blob file, the index contents. */
function storeState(dir = store): string {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p.slice(dir.length));
    }
  };
  walk(join(dir, 'blobs'));
  const head = spawnSync(process.execPath, [join(__dirname, 'helpers', 'store-head.mjs'), dir], {
    encoding: 'utf8',
  }).stdout;
  return JSON.stringify({ files: files.sort(), head });
}

describe.skipIf(!npmAvailable)('sync → import → serve → npm ci + pip (CLI, real clients)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-e2e-mirror-'));
    planeDir = join(root, 'plane');
    store = join(root, 'store');
    plane = await startTrustPlane({ dataDir: planeDir });
    syncIdentity = `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`;
    up = await startFixtureUpstream();
    lockfile = await generateLockfile(up, root, 3);
    writeFileSync(join(root, 'requirements.txt'), `fixture-pkg==1.0.0 \\\n    --hash=sha256:${sha256(WHEEL.wheel)}\n`);
  });
  afterAll(async () => {
    await up?.close();
    await plane?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('syncs, imports, serves; real npm ci and pip install --require-hashes work from the mirror with the upstream gone', async () => {
    const s = await sync(join(root, 'b1.tar'), ['--state', join(root, 'state.json')]);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, signed: true, sequence: 1, entries: 5 });

    const imp = await runCli(importArgs(join(root, 'b1.tar')));
    expect(imp.code, imp.stdout + imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({
      ok: true,
      entries: 5,
      signer: { subjectAlternativeName: syncIdentity },
    });

    await up!.close();
    up = undefined;
    const mirror = await startCli(['mirror', 'serve', '--store', store, '--json'], (o) => o.trim().endsWith('}'));
    try {
      const { url } = JSON.parse(mirror.stdout()) as { url: string };
      const app = join(root, 'install');
      mkdirSync(app);
      cpSync(lockfile, join(app, 'package-lock.json'));
      cpSync(join(lockfile, '..', 'package.json'), join(app, 'package.json'));
      const home = join(root, 'home');
      mkdirSync(home);
      // The fixture lockfile's `resolved` URLs name the (now stopped) upstream; lockfiles from the public registry
      // name registry.npmjs.org, which npm rewrites to --registry by default. `always` does the same for ours.
      const r = spawnSync(
        'npm',
        [
          'ci',
          `--registry=${url}/`,
          '--replace-registry-host=always',
          '--fetch-retries=0',
          '--cache',
          join(root, 'npm-cache'),
          '--prefer-online',
          '--no-audit',
          '--no-fund',
        ],
        {
          cwd: app,
          encoding: 'utf8',
          env: { ...process.env, HOME: home, npm_config_userconfig: join(home, '.npmrc') },
        },
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(
        JSON.parse(readFileSync(join(app, 'node_modules', '@fixture', 'scoped', 'package.json'), 'utf8')),
      ).toMatchObject({ name: '@fixture/scoped', version: '1.0.0' });
      expect(JSON.parse(readFileSync(join(app, 'node_modules', 'fixture-dep', 'package.json'), 'utf8')).version).toBe(
        '2.0.1',
      );
      // The generic file by digest; an unknown name is 404, never fetched.
      const hex = sha256(GENERIC);
      const g = await fetch(`${url}/blobs/sha256/${hex}`);
      expect(Buffer.from(await g.arrayBuffer()).equals(GENERIC)).toBe(true);
      expect((await fetch(`${url}/left-pad`)).status).toBe(404);

      // Real pip, hash-checking mode, from the mirror's simple index only.
      const target = join(root, 'site');
      const pip = spawnSync(
        'python3',
        [
          '-m',
          'pip',
          'install',
          '--index-url',
          `${url}/simple`,
          '--require-hashes',
          '-r',
          join(root, 'requirements.txt'),
          '--target',
          target,
          '--no-cache-dir',
          '--isolated',
          '--disable-pip-version-check',
          '--no-deps',
        ],
        { encoding: 'utf8', env: { ...process.env, HOME: home } },
      );
      expect(pip.status, pip.stdout + pip.stderr).toBe(0);
      expect(readFileSync(join(target, 'fixture_pkg', '__init__.py'), 'utf8')).toContain('1.0.0');
    } finally {
      await mirror.stop();
    }
  }, 240_000);

  it('refuses a replay of the same bundle, leaving the store unchanged', async () => {
    const before = storeState();
    const r = await runCli(importArgs(join(root, 'b1.tar')));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe('IMPORT_SEQUENCE');
    expect(storeState()).toBe(before);
  });

  it('refuses tampered bundles (sampled flipped bytes across the tar), leaving the store unchanged and fsck clean', async () => {
    const bundle = readFileSync(join(root, 'b1.tar'));
    const layout = tarLayout(bundle);
    // A fresh store, where the intact bundle is importable (checked last): the flip is the only reason to refuse.
    const fresh = join(root, 'tamper-store');
    await (await MirrorStore.open(fresh)).close();
    const before = storeState(fresh);
    const mainBefore = storeState();
    const mBundle = layout.entries.find((e) => e.name === 'attestations/manifest.sigstore.json')!;
    const json = bundle.subarray(mBundle.data, mBundle.data + mBundle.size).toString('latin1');
    expect(json.indexOf('=')).toBeGreaterThan(0);
    // The key of an empty object, when the bundle has one (a bundle without an RFC 3161 timestamp has
    // `"timestampVerificationData":{}`; a timestamped one, the default since the plane has a TSA, has none).
    const emptyObject = json.indexOf('":{}');
    const padded = layout.entries.filter((e) => e.paddingLength > 0);
    const middle = layout.entries[Math.floor(layout.entries.length / 2)]!;
    const positions = new Set([
      // spread over the whole file, the end-of-archive blocks included
      ...Array.from({ length: 6 }, (_, i) => Math.floor((i * (bundle.length - 1)) / 5)),
      // and the bytes a lenient reader overlooks: a header checksum terminator, padding, end blocks, base64
      // padding, the key of an empty object
      middle.header + 155,
      padded[0]!.padding,
      padded.at(-1)!.padding + padded.at(-1)!.paddingLength - 1,
      layout.end + 700,
      mBundle.data + json.indexOf('=') - 1,
      mBundle.data + json.indexOf('='),
      ...(emptyObject > 0 ? [mBundle.data + emptyObject - 1] : []),
    ]);
    const outcomes: { what: string; code: string }[] = [];
    const expected: { what: string; code: string }[] = [];
    for (const pos of positions) {
      const t = Buffer.from(bundle);
      t[pos] = t[pos]! ^ 0x01;
      const path = join(root, `tampered-${pos}.tar`);
      writeFileSync(path, t);
      const r = await runCli(importArgs(path, [], fresh));
      const { what, code } = expectedFlip(layout, pos);
      outcomes.push({
        what,
        code: r.code === 0 ? 'ACCEPTED' : (JSON.parse(r.stdout) as { error: { code: string } }).error.code,
      });
      expected.push({ what, code });
      expect(storeState(fresh), what).toBe(before);
      rmSync(path);
    }
    expect(outcomes).toEqual(expected);
    const f = await runCli(['mirror', 'fsck', '--store', fresh, '--json']);
    expect(f.code, f.stdout).toBe(0);
    expect(storeState()).toBe(mainBefore);
    // Control: untouched, the same bundle imports into that store.
    const ok = await runCli(importArgs(join(root, 'b1.tar'), [], fresh));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 180_000);

  it('refuses a bundle signed by another identity, and accepts the next snapshot from the right one', async () => {
    // The upstream is gone: rebuild it for a second sync.
    up = await startFixtureUpstream();
    lockfile = await generateLockfile(up, root, 2);
    const other = await sync(join(root, 'other.tar'), [
      '--state',
      join(root, 'state.json'),
      '--subject',
      `spiffe://${plane.endpoints.trustDomain}/someone/else`,
    ]);
    expect(other.code, other.stderr).toBe(0);
    const before = storeState();
    const r = await runCli(importArgs(join(root, 'other.tar')));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe('IMPORT_SIGNATURE_INVALID');
    expect(storeState()).toBe(before);
    // The sync state moved on with the refused bundle (sequence 2), so the next good bundle is sequence 3 with a
    // previous the store does not have: a gap, refused unless allowed.
    const good = await sync(join(root, 'b3.tar'), ['--state', join(root, 'state.json')]);
    expect(good.code, good.stderr).toBe(0);
    const gap = await runCli(importArgs(join(root, 'b3.tar')));
    expect(JSON.parse(gap.stdout).error.code).toBe('IMPORT_SEQUENCE');
    const ok = await runCli(importArgs(join(root, 'b3.tar'), ['--allow-gap']));
    expect(ok.code, ok.stdout).toBe(0);
    expect(JSON.parse(ok.stdout).snapshot.sequence).toBe(3);
  });
});
