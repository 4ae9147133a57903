import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { npm, npmPack, type PackedPackage } from './artifacts.js';
import type { Upstream } from './upstream.js';
import { toolProblem } from '../tools/tools.js';

/** Why the real npm cannot run here, or undefined (gate with toolsAvailable). */
export const npmProblem = (): string | undefined => toolProblem('npm', ['--version']);

export const PUBLISHED_AT = '2024-01-02T03:04:05.000Z';

/** Packs three small packages (one scoped, one dependency, one with an install script) and serves them npm-style. */
export async function publishFixturePackages(up: Upstream, root: string): Promise<Map<string, PackedPackage>> {
  const pkgs = await Promise.all([
    npmPack(root, { name: 'fixture-dep', version: '2.0.1', main: 'index.js', license: 'MIT' }),
    npmPack(root, {
      name: '@fixture/scoped',
      version: '1.0.0',
      main: 'index.js',
      license: 'MIT',
      dependencies: { 'fixture-dep': '^2.0.0' },
    }),
    npmPack(root, {
      name: 'fixture-plain',
      version: '1.2.3',
      main: 'index.js',
      license: 'MIT',
      bin: { 'fixture-plain': 'index.js' },
      engines: { node: '>=18' },
      scripts: { postinstall: 'node -e 0', test: 'echo no tests' },
    }),
  ]);
  const byName = new Map(pkgs.map((p) => [p.name, p]));
  for (const p of pkgs) servePackage(up, p);
  return byName;
}

export function tarballPath(p: { name: string; version: string }): string {
  return `/${p.name}/-/${p.name.slice(p.name.lastIndexOf('/') + 1)}-${p.version}.tgz`;
}

export function packumentFor(
  up: Upstream,
  p: PackedPackage,
  distOverride: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    _id: p.name,
    name: p.name,
    'dist-tags': { latest: p.version, next: p.version },
    versions: {
      [p.version]: {
        ...p.manifest,
        _id: `${p.name}@${p.version}`,
        readme: 'A long readme the mirror does not need.',
        maintainers: [{ name: 'someone' }],
        dist: {
          integrity: p.integrity,
          shasum: p.shasum,
          tarball: `${up.url}${tarballPath(p)}`,
          fileCount: 2,
          ...distOverride,
        },
      },
    },
    time: { created: PUBLISHED_AT, modified: PUBLISHED_AT, [p.version]: PUBLISHED_AT },
  };
}

export function servePackage(up: Upstream, p: PackedPackage, distOverride: Record<string, unknown> = {}): void {
  up.file(`/${p.name}`, JSON.stringify(packumentFor(up, p, distOverride)), 'application/json');
  up.file(tarballPath(p), p.tarball);
}

/** Runs the real npm against the fixture registry to produce a lockfile. */
export async function generateLockfile(up: Upstream, root: string, lockfileVersion: 2 | 3): Promise<string> {
  const dir = join(root, `app-v${lockfileVersion}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
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
      `--lockfile-version=${lockfileVersion}`,
    ],
    dir,
    root,
  );
  const path = join(dir, 'package-lock.json');
  readFileSync(path); // exists
  return path;
}
