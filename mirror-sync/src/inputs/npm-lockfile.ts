import { parseSri } from '@airlock/core';
import { assertSchema } from '../schemas.js';
import type { NpmLockPackage, ParsedInput } from '../types.js';
import { EXACT_SEMVER, isHttpUrl, isRecord, parseJsonInput, throwIfProblems, type InputProblem } from './common.js';

/** npm package names (validate-npm-package-name, allowing legacy upper case). */
export const NPM_NAME = /^(?:@[A-Za-z0-9][A-Za-z0-9._~-]*\/)?[A-Za-z0-9_][A-Za-z0-9._~-]*$/;

/**
 * Reads the `packages` map of a lockfileVersion 2/3 package-lock.json (or npm-shrinkwrap.json).
 * https://docs.npmjs.com/cli/v11/configuring-npm/package-lock-json
 *
 * Skipped with a note: the root (`""`), workspace folders (keys outside node_modules), `link: true` entries,
 * bundled deps (`inBundle`: they ship inside their parent's tarball) and local `file:` tarballs. Refused: anything
 * else without an exact version and a strong `integrity`, or with a `resolved` that is not http(s) (git deps
 * included: they are not registry content and cannot be pinned by hash here). An entry without `resolved`
 * (npm's `omit-lockfile-registry-resolved`) is kept: the sync job resolves it through the configured registry.
 */
export function parseNpmLockfile(text: string, source = 'package-lock.json'): ParsedInput<NpmLockPackage> {
  const data = parseJsonInput(text, source);
  if (
    isRecord(data) &&
    (data.lockfileVersion === 1 || (data.lockfileVersion !== undefined && !isRecord(data.packages)))
  ) {
    throwIfProblems(source, [
      {
        entry: '(lockfile)',
        problem: `lockfileVersion ${String(data.lockfileVersion)} has no 'packages' map; regenerate it with npm >= 7 (lockfileVersion 2 or 3)`,
      },
    ]);
  }
  assertSchema('sync-npm-lockfile', data, source, (k) => (k === 'packages' ? 'packages' : k));
  const packages = (data as { packages: Record<string, Record<string, unknown>> }).packages;

  const notes: string[] = [];
  const problems: InputProblem[] = [];
  const byId = new Map<string, NpmLockPackage>();
  for (const [key, pkg] of Object.entries(packages)) {
    if (key === '') continue; // the root project
    const nm = key.lastIndexOf('node_modules/');
    if (nm < 0) {
      notes.push(`${source}: skipped workspace folder '${key}'`);
      continue;
    }
    if (pkg.link === true) {
      notes.push(`${source}: skipped link '${key}' -> ${String(pkg.resolved ?? '?')}`);
      continue;
    }
    const name = typeof pkg.name === 'string' ? pkg.name : key.slice(nm + 'node_modules/'.length);
    if (pkg.inBundle === true) {
      notes.push(`${source}: skipped bundled dependency ${name} ('${key}': it ships inside its parent's tarball)`);
      continue;
    }
    const label = typeof pkg.version === 'string' ? `${name}@${pkg.version}` : `${name} ('${key}')`;
    if (!NPM_NAME.test(name) || name.length > 214) {
      problems.push({ entry: label, problem: `invalid package name '${name}'` });
      continue;
    }
    const { version, resolved, integrity } = pkg;
    if (typeof resolved === 'string' && resolved.startsWith('file:')) {
      notes.push(`${source}: skipped local tarball ${label} (${resolved})`);
      continue;
    }
    if (typeof version !== 'string' || !EXACT_SEMVER.test(version)) {
      problems.push({
        entry: label,
        problem: `no exact version (got ${JSON.stringify(version ?? null)})`,
        unpinned: true,
      });
      continue;
    }
    if (resolved !== undefined && typeof resolved !== 'string') {
      problems.push({ entry: label, problem: "'resolved' is not a string" });
      continue;
    }
    if (resolved !== undefined && resolved !== '' && !isHttpUrl(resolved)) {
      problems.push({
        entry: label,
        problem: `'resolved' is not an http(s) registry tarball URL: ${resolved}`,
        unpinned: true,
      });
      continue;
    }
    if (typeof integrity !== 'string' || integrity === '') {
      problems.push({ entry: label, problem: "no 'integrity'", unpinned: true });
      continue;
    }
    let strong = false;
    try {
      strong = parseSri(integrity).some((d) => d.algorithm !== 'sha1');
    } catch (err) {
      problems.push({ entry: label, problem: `malformed integrity '${integrity}': ${(err as Error).message}` });
      continue;
    }
    if (!strong) {
      problems.push({
        entry: label,
        problem: `integrity '${integrity}' has only sha1, which is too weak to pin content`,
        unpinned: true,
      });
      continue;
    }
    const id = `${name}@${version}`;
    const prev = byId.get(id);
    if (prev) {
      if (prev.integrity !== integrity) {
        problems.push({ entry: label, problem: `'${key}' and '${prev.lockPath}' disagree on integrity` });
      }
      continue;
    }
    byId.set(id, { name, version, ...(resolved ? { resolved } : {}), integrity, lockPath: key });
  }
  throwIfProblems(source, problems);
  return { kind: 'npm-lock', entries: [...byId.values()], notes };
}
