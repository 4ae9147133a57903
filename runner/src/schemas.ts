import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { RunnerError } from './errors.js';

/**
 * The runner's JSON Schemas live in the repository's top-level `schemas/` folder and are read at run time, so the
 * documented contract and the enforced one are the same file. `src/` and `dist/` sit at the same depth.
 */
const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

export const SCHEMA_FILES = {
  buildSpec: 'build-spec.v1.schema.json',
  buildType: 'slsa-buildtype-airlock-v1.schema.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

let ajv: Ajv | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

export function schemaUrl(name: SchemaName): URL {
  return new URL(SCHEMA_FILES[name], SCHEMA_DIR);
}

/** Compiled validator (strict mode: a sloppy schema is a bug, not a warning). */
export function getValidator(name: SchemaName): ValidateFunction {
  const hit = compiled.get(name);
  if (hit) return hit;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(schemaUrl(name), 'utf8'));
  } catch (cause) {
    throw new RunnerError('RUNNER_INTERNAL', `cannot load JSON Schema ${SCHEMA_FILES[name]}`, { cause });
  }
  ajv ??= new Ajv({ strict: true, allErrors: true });
  const fn = ajv.compile(schema as object);
  compiled.set(name, fn);
  return fn;
}

/** Field path of an ajv error in dotted form: `/builder/argv/0` → `builder.argv[0]`; the top level → `(spec)`. */
export function fieldName(instancePath: string, root = '(spec)'): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (parts.length === 0) return root;
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');
}

/**
 * One line per problem, naming the offending field. if/then wrappers are dropped (their inner errors say what is
 * wrong) and additionalProperties names the unknown key as a field of its own.
 */
export function formatSchemaErrors(errors: readonly ErrorObject[]): string[] {
  const out = new Set<string>();
  for (const e of errors.slice(0, 50)) {
    if (e.keyword === 'if') continue;
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      const base = fieldName(e.instancePath, '');
      out.add(`${base === '' ? key : `${base}.${key}`}: unknown field`);
      continue;
    }
    let message = e.message ?? e.keyword;
    if (e.keyword === 'enum')
      message += `: ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    if (e.keyword === 'not' || e.keyword === 'pattern') message = patternHint(e.instancePath) ?? message;
    out.add(`${fieldName(e.instancePath)}: ${message}`);
  }
  if (errors.length > 50) out.add(`… and ${errors.length - 50} more`);
  return [...out];
}

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
