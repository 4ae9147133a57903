/**
 * Shared contracts are defined once, in @airlock/schemas (issue 8 §1): no product source repeats a predicate-type
 * or buildType URI, reads a schema file by a relative path, or compiles schemas with its own ajv.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AIRLOCK_BUILD_TYPE,
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_PROVENANCE_V1,
  SLSA_VSA_V1,
  TRANSFER_MANIFEST_MEDIA_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
} from '@airlock/schemas';
import { REPO_ROOT } from './helpers/cli.js';

const URIS = [
  SLSA_PROVENANCE_V1,
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_VSA_V1,
  AIRLOCK_BUILD_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
  TRANSFER_MANIFEST_MEDIA_TYPE,
];

/**
 * Verification code other branches are moving out of these CLI files into packages/policy (issue 8 §1); the
 * literals go with it. An entry whose file no longer holds a literal fails, so the list cannot go stale.
 */
const MOVING: string[] = [];

function sourceFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.(ts|mts|js|mjs)$/.test(name) ? [p] : [];
  });
}

const workspaces = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
  .workspaces;
const productSources = workspaces
  .filter((w) => w !== 'schemas' && w !== 'packages/testkit')
  .flatMap((w) => sourceFiles(join(REPO_ROOT, w, 'src')))
  .map((f) => ({ file: relative(REPO_ROOT, f), text: readFileSync(f, 'utf8') }));

describe('shared contracts come from @airlock/schemas', () => {
  it('no product source spells a predicate-type, buildType or manifest media-type URI', () => {
    expect(productSources.length).toBeGreaterThan(100);
    const spelled = productSources.filter((s) =>
      URIS.some((u) => s.text.includes(`'${u}'`) || s.text.includes(`"${u}"`)),
    );
    expect(spelled.map((s) => s.file).filter((f) => !MOVING.includes(f))).toEqual([]);
    // Once the move has landed, drop the file from MOVING.
    expect(MOVING.filter((f) => !spelled.some((s) => s.file === f))).toEqual([]);
  });

  it('no product source reads a schema file by a relative path', () => {
    const offenders = productSources.filter((s) => /['"`](?:\.\.\/)+schemas\//.test(s.text)).map((s) => s.file);
    expect(offenders).toEqual([]);
  });

  it('only @airlock/schemas compiles the repository’s schemas (sbom validates CycloneDX’s own schemas)', () => {
    const offenders = productSources
      .filter((s) => /from 'ajv'/.test(s.text))
      .map((s) => s.file)
      .filter((f) => f !== 'packages/sbom/src/validate.ts');
    expect(offenders).toEqual([]);
  });
});
