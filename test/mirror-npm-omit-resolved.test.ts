/**
 * Issue 7 §4: npm lockfiles without `resolved`. The real npm, configured with
 * `omit-lockfile-registry-resolved=true`, writes the lockfile against the loopback stand-in registry; `airlock sync`
 * refuses it without a registry (naming the flag, before any download), refuses an .npmrc holding credentials, and
 * with `--npmrc` (registry=) or `--npm-registry` resolves each entry through the version document's dist.tarball,
 * pinned by `integrity`. The bundle imports, the upstream stops, and the real `npm ci` installs from the mirror.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNpmrc } from '@airlock/mirror-sync';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import {
  npm,
  npmProblem,
  publishFixturePackages,
  startUpstream,
  toolsAvailable,
  type Upstream,
} from '@airlock/testkit';
import { runCli, startCli, type CliResult } from './helpers/cli.js';

const npmAvailable = toolsAvailable('npm omit-lockfile-registry-resolved e2e', [npmProblem()]);

let root: string;
let planeDir: string;
let plane: RunningTrustPlane;
let up: Upstream | undefined;
let app: string;
let lockfile: string;

type Lock = { packages: Record<string, { version?: string; resolved?: string; integrity?: string }> };

const errorOf = (r: CliResult): { code: string; message: string } =>
  (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;

const sync = (out: string, extra: string[]): Promise<CliResult> =>
  runCli(['sync', '--npm-lock', lockfile, '--out', out, '--data', planeDir, '--json', '--quiet', ...extra]);

describe('parseNpmrc: only registry keys, never credentials', () => {
  it('reads registry= and @scope:registry=, ignores other settings', () => {
    expect(
      parseNpmrc(
        '; comment\n# comment\nregistry=http://127.0.0.1:1/npm\n@corp:registry = https://npm.corp.example/\nfund=false\n',
      ),
    ).toEqual({ registry: 'http://127.0.0.1:1/npm/', scopes: { '@corp': 'https://npm.corp.example/' } });
  });
  it('refuses credential lines without echoing their values', () => {
    for (const line of [
      '//npm.corp.example/:_authToken=s3cr3t-value',
      '_auth=s3cr3t-value',
      '_password=s3cr3t-value',
      'username=s3cr3t-value',
    ]) {
      let message = '';
      try {
        parseNpmrc(`registry=https://npm.corp.example/\n${line}\n`, 'x.npmrc');
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, line).toMatch(/^x\.npmrc line 2: .* is a credential setting/);
      expect(message).not.toContain('s3cr3t-value');
    }
  });
  it('refuses a registry that is not a literal http(s) URL', () => {
    expect(() => parseNpmrc('registry=${NPM_REGISTRY}\n')).toThrow(/must be an http\(s\) URL/);
    expect(() => parseNpmrc('registry=file:///tmp/x\n')).toThrow(/must be an http\(s\) URL/);
  });
});

describe.skipIf(!npmAvailable)('npm lockfile written with omit-lockfile-registry-resolved (real npm, CLI)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-npm-omit-resolved-'));
    planeDir = join(root, 'plane');
    plane = await startTrustPlane({ dataDir: planeDir });
    up = await startUpstream();
    await publishFixturePackages(up, root);
    app = join(root, 'app');
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'app',
        version: '1.0.0',
        private: true,
        dependencies: { '@fixture/scoped': '1.0.0', 'fixture-plain': '^1.2.0' },
      }),
    );
    await npm(
      [
        'install',
        '--package-lock-only',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        `--registry=${up.url}/`,
        '--omit-lockfile-registry-resolved=true',
      ],
      app,
      root,
    );
    lockfile = join(app, 'package-lock.json');
  }, 120_000);
  afterAll(async () => {
    await up?.close();
    await plane?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('npm wrote entries with version and integrity but no resolved', () => {
    const lock = JSON.parse(readFileSync(lockfile, 'utf8')) as Lock;
    const deps = Object.entries(lock.packages).filter(([k]) => k !== '');
    expect(deps.map(([k]) => k).sort()).toEqual([
      'node_modules/@fixture/scoped',
      'node_modules/fixture-dep',
      'node_modules/fixture-plain',
    ]);
    for (const [k, p] of deps) {
      expect(p.resolved, k).toBeUndefined();
      expect(p.integrity, k).toMatch(/^sha512-/);
    }
  });

  it('is refused without a registry (exit 2, naming --npm-registry) and with an .npmrc holding credentials, before any download', async () => {
    up!.resetCounters();
    const out = join(root, 'refused.tar');
    const r = await sync(out, []);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(errorOf(r).code).toBe('SYNC_NO_REGISTRY');
    expect(errorOf(r).message).toContain('--npm-registry');
    expect(errorOf(r).message).toContain('@fixture/scoped@1.0.0');
    const rc = join(root, 'with-token.npmrc');
    writeFileSync(rc, `registry=${up!.url}/\n//127.0.0.1/:_authToken=npm_s3cr3tT0ken\n`);
    const t = await sync(out, ['--npmrc', rc]);
    expect(t.code, t.stdout + t.stderr).toBe(2);
    expect(errorOf(t).message).toContain('credential setting');
    expect(t.stdout + t.stderr).not.toContain('npm_s3cr3tT0ken');
    expect(up!.totalHits()).toBe(0);
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('syncs through the registry of --npmrc, imports, and npm ci installs from the mirror with the upstream gone', async () => {
    const rc = join(root, 'registry.npmrc');
    writeFileSync(rc, `registry=${up!.url}/\nfund=false\n`);
    const bundle = join(root, 'b1.tar');
    const s = await sync(bundle, ['--npmrc', rc]);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const result = JSON.parse(s.stdout) as {
      manifest: { entries: { name: string; urls: string[]; metadata: { manifest: { dist: { tarball: string } } } }[] };
    };
    const scoped = result.manifest.entries.find((e) => e.name === '@fixture/scoped')!;
    // The tarball URL came from the registry's version document.
    expect(scoped.urls).toEqual([`${up!.url}/@fixture/scoped/-/scoped-1.0.0.tgz`]);
    expect(scoped.metadata.manifest.dist.tarball).toBe(scoped.urls[0]);
    // --npm-registry does the same without a file.
    const s2 = await sync(join(root, 'b1-flag.tar'), ['--npm-registry', `${up!.url}/`]);
    expect(s2.code, s2.stdout + s2.stderr).toBe(0);

    const store = join(root, 'store');
    const imp = await runCli([
      'mirror',
      'import',
      bundle,
      '--store',
      store,
      '--create',
      '--data',
      planeDir,
      '--sync-identity',
      `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`,
      '--sync-issuer',
      plane.endpoints.identityIssuerUrl,
      '--json',
    ]);
    expect(imp.code, imp.stdout + imp.stderr).toBe(0);
    await up!.close();
    up = undefined;

    const mirror = await startCli(['mirror', 'serve', '--store', store, '--json'], (o) => o.trim().endsWith('}'));
    try {
      const { url } = JSON.parse(mirror.stdout()) as { url: string };
      const install = join(root, 'install');
      mkdirSync(install);
      cpSync(lockfile, join(install, 'package-lock.json'));
      cpSync(join(app, 'package.json'), join(install, 'package.json'));
      const home = join(root, 'home');
      mkdirSync(home);
      const r = spawnSync(
        'npm',
        [
          'ci',
          `--registry=${url}/`,
          '--fetch-retries=0',
          '--cache',
          join(root, 'npm-cache'),
          '--ignore-scripts',
          '--no-audit',
          '--no-fund',
        ],
        {
          cwd: install,
          encoding: 'utf8',
          env: { ...process.env, HOME: home, npm_config_userconfig: join(home, '.npmrc') },
          timeout: 120_000,
        },
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(
        JSON.parse(readFileSync(join(install, 'node_modules', '@fixture', 'scoped', 'package.json'), 'utf8')),
      ).toMatchObject({ name: '@fixture/scoped', version: '1.0.0' });
      expect(
        JSON.parse(readFileSync(join(install, 'node_modules', 'fixture-dep', 'package.json'), 'utf8')).version,
      ).toBe('2.0.1');
    } finally {
      await mirror.stop();
    }
  }, 240_000);
});
