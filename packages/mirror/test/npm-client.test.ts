import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorStore } from '@airlock/cas';
import { npmProblem, toolsAvailable } from '@airlock/testkit';
import { startMirrorServer, type RunningMirrorServer } from '../src/index.js';
import { npmFile, openStore, populateFromManifest, removeDir, tempDir, type FixtureFile } from './helpers/populate.js';
import { run, type ChildResult } from './helpers/spawn.js';
import { cleanEnv } from './helpers/tools.js';

interface PackageSource {
  name: string;
  version: string;
  files: Record<string, string>;
  extra?: Record<string, unknown>;
}

// A small graph: a scoped utility in two versions, a library on `^1.0.0` of it, and an app-facing package with a
// bin that depends on the library.
const PACKAGES: PackageSource[] = [
  { name: '@airlock-fixture/util', version: '1.0.0', files: { 'index.js': 'module.exports = () => "util 1.0.0";\n' } },
  { name: '@airlock-fixture/util', version: '1.1.0', files: { 'index.js': 'module.exports = () => "util 1.1.0";\n' } },
  { name: '@airlock-fixture/util', version: '2.0.0', files: { 'index.js': 'module.exports = () => "util 2.0.0";\n' } },
  {
    name: 'airlock-fixture-lib',
    version: '1.0.0',
    files: { 'index.js': 'const u = require("@airlock-fixture/util");\nmodule.exports = () => `lib+${u()}`;\n' },
    extra: { dependencies: { '@airlock-fixture/util': '^1.0.0' } },
  },
  {
    name: 'airlock-fixture-cli',
    version: '0.3.0',
    files: {
      'cli.js': '#!/usr/bin/env node\nconsole.log(require("airlock-fixture-lib")());\n',
      'README.md': '# cli\n',
    },
    extra: { bin: { 'airlock-fixture-cli': 'cli.js' }, dependencies: { 'airlock-fixture-lib': '1.0.0' } },
  },
];

function npmEnv(cacheDir: string, configDir: string): NodeJS.ProcessEnv {
  return cleanEnv({
    npm_config_userconfig: join(configDir, 'user.npmrc'),
    npm_config_globalconfig: join(configDir, 'global.npmrc'),
    npm_config_cache: cacheDir,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_loglevel: 'warn',
  });
}

/** npm pack (no server involved: synchronous is fine). */
function npmSync(args: string[], cwd: string, cacheDir: string, configDir: string) {
  return spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 120_000, env: npmEnv(cacheDir, configDir) });
}

/** npm talking to the in-process server: must not block the event loop. */
function npm(args: string[], cwd: string, cacheDir: string, configDir: string): Promise<ChildResult> {
  return run('npm', args, { cwd, env: npmEnv(cacheDir, configDir) });
}

