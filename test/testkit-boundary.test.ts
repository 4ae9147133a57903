/**
 * @airlock/testkit holds test doubles only: it must stay private, and no product workspace may depend on it at run
 * time (not in `dependencies`, not imported from any `src/` file). And tests share helpers through it (or
 * test/helpers for the cross-package tests here), never by reaching into another package's folder.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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

/** Relative module specifiers of a source file: static and dynamic imports, re-exports. */
export function relativeImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm))
    out.push(m[1]!);
  return out;
}

const within = (dir: string, file: string): boolean => !relative(dir, file).startsWith('..');

/** `file imports target` lines for every relative import from a test file of `from` that lands outside `allowed`. */
function crossings(fromDir: string, allowed: (target: string) => boolean): string[] {
  return sourceFiles(fromDir).flatMap((file) =>
    relativeImports(readFileSync(file, 'utf8'))
      .map((spec) => resolve(dirname(file), spec))
      .filter((target) => !allowed(target))
      .map((target) => `${relative(REPO_ROOT, file)} imports ${relative(REPO_ROOT, target)}`),
  );
}

const testDirs = (readManifest('.').workspaces ?? [])
  .map((w) => ({ workspace: join(REPO_ROOT, w), tests: join(REPO_ROOT, w, 'test') }))
  .filter((d) => {
    try {
      return statSync(d.tests).isDirectory();
    } catch {
      return false;
    }
  });

describe('tests share helpers through @airlock/testkit or test/helpers, not through another package', () => {
  it('finds relative imports the way the check reads them', () => {
    expect(
      relativeImports(
        "import { a } from './a.js';\nexport { b } from \"../b.js\";\nconst c = await import('../../c.js');\nimport './d.js';\nimport x from '@airlock/x';",
      ),
    ).toEqual(['./a.js', '../b.js', '../../c.js', './d.js']);
  });

  it("a package's tests import other packages only by name, never a relative path out of the package", () => {
    expect(testDirs.length).toBeGreaterThan(5);
    const offenders = testDirs.flatMap((d) => crossings(d.tests, (t) => within(d.workspace, t)));
    expect(offenders).toEqual([]);
  });

  it("the cross-package tests import no package's test folder", () => {
    const inTestFolder = (t: string) => testDirs.some((d) => within(d.tests, t));
    const offenders = crossings(join(REPO_ROOT, 'test'), (t) => !inTestFolder(t));
    expect(offenders).toEqual([]);
  });
});
