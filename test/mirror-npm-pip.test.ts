/**
 * Issue 3 acceptance, happy path, through the CLI with real clients:
 *   `airlock up` → `airlock sync` (npm lockfile of 34 packages incl. 9 scoped, hash-pinned requirements against a
 *   PEP 691/503 index, a generic file) from a loopback fixture upstream → `airlock mirror import` →
 *   `airlock mirror serve` → the upstream is stopped → real `npm ci` and real `pip install --require-hashes`,
 *   each with an empty cache and an isolated configuration, install from the mirror alone. Finally an npm tarball
 *   and a wheel corrupted at rest are refused through their ecosystem routes and fsck exits 1.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PackedPackage } from '@airlock/testkit';
import {
  STORE_BACKENDS,
  startStoreBackend,
  storeBackendAvailable,
  type StoreBackend,
} from './helpers/store-backends.js';
import {
  fsck,
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
  type StoreRef,
} from './helpers/upstream-e2e.js';
import {
  buildPythonFixtures,
  loadNpmFixtureSet,
  missingTool,
  packNpmFixtures,
  requirementsTxt,
  sha256Hex,
  startFixtureUpstream,
  writeFixtureProject,
  type FixtureUpstream,
  type PyDist,
} from './helpers/upstream.js';

const execFileAsync = promisify(execFile);

const npmMissing = missingTool('npm', ['--version'], 'npm');
const pipMissing = missingTool('python3', ['-m', 'pip', '--version'], 'python3 -m pip');

const GENERIC = Buffer.from(Array.from({ length: 4096 }, (_, i) => `line ${i} of a pinned generic file\n`).join(''));

let root: string;
let plane: CliPlane | undefined;
let upstream: FixtureUpstream | undefined;
let mirror: RunningMirror | undefined;
let backend: StoreBackend | undefined;
let store: StoreRef;
let packed: PackedPackage[] = [];
let dists: PyDist[] = [];
let appDir: string;
let lockfile: Record<string, unknown> & {
  packages: Record<string, { version?: string; resolved?: string; integrity?: string; link?: boolean }>;
};

/** A private HOME with empty user/global configs: nothing of the host's npm or pip setup leaks in. */
function isolatedEnv(home: string): NodeJS.ProcessEnv {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'npmrc'), '');
  writeFileSync(join(home, 'npmrc-global'), '');
  return {
    PATH: process.env.PATH,
    HOME: home,
    npm_config_userconfig: join(home, 'npmrc'),
    npm_config_globalconfig: join(home, 'npmrc-global'),
    npm_config_update_notifier: 'false',
    PIP_CONFIG_FILE: '/dev/null',
    PYTHONDONTWRITEBYTECODE: '1',
    // Any attempt to reach past loopback must fail fast rather than hang.
    http_proxy: 'http://127.0.0.1:9',
    https_proxy: 'http://127.0.0.1:9',
    no_proxy: '127.0.0.1',
  };
}

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileAsync(cmd, args, {
      ...opts,
      encoding: 'utf8',
      timeout: 150_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const fixtureSet = loadNpmFixtureSet();

// The same test on every store backend: a directory, and S3 (a real radosgw) with the index in a directory.
describe.each(STORE_BACKENDS.filter((b) => !(npmMissing && pipMissing) && storeBackendAvailable(b)))(
  'mirror e2e: sync → import → serve → real npm ci and pip install (CLI, %s store)',
  (backendName) => {
    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'airlock-mirror-e2e-'));
      backend = await startStoreBackend(backendName, root);
      store = backend.ref;
      plane = await startPlane(join(root, 'plane'));
      const [p, d] = await Promise.all([
        npmMissing ? [] : packNpmFixtures(root, fixtureSet.packages),
        pipMissing ? [] : buildPythonFixtures(root),
      ]);
      packed = p;
      dists = d;
      // airlock-fx-words is served as PEP 503 HTML only (an older index); airlock-fx-greeting negotiates PEP 691 JSON.
      upstream = await startFixtureUpstream({
        npm: packed,
        pypi: dists,
        htmlOnlyProjects: ['airlock-fx-words'],
        files: { 'tool-1.0.tar.gz': GENERIC },
      });
      if (!npmMissing) {
        appDir = join(root, 'app');
        const lockPath = await writeFixtureProject(appDir, root, upstream.npmRegistry, fixtureSet.project);
        lockfile = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof lockfile;
      }
      if (!pipMissing) writeFileSync(join(root, 'requirements.txt'), requirementsTxt(dists));
      writeFileSync(
        join(root, 'list.json'),
        JSON.stringify([{ url: upstream.fileUrl('tool-1.0.tar.gz'), sha256: sha256Hex(GENERIC) }]),
      );
    }, 180_000);

    afterAll(async () => {
      await mirror?.stop();
      await upstream?.close();
      await plane?.stop();
      await backend?.stop();
      if (root) rmSync(root, { recursive: true, force: true });
      [mirror, upstream, plane, backend] = [undefined, undefined, undefined, undefined];
    });

    const nameOf = (lockPath: string): string =>
      lockPath.slice(lockPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const lockedPackages = (): [string, { version?: string; resolved?: string; integrity?: string }][] =>
      Object.entries(lockfile.packages).filter(([path, p]) => path !== '' && !p.link);

    it.skipIf(npmMissing)(
      'the fixture lockfile is real: ≥ 30 packages incl. scoped ones, nested versions, resolved + integrity from npm',
      () => {
        const pkgs = lockedPackages();
        expect(pkgs.length).toBeGreaterThanOrEqual(30);
        expect(pkgs.filter(([path]) => path.includes('node_modules/@')).length).toBeGreaterThanOrEqual(8);
        // Two versions of fx-util: 2.x hoisted for the project, 1.x nested under its dependents.
        expect(lockfile.packages['node_modules/fx-util']?.version).toBe('2.0.0');
        expect(pkgs.some(([path, p]) => path.endsWith('/node_modules/fx-util') && p.version === '1.0.0')).toBe(true);
        for (const [path, p] of pkgs) {
          expect(p.resolved, path).toMatch(new RegExp(`^${upstream!.npmRegistry.replace(/[.]/g, '\\.')}`));
          const tarball = packed.find((x) => x.name === nameOf(path) && x.version === p.version);
          expect(tarball, path).toBeDefined();
          expect(p.integrity).toBe(tarball!.integrity);
        }
        // The package the project does not use is not in the lockfile (so the mirror must not have it).
        expect(pkgs.some(([path]) => path.endsWith('fx-unused-by-project'))).toBe(false);
      },
    );

    it('airlock sync writes one signed bundle; airlock mirror import verifies and publishes it', async () => {
      const inputs = [
        ...(npmMissing ? [] : ['--npm-lock', join(appDir, 'package-lock.json')]),
        ...(pipMissing ? [] : ['--requirements', join(root, 'requirements.txt'), '--pypi-index', upstream!.pypiIndex]),
        '--list',
        join(root, 'list.json'),
      ];
      const s = await runCliJson([
        'sync',
        ...inputs,
        '--out',
        join(root, 'b1.tar'),
        '--state',
        join(root, 'state.json'),
        '--data',
        plane!.dir,
        '--json',
      ]);
      expect(s.code, s.stdout + s.stderr).toBe(0);
      // Entries are per name@version (fx-util@1.0.0 is nested twice in the lockfile but mirrored once).
      const npmCount = npmMissing
        ? 0
        : new Set(lockedPackages().map(([path, p]) => `${nameOf(path)}@${p.version}`)).size;
      // Wheels and sdists are all pinned; each wheel's PEP 658 metadata is a blob of its own.
      const wheels = dists.filter((d) => d.kind === 'wheel').length;
      expect(s.json).toMatchObject({
        ok: true,
        signed: true,
        sbom: true,
        sequence: 1,
        previous: null,
        entries: npmCount + dists.length + 1,
        blobs: npmCount + dists.length + wheels + 1,
      });
      // The sync job read the upstream: every tarball once, both index pages, each PEP 658 file.
      if (!npmMissing)
        for (const [, p] of lockedPackages()) expect(upstream!.hits(new URL(p.resolved!).pathname), p.resolved).toBe(1);
      if (!pipMissing) {
        expect(upstream!.hits('/simple/airlock-fx-words/')).toBe(1);
        expect(upstream!.hits('/simple/airlock-fx-greeting/')).toBe(1);
      }

      const imp = await runCliJson(importArgs(join(root, 'b1.tar'), store, plane!));
      expect(imp.code, imp.stdout + imp.stderr).toBe(0);
      expect(imp.json).toMatchObject({
        ok: true,
        entries: npmCount + dists.length + 1,
        blobs: npmCount + dists.length + wheels + 1,
        newBlobs: npmCount + dists.length + wheels + 1,
        snapshot: { sequence: 1, id: s.json.snapshotId },
        signer: { subjectAlternativeName: plane!.syncIdentity, issuer: plane!.endpoints.identityIssuerUrl },
      });
      const f = await fsck(store);
      expect(f.code, JSON.stringify(f.report)).toBe(0);
      expect(f.report).toMatchObject({ clean: true, checked: npmCount + dists.length + wheels + 1 });

      // From here on the outside world is gone: everything must come from the mirror.
      const upstreamUrl = upstream!.url;
      await upstream!.close();
      upstream = undefined;
      await expect(fetch(`${upstreamUrl}/simple/`)).rejects.toThrow();
      mirror = await startMirror(store);
      expect(mirror.snapshot).toBe(s.json.snapshotId);
    }, 120_000);

    it.skipIf(npmMissing)(
      'real npm ci --registry <mirror> installs the whole fixture project with an empty cache',
      async () => {
        expect(mirror, 'the mirror is running').toBeDefined();
        const app = join(root, 'install-npm');
        mkdirSync(app);
        cpSync(join(appDir, 'package.json'), join(app, 'package.json'));
        cpSync(join(appDir, 'package-lock.json'), join(app, 'package-lock.json'));
        const cache = mkdtempSync(join(root, 'npm-cache-'));
        // The lockfile's `resolved` URLs name the fixture upstream (now stopped); `always` makes npm fetch those
        // tarballs from --registry, as it does by default for registry.npmjs.org URLs.
        const r = await run(
          'npm',
          [
            'ci',
            `--registry=${mirror!.url}/`,
            '--replace-registry-host=always',
            '--cache',
            cache,
            '--prefer-online',
            '--fetch-retries=0',
            '--no-audit',
            '--no-fund',
            '--loglevel=warn',
          ],
          { cwd: app, env: isolatedEnv(join(root, 'home-npm')) },
        );
        expect(r.code, r.out).toBe(0);

        // Every locked package is installed at its locked path with its locked version.
        for (const [path, p] of lockedPackages()) {
          const pj = JSON.parse(readFileSync(join(app, path, 'package.json'), 'utf8')) as {
            name: string;
            version: string;
          };
          expect(`${pj.name}@${pj.version}`, path).toBe(`${nameOf(path)}@${p.version}`);
        }
        // npm recorded the same integrity it verified against the mirror's bytes.
        const hidden = JSON.parse(
          readFileSync(join(app, 'node_modules', '.package-lock.json'), 'utf8'),
        ) as typeof lockfile;
        for (const [path, p] of lockedPackages()) expect(hidden.packages[path]?.integrity, path).toBe(p.integrity);

        // The installed graph works: requiring the roots walks every dependency (both fx-util versions, scoped and not).
        const script = `
      const seen = new Set();
      const walk = (m) => { if (!m || seen.has(m.id)) return; seen.add(m.id); for (const d of Object.values(m.deps)) walk(d); };
      for (const name of Object.keys(require('./package.json').dependencies)) walk(require(name));
      console.log(JSON.stringify([...seen].sort()));`;
        const graph = await run(process.execPath, ['-e', script], { cwd: app, env: { PATH: process.env.PATH } });
        expect(graph.code, graph.out).toBe(0);
        const ids = JSON.parse(graph.out) as string[];
        expect(ids).toEqual([...new Set(lockedPackages().map(([path, p]) => `${nameOf(path)}@${p.version}`))].sort());
        expect(ids).toContain('fx-util@1.0.0');
        expect(ids).toContain('fx-util@2.0.0');
        expect(ids).toContain('@fx-beta/empty@1.0.0');
        // A package's bin was linked and runs.
        const bin = await run(join(app, 'node_modules', '.bin', 'fx-cli'), [], {
          cwd: app,
          env: { PATH: process.env.PATH },
        });
        expect(bin.out.trim()).toBe('@fx-alpha/cli@1.2.0');
        // The big tarball arrived intact (npm checked its integrity; check the content too).
        expect(readFileSync(join(app, 'node_modules', 'fx-big', 'data.txt'), 'utf8')).toHaveLength(300_000);
      },
      150_000,
    );

    it.skipIf(npmMissing)(
      'real npm install without a lockfile resolves through the mirror packuments (ranges, scopes, dist-tags)',
      async () => {
        expect(mirror, 'the mirror is running').toBeDefined();
        const app = join(root, 'install-npm-resolve');
        mkdirSync(app);
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'resolver', version: '1.0.0', private: true }));
        const r = await run(
          'npm',
          [
            'install',
            '@fx-alpha/cli@^1.0.0',
            '@fx-beta/store',
            'fx-util@1',
            `--registry=${mirror!.url}/`,
            '--cache',
            mkdtempSync(join(root, 'npm-cache-')),
            '--fetch-retries=0',
            '--no-audit',
            '--no-fund',
            '--loglevel=warn',
          ],
          { cwd: app, env: isolatedEnv(join(root, 'home-npm-resolve')) },
        );
        expect(r.code, r.out).toBe(0);
        const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as typeof lockfile;
        const installed = Object.entries(lock.packages).filter(([path]) => path !== '');
        // The same versions the upstream resolution chose; every tarball came from the mirror (rewritten dist.tarball).
        expect(lock.packages['node_modules/@fx-alpha/cli']?.version).toBe('1.2.0');
        expect(lock.packages['node_modules/fx-util']?.version).toBe('1.0.0');
        expect(installed.length).toBeGreaterThan(15);
        for (const [path, p] of installed) {
          expect(p.resolved, path).toMatch(new RegExp(`^${mirror!.url.replace(/[.]/g, '\\.')}/`));
          expect(p.integrity, path).toBe(
            lockfile.packages[
              Object.keys(lockfile.packages).find(
                (k) => nameOf(k) === nameOf(path) && lockfile.packages[k]!.version === p.version,
              )!
            ]!.integrity,
          );
        }
        // A version the mirror does not have cannot be resolved (no upstream fallback).
        const missing = await run(
          'npm',
          [
            'install',
            'fx-util@3',
            `--registry=${mirror!.url}/`,
            '--cache',
            mkdtempSync(join(root, 'npm-cache-')),
            '--fetch-retries=0',
            '--no-audit',
            '--no-fund',
          ],
          {
            cwd: app,
            env: isolatedEnv(join(root, 'home-npm-resolve')),
          },
        );
        expect(missing.code).not.toBe(0);
        expect(missing.out).toMatch(/ETARGET|No matching version/);
      },
      120_000,
    );

    it.skipIf(pipMissing)(
      'real pip install --require-hashes --index-url <mirror>/simple resolves and installs with no cache',
      async () => {
        expect(mirror, 'the mirror is running').toBeDefined();
        const target = join(root, 'site-packages');
        const r = await run(
          'python3',
          [
            '-m',
            'pip',
            'install',
            '--index-url',
            `${mirror!.url}/simple`,
            '--require-hashes',
            '-r',
            join(root, 'requirements.txt'),
            '--target',
            target,
            '--no-cache-dir',
            '--isolated',
            '--disable-pip-version-check',
            '--no-input',
            '--retries',
            '0',
            '--timeout',
            '20',
          ],
          { env: isolatedEnv(join(root, 'home-pip')) },
        );
        expect(r.code, r.out).toBe(0);
        // The dependency was resolved through the mirror's index (it is not named on the command line), as wheels.
        expect(existsSync(join(target, 'airlock_fx_words-1.0.0.dist-info', 'WHEEL'))).toBe(true);
        expect(existsSync(join(target, 'airlock_fx_greeting-2.1.0.dist-info', 'WHEEL'))).toBe(true);
        const py = await run('python3', ['-c', 'import airlock_fx_greeting as g; print(g.__version__, g.greet())'], {
          env: { PATH: process.env.PATH, PYTHONPATH: target, PYTHONDONTWRITEBYTECODE: '1' },
        });
        expect(py.out.trim()).toBe('2.1.0 hello from the air gap');
      },
      120_000,
    );

    it('serves only what was imported: unknown names are 404, never fetched upstream; the generic file by digest', async () => {
      expect(mirror, 'the mirror is running').toBeDefined();
      const url = mirror!.url;
      const g = await fetch(`${url}/blobs/sha256/${sha256Hex(GENERIC)}`);
      expect(g.status).toBe(200);
      expect(Buffer.from(await g.arrayBuffer()).equals(GENERIC)).toBe(true);
      expect((await fetch(`${url}/fx-unused-by-project`)).status).toBe(404);
      expect((await fetch(`${url}/@fx-gamma%2ftiny`)).status).toBe(404);
      expect((await fetch(`${url}/simple/requests/`)).status).toBe(404);
      if (!npmMissing) {
        // A scoped packument in each encoding, tarball links rewritten to the mirror, integrity kept.
        const core = packed.find((p) => p.name === '@fx-alpha/core')!;
        for (const path of ['/@fx-alpha%2fcore', '/@fx-alpha%2Fcore', '/@fx-alpha/core']) {
          const r = await fetch(`${url}${path}`, {
            headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' },
          });
          expect(r.status, path).toBe(200);
          const doc = (await r.json()) as {
            versions: Record<string, { dist: { tarball: string; integrity: string; shasum: string } }>;
          };
          const dist = doc.versions['1.0.0']!.dist;
          expect(dist.tarball.startsWith(`${url}/`)).toBe(true);
          expect(dist.integrity).toBe(core.integrity);
          expect(dist.shasum).toBe(core.shasum);
          const t = Buffer.from(await (await fetch(dist.tarball)).arrayBuffer());
          expect(`sha512-${createHash('sha512').update(t).digest('base64')}`).toBe(core.integrity);
        }
      }
    });

    it('an npm tarball and a wheel corrupted at rest are never served through their routes; npm ci fails; fsck exits 1', async () => {
      expect(mirror, 'the mirror is running').toBeDefined();
      const url = mirror!.url;
      const victims: { what: string; bytes: Buffer; route: string }[] = [];
      if (!npmMissing) {
        const big = packed.find((p) => p.name === 'fx-big')!;
        victims.push({ what: 'npm tarball', bytes: big.tarball, route: `/fx-big/-/fx-big-1.0.0.tgz` });
      }
      if (!pipMissing) {
        const wheel = dists.find((d) => d.kind === 'wheel' && d.project === 'airlock-fx-greeting')!;
        const page = (await (
          await fetch(`${url}/simple/airlock-fx-greeting/`, {
            headers: { accept: 'application/vnd.pypi.simple.v1+json' },
          })
        ).json()) as { files: { filename: string; url: string }[] };
        const file = page.files.find((f) => f.filename === wheel.filename)!;
        victims.push({
          what: 'wheel',
          bytes: wheel.bytes,
          route: new URL(file.url, `${url}/simple/airlock-fx-greeting/`).pathname,
        });
      }
      for (const v of victims) {
        // Served intact first (so it is verified and cached), then damaged at rest.
        expect(Buffer.from(await (await fetch(`${url}${v.route}`)).arrayBuffer()).equals(v.bytes), v.what).toBe(true);
        await backend!.corrupt(sha256Hex(v.bytes));
      }
      for (const v of victims) {
        for (const path of [v.route, `/blobs/sha256/${sha256Hex(v.bytes)}`]) {
          const r = await fetch(`${url}${path}`);
          const body = Buffer.from(await r.arrayBuffer());
          expect([410, 500, 502, 503], `${v.what} ${path}: ${r.status}`).toContain(r.status);
          expect(body.includes(v.bytes.subarray(0, 32)), `${v.what} ${path}`).toBe(false);
        }
      }
      if (!npmMissing) {
        const app = join(root, 'install-npm-after-corruption');
        mkdirSync(app);
        cpSync(join(appDir, 'package.json'), join(app, 'package.json'));
        cpSync(join(appDir, 'package-lock.json'), join(app, 'package-lock.json'));
        const r = await run(
          'npm',
          [
            'ci',
            `--registry=${mirror!.url}/`,
            '--replace-registry-host=always',
            '--cache',
            mkdtempSync(join(root, 'npm-cache-')),
            '--fetch-retries=0',
            '--no-audit',
            '--no-fund',
          ],
          {
            cwd: app,
            env: isolatedEnv(join(root, 'home-npm-2')),
          },
        );
        expect(r.code, r.out).not.toBe(0);
        expect(r.out).toMatch(/fx-big/);
      }
      const f = await fsck(store);
      expect(f.code).toBe(1);
      expect(f.report.clean).toBe(false);
      for (const v of victims) expect(JSON.stringify(f.report)).toContain(sha256Hex(v.bytes));
    }, 120_000);
  },
);