describe('real npm client against the mirror', () => {
  const available = toolsAvailable('real npm client against the mirror', [npmProblem()]);
  let dir: string;
  let store: MirrorStore;
  let server: RunningMirrorServer;
  const requests: string[] = [];
  const serverErrors: unknown[] = [];

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir();
    writeFileSync(join(dir, 'user.npmrc'), '');
    writeFileSync(join(dir, 'global.npmrc'), '');
    mkdirSync(join(dir, 'tarballs'), { recursive: true });
    const packed: FixtureFile[] = [];
    for (const [i, pkg] of PACKAGES.entries()) {
      const src = join(dir, 'src', `${i}`);
      mkdirSync(src, { recursive: true });
      const manifest = { name: pkg.name, version: pkg.version, license: 'MIT', ...(pkg.extra ?? {}) };
      writeFileSync(join(src, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      for (const [f, content] of Object.entries(pkg.files)) writeFileSync(join(src, f), content);
      const r = npmSync(
        ['pack', '--json', '--pack-destination', join(dir, 'tarballs')],
        src,
        join(dir, 'pack-cache'),
        dir,
      );
      if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
      const info = (JSON.parse(r.stdout) as { filename: string; integrity: string; shasum: string }[])[0]!;
      const tgz = readFileSync(join(dir, 'tarballs', info.filename.replace(/^@/, '').replace('/', '-')));
      const file = npmFile(tgz, manifest, { time: `2026-0${i + 1}-01T00:00:00.000Z` });
      // npm's own integrity/shasum must equal what the fixture recorded.
      const meta = file.entry!.metadata as { integrity: string; shasum: string };
      expect(meta).toMatchObject({ integrity: info.integrity, shasum: info.shasum });
      packed.push(file);
    }
    store = await openStore(dir);
    await populateFromManifest(store, packed);
    server = await startMirrorServer({ store, onError: (err) => serverErrors.push(err) });
    server.server.on('request', (req) => requests.push(`${req.method} ${req.url}`));
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    if (dir) removeDir(dir);
  });

  it.skipIf(!available)(
    'installs a dependency graph (scoped + transitive) with an empty cache, then npm ci from the lockfile',
    async () => {
      const project = join(dir, 'project');
      mkdirSync(project, { recursive: true });
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({
          name: 'consumer',
          version: '1.0.0',
          private: true,
          dependencies: { 'airlock-fixture-cli': '^0.3.0', '@airlock-fixture/util': '^1.0.0' },
        }),
      );
      const install = await npm(
        ['install', '--registry', `${server.url}/`, '--no-audit', '--ignore-scripts'],
        project,
        join(dir, 'cache1'),
        dir,
      );
      expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);

      const nm = join(project, 'node_modules');
      const read = (p: string) => readFileSync(join(nm, p), 'utf8');
      expect(read('@airlock-fixture/util/index.js')).toBe(PACKAGES[1]!.files['index.js']); // ^1.0.0 → 1.1.0, not 2.0.0
      expect(JSON.parse(read('@airlock-fixture/util/package.json'))).toMatchObject({ version: '1.1.0' });
      expect(read('airlock-fixture-lib/index.js')).toBe(PACKAGES[3]!.files['index.js']);
      expect(read('airlock-fixture-cli/cli.js')).toBe(PACKAGES[4]!.files['cli.js']);
      expect(read('airlock-fixture-cli/README.md')).toBe('# cli\n');
      const run = spawnSync(process.execPath, [join(nm, '.bin', 'airlock-fixture-cli')], { encoding: 'utf8' });
      expect(run.stdout.trim()).toBe('lib+util 1.1.0');

      // The lockfile points at the mirror and carries the original integrity.
      const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { resolved?: string; integrity?: string }>;
      };
      const utilLock = lock.packages['node_modules/@airlock-fixture/util']!;
      expect(utilLock.resolved).toBe(`${server.url}/@airlock-fixture/util/-/util-1.1.0.tgz`);
      expect(utilLock.integrity).toMatch(/^sha512-/);
      // npm asked for abbreviated metadata and for tarballs, and nothing else broke.
      expect(
        requests.some(
          (r) => r.startsWith('GET /@airlock-fixture%2futil') || r.startsWith('GET /@airlock-fixture%2Futil'),
        ),
      ).toBe(true);
      expect(requests.some((r) => r === 'GET /airlock-fixture-cli/-/airlock-fixture-cli-0.3.0.tgz')).toBe(true);

      rmSync(nm, { recursive: true, force: true });
      const ci = await npm(
        ['ci', '--registry', `${server.url}/`, '--no-audit', '--ignore-scripts'],
        project,
        join(dir, 'cache2'),
        dir,
      );
      expect(ci.status, `${ci.stdout}\n${ci.stderr}`).toBe(0);
      expect(read('@airlock-fixture/util/index.js')).toBe(PACKAGES[1]!.files['index.js']);
      expect(serverErrors).toEqual([]);
    },
  );

  it.skipIf(!available)('fails cleanly (E404) for a package the mirror does not have', async () => {
    const project = join(dir, 'project-missing');
    mkdirSync(project, { recursive: true });
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'c2', version: '1.0.0', private: true, dependencies: { 'left-pad': '1.3.0' } }),
    );
    const r = await npm(
      ['install', '--registry', `${server.url}/`, '--no-audit', '--ignore-scripts'],
      project,
      join(dir, 'cache3'),
      dir,
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/E404|404/);
  });
});
