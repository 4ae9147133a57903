import { readFileSync, statSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { canonicalize, sha256Hex } from '@airlock/core';
import { parse as parseYaml } from 'yaml';
import { RunnerError } from './errors.js';
import { validate, type BuildSpec, type FieldStyle } from '@airlock/schemas';

/** The build spec's types are the shared contract (@airlock/schemas, checked against build-spec.v1.schema.json). */
export type {
  BuildSpec,
  SourceSpec,
  BuilderSpec,
  CommandBuilderSpec,
  BazelBuilderSpec,
  NixBuilderSpec,
  ImageSpec,
} from '@airlock/schemas';

/** A validated spec plus what the runner derives from how it was given. */
export interface LoadedSpec {
  spec: BuildSpec;
  /** sha256 (hex) of the RFC 8785 canonical JSON of the spec as given: the same for its JSON and YAML forms. */
  digest: string;
  /** The spec file, when loaded from one. */
  path?: string;
  /** Relative `source.repo` paths resolve against this (the spec file's directory, else the working directory). */
  baseDir: string;
}

export const DEFAULT_TIMEOUT_SECONDS = 3600;
const MAX_SPEC_BYTES = 1 << 20;

/** Variables the runner sets itself or that change how every program loads: never passed through. */
const RESERVED_ENV = new Set(['PATH', 'HOME', 'TZ', 'LC_ALL', 'SOURCE_DATE_EPOCH', 'TMPDIR', 'PWD', 'OLDPWD', 'SHLVL']);
const RESERVED_ENV_PREFIX = /^(AIRLOCK_|LD_)/;

/** Reads a JSON (`.json`) or YAML (anything else) spec file and validates it. */
export function loadSpecFile(path: string): LoadedSpec {
  const abs = resolve(path);
  let text: string;
  try {
    const st = statSync(abs);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_SPEC_BYTES) throw new Error(`larger than ${MAX_SPEC_BYTES} bytes`);
    text = readFileSync(abs, 'utf8');
  } catch (cause) {
    throw new RunnerError('RUNNER_SPEC_UNREADABLE', `cannot read build spec ${abs}: ${(cause as Error).message}`, {
      cause,
    });
  }
  let value: unknown;
  try {
    value =
      extname(abs).toLowerCase() === '.json'
        ? JSON.parse(text)
        : parseYaml(text, { uniqueKeys: true, maxAliasCount: 100, prettyErrors: true });
  } catch (cause) {
    throw new RunnerError(
      'RUNNER_SPEC_UNREADABLE',
      `build spec ${abs} is not valid ${extname(abs) === '.json' ? 'JSON' : 'YAML'}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return { ...validateSpec(value, abs), path: abs, baseDir: dirname(abs) };
}

/** Validates an in-memory spec (untrusted: it may come from anywhere). */
export function loadSpec(value: unknown, baseDir = process.cwd()): LoadedSpec {
  return { ...validateSpec(value, 'build spec'), baseDir };
}

function validateSpec(value: unknown, what: string): { spec: BuildSpec; digest: string } {
  const early = branchOnlyProblem(value);
  if (early) throw new RunnerError('RUNNER_SPEC_INVALID', `${what}: ${early}`, { details: { problems: [early] } });
  validate('build-spec.v1', value, {
    what,
    style: SPEC_FIELDS,
    error: (e) =>
      e.code === 'SCHEMA_UNAVAILABLE'
        ? new RunnerError('RUNNER_INTERNAL', e.message, { cause: e })
        : new RunnerError('RUNNER_SPEC_INVALID', e.message, { details: { schema: e.schema, problems: e.problems } }),
  });
  const spec: BuildSpec = value;
  const problems = (spec.env ?? [])
    .map((name, i) =>
      RESERVED_ENV.has(name) || RESERVED_ENV_PREFIX.test(name)
        ? `env[${i}]: '${name}' is set by the runner and cannot be passed through`
        : undefined,
    )
    .filter((p): p is string => p !== undefined);
  if (problems.length > 0) {
    throw new RunnerError('RUNNER_SPEC_INVALID', `${what}:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return { spec, digest: sha256Hex(canonicalize(spec)) };
}

/**
 * A branch or tag is a moving name, so the spec must pin the commit. Checked before the schema so the error says
 * that, rather than "must match pattern".
 */
function branchOnlyProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const source = (value as Record<string, unknown>).source;
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return undefined;
  const s = source as Record<string, unknown>;
  const named = ['branch', 'tag', 'ref'].find((k) => typeof s[k] === 'string');
  if (s.commit === undefined) {
    return named
      ? `source.commit: required; a ${named} ('${String(s[named])}') alone is refused because it can move: pin the exact 40-hex commit (git rev-parse)`
      : undefined;
  }
  if (typeof s.commit === 'number') return 'source.commit: must be a string (quote the commit id in YAML)';
  if (typeof s.commit === 'string' && !/^[0-9a-f]{40}$/.test(s.commit)) {
    if (/^[0-9A-F]{40}$/i.test(s.commit)) return `source.commit: '${s.commit}' must be lowercase hex`;
    if (/^[0-9a-f]{4,39}$/i.test(s.commit))
      return `source.commit: '${s.commit}' is an abbreviated commit id: give all 40 hex digits`;
    return `source.commit: '${s.commit}' is not a 40-hex commit id; a branch or tag name is refused because it can move: pin the exact commit (git rev-parse)`;
  }
  return undefined;
}

export function specTimeoutSeconds(spec: BuildSpec): number {
  return spec.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
}

/** Spec problems name the field from the top (`builder.argv[0]`), the spec itself as `(spec)`. */
const SPEC_FIELDS: FieldStyle = { top: '(spec)', hint: patternHint };

/** What a failed `pattern`/`not` means, in words (the regular expression itself helps nobody). */
function patternHint(instancePath: string): string | undefined {
  if (/^\/outputs\/\d+$/.test(instancePath) || instancePath === '/builder/file') {
    return "must be a relative '/'-separated path without '.', '..' or empty segments, backslashes or control characters";
  }
  if (instancePath === '/source/commit') return 'must be a full 40-hex lowercase commit id';
  if (instancePath.startsWith('/env/')) return 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)';
  if (/^\/image\/(files|executable)\/\d+$/.test(instancePath))
    return "must be a relative '/'-separated pattern over output names, without '.', '..' or empty segments";
  if (instancePath === '/image/path' || instancePath === '/image/workingDir')
    return "must be an absolute '/'-separated path without '.', '..' or empty segments or a trailing '/'";
  if (instancePath === '/image/tag')
    return "must be a tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) not starting with 'sha256-' (reserved for signatures and the referrers index)";
  return undefined;
}
