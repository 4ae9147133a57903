/**
 * @airlock/testkit holds test doubles only: it must stay private, and no product workspace may depend on it at run
 * time (not in `dependencies`, not imported from any `src/` file).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

interface Manifest {
  name: string;
  private?: boolean;
  workspaces?: string[];
  dependencies?: Record<string, string>;
}

const readManifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(join(REPO_ROOT, dir, 'package.json'), 'utf8')) as Manifest;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const products = (readManifest('.').workspaces ?? []).filter((w) => w !== 'packages/testkit');

describe('@airlock/testkit stays a dev-only package', () => {
  it('is private', () => {
    expect(readManifest('packages/testkit')).toMatchObject({ name: '@airlock/testkit', private: true });
  });

  it('is no runtime dependency of any product workspace', () => {
    expect(products.length).toBeGreaterThan(10);
    const offenders = products.filter((w) => readManifest(w).dependencies?.['@airlock/testkit'] !== undefined);
    expect(offenders).toEqual([]);
  });

  it('is imported by no product source file', () => {
    const offenders = products
      .flatMap((w) => sourceFiles(join(REPO_ROOT, w, 'src')))
      .filter((f) => /from '@airlock\/testkit'|import\('@airlock\/testkit'\)/.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});
