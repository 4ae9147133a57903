import { parse as parseYaml } from 'yaml';
import { SyncError, type SyncErrorCode } from '../errors.js';

/** A refused entry: who, and why. `unpinned` problems are reported as SYNC_UNPINNED, others as SYNC_INPUT_INVALID. */
export interface InputProblem {
  entry: string;
  problem: string;
  unpinned?: boolean;
}

/** Throws one error naming every offending entry (so a user fixes a lockfile in one pass, not one per run). */
export function throwIfProblems(source: string, problems: readonly InputProblem[]): void {
  if (problems.length === 0) return;
  const code: SyncErrorCode = problems.some((p) => p.unpinned) ? 'SYNC_UNPINNED' : 'SYNC_INPUT_INVALID';
  const shown = problems.slice(0, 100).map((p) => `${p.entry}: ${p.problem}`);
  if (problems.length > 100) shown.push(`… and ${problems.length - 100} more`);
  const head = code === 'SYNC_UNPINNED' ? 'refusing unpinned entries' : 'refusing invalid entries';
  throw new SyncError(code, `${source}: ${head}:\n  - ${shown.join('\n  - ')}`, {
    details: {
      source,
      entries: problems.map((p) => p.entry),
      problems: problems.map((p) => `${p.entry}: ${p.problem}`),
    },
  });
}

export function parseJsonInput(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new SyncError('SYNC_INPUT_INVALID', `${source}: not valid JSON (${(cause as Error).message})`, { cause });
  }
}

/** JSON or YAML (a superset). Aliases are bounded by the yaml library's `maxAliasCount` (billion laughs). */
export function parseListInput(text: string, source: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 100, prettyErrors: true, uniqueKeys: true });
  } catch (cause) {
    throw new SyncError('SYNC_INPUT_INVALID', `${source}: not valid JSON/YAML (${(cause as Error).message})`, {
      cause,
    });
  }
}

/** `x.y.z` with optional prerelease/build: the only thing a lockfile may call a version. */
export const EXACT_SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/**
 * A name that can be a file name in the mirror and the bundle: no separators, no dot-dot, no control characters,
 * starts with an alphanumeric. Upstream indexes are untrusted, so every filename passes through this.
 */
export const SAFE_FILENAME = /^[A-Za-z0-9][A-Za-z0-9._+~=,%()!@-]{0,254}$/;

export function isSafeFilename(s: string): boolean {
  return SAFE_FILENAME.test(s) && !s.includes('..');
}

/** The last path segment of a URL, percent-decoded; undefined when empty or not decodable. */
export function urlBasename(url: string): string | undefined {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const seg = path.slice(path.lastIndexOf('/') + 1);
  if (seg === '') return undefined;
  try {
    return decodeURIComponent(seg);
  } catch {
    return undefined;
  }
}

export function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (
      (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && u.username === '' && u.password === ''
    );
  } catch {
    return false;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
