/**
 * OPTIONAL, needs the internet: syncs a tiny real lockfile (fixtures/mirror/public-npm, made by `npm install
 * --package-lock-only` against registry.npmjs.org: two plain packages and a scoped one) from the public npm
 * registry, imports it, and installs it with real `npm ci` from the mirror with npm's default settings (npm maps
 * registry.npmjs.org `resolved` URLs to --registry by itself). Skipped unless AIRLOCK_NETWORK_TESTS=1; never part
 * of a default or CI run.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  fsck,
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
} from './helpers/upstream-e2e.js';
import { FIXTURES } from './helpers/upstream.js';

const execFileAsync = promisify(execFile);
const enabled = process.env.AIRLOCK_NETWORK_TESTS === '1';
if (!enabled)
  console.warn(
    'skipping the optional public-npm mirror test: set AIRLOCK_NETWORK_TESTS=1 to run it (needs the internet)',
  );

describe('mirror e2e (optional, network)', () => {
  let root: string | undefined;
  let plane: CliPlane | undefined;
  let mirror: RunningMirror | undefined;
  afterAll(async () => {
    await mirror?.stop();
    await plane?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it.skipIf(!enabled)(
    'OPTIONAL (AIRLOCK_NETWORK_TESTS=1): syncs a tiny real lockfile from registry.npmjs.org; npm ci installs it from the mirror',
    async () => {
      root = mkdtempSync(join(tmpdir(), 'airlock-mirror-public-'));
      const fixture = join(FIXTURES, 'public-npm');
      plane = await startPlane(join(root, 'plane'));
      const bundle = join(root, 'public.tar');
      const s = await runCliJson([
        'sync',
        '--npm-lock',
        join(fixture, 'package-lock.json'),
        '--out',
        bundle,
        '--data',
        plane.dir,
        '--json',
      ]);
      expect(s.code, s.stdout + s.stderr).toBe(0);
      expect(s.json).toMatchObject({ ok: true, signed: true, entries: 3 });
      const store = join(root, 'store');
      const i = await runCliJson(importArgs(bundle, store, plane));
      expect(i.code, i.stdout + i.stderr).toBe(0);
      expect((await fsck(store)).code).toBe(0);
      mirror = await startMirror(store);

      const app = join(root, 'app');
      mkdirSync(app);
      cpSync(join(fixture, 'package.json'), join(app, 'package.json'));
      cpSync(join(fixture, 'package-lock.json'), join(app, 'package-lock.json'));
      const home = join(root, 'home');
      mkdirSync(home);
      writeFileSync(join(home, 'npmrc'), '');
      writeFileSync(join(home, 'npmrc-global'), '');
      await execFileAsync(
        'npm',
        [
          'ci',
          `--registry=${mirror.url}/`,
          '--cache',
          join(root, 'cache'),
          '--no-audit',
          '--no-fund',
          '--fetch-retries=0',
        ],
        {
          cwd: app,
          env: {
            PATH: process.env.PATH,
            HOME: home,
            npm_config_userconfig: join(home, 'npmrc'),
            npm_config_globalconfig: join(home, 'npmrc-global'),
          },
          timeout: 120_000,
        },
      );
      const lock = JSON.parse(readFileSync(join(fixture, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { version?: string }>;
      };
      for (const [path, p] of Object.entries(lock.packages)) {
        if (path === '') continue;
        expect(
          (JSON.parse(readFileSync(join(app, path, 'package.json'), 'utf8')) as { version: string }).version,
          path,
        ).toBe(p.version);
      }
    },
    180_000,
  );
});
