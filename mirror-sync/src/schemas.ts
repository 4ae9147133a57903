import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { SyncError, type SyncErrorCode } from './errors.js';

/**
 * JSON Schemas live in the repository's top-level `schemas/` folder and are read at run time (the importer reads
 * the same files), so there is one copy of each contract. `src/` and `dist/` sit at the same depth, so the
 * relative URL works from both.
 */
const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

export const SCHEMA_FILES = {
  transferManifest: 'transfer-manifest.v1.schema.json',
  npmLockfile: 'sync-npm-lockfile.schema.json',
  requirements: 'sync-requirements.schema.json',
  bazelFetchList: 'sync-bazel-fetch-list.schema.json',
  nixShowDerivation: 'sync-nix-show-derivation.schema.json',
  nixFetchList: 'sync-nix-fetch-list.schema.json',
  genericList: 'sync-generic-list.schema.json',
  state: 'sync-state.v1.schema.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

let ajv: Ajv | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

export function schemaUrl(name: SchemaName): URL {
  return new URL(SCHEMA_FILES[name], SCHEMA_DIR);
}

/** The compiled validator for a schema (strict mode: a sloppy schema is a bug, not a warning). */
export function getValidator(name: SchemaName): ValidateFunction {
  const hit = compiled.get(name);
  if (hit) return hit;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(schemaUrl(name), 'utf8'));
  } catch (cause) {
    throw new SyncError('SYNC_SCHEMA_INVALID', `cannot load JSON Schema ${SCHEMA_FILES[name]}`, { cause });
  }
  ajv ??= new Ajv({ strict: true, allErrors: true });
  const fn = ajv.compile(schema as object);
  compiled.set(name, fn);
  return fn;
}

/**
 * Validates `data`; on failure throws `code` with one line per offending entry. `label(index)` names the entry
 * at a top-level array index / object key so the message says *which* entry is bad, not just `/3/sha256`.
 */
export function assertSchema(
  name: SchemaName,
  data: unknown,
  what: string,
  label: (key: string) => string = (k) => `entry ${k}`,
  code: SyncErrorCode = 'SYNC_INPUT_INVALID',
): void {
  const validate = getValidator(name);
  if (validate(data)) return;
  const lines = formatSchemaErrors(validate.errors ?? [], label);
  throw new SyncError(code, `${what}: does not match ${SCHEMA_FILES[name]}:\n  - ${lines.join('\n  - ')}`, {
    details: { schema: SCHEMA_FILES[name], problems: lines },
  });
}

export function formatSchemaErrors(errors: readonly ErrorObject[], label: (key: string) => string): string[] {
  const out = new Set<string>();
  for (const e of errors.slice(0, 50)) {
    const parts = e.instancePath
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const where =
      parts.length === 0
        ? '(top level)'
        : `${label(parts[0]!)}${parts.length > 1 ? ` at /${parts.slice(1).join('/')}` : ''}`;
    const extra =
      e.keyword === 'additionalProperties'
        ? ` '${String((e.params as { additionalProperty?: unknown }).additionalProperty)}'`
        : '';
    out.add(`${where}: ${e.message ?? e.keyword}${extra}`);
  }
  if (errors.length > 50) out.add(`… and ${errors.length - 50} more`);
  return [...out];
}
