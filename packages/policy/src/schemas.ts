import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { PolicyError } from './errors.js';

/**
 * The repository's JSON Schemas (top-level `schemas/`), read at run time so the documented contract and the enforced
 * one are the same file. `src/` and `dist/` sit at the same depth. (One repo-wide loader is issue 8 §1 follow-up.)
 */
const SCHEMA_DIR = new URL('../../../schemas/', import.meta.url);

export const SCHEMA_FILES = {
  policy: 'policy.v1.schema.json',
  buildType: 'slsa-buildtype-airlock-v1.schema.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

let ajv: Ajv | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

/** Compiled validator (strict mode: a sloppy schema is a bug, not a warning). */
export function getValidator(name: SchemaName): ValidateFunction {
  const hit = compiled.get(name);
  if (hit) return hit;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(new URL(SCHEMA_FILES[name], SCHEMA_DIR), 'utf8'));
  } catch (cause) {
    throw new PolicyError('POLICY_SCHEMA_UNAVAILABLE', `cannot load JSON Schema ${SCHEMA_FILES[name]}`, { cause });
  }
  ajv ??= new Ajv({ strict: true, allErrors: true });
  const fn = ajv.compile(schema as object);
  compiled.set(name, fn);
  return fn;
}

/** `/provenance/builderIds/0` under root `policy` → `policy.provenance.builderIds[0]`. */
export function fieldName(instancePath: string, root: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce(
      (acc, p) =>
        /^\d+$/.test(p) ? `${acc}[${p}]` : /^[A-Za-z0-9_$-]+$/.test(p) ? `${acc}.${p}` : `${acc}[${JSON.stringify(p)}]`,
      root,
    );
}

/** One line per problem, naming the field; an unknown key is named as a field of its own. */
export function formatSchemaErrors(errors: readonly ErrorObject[], root: string): string[] {
  const out = new Set<string>();
  for (const e of errors.slice(0, 50)) {
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      out.add(`${fieldName(`${e.instancePath}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, root)}: unknown field`);
      continue;
    }
    if (e.keyword === 'propertyNames') continue; // the nested pattern error names the key
    let message = e.message ?? e.keyword;
    if (e.keyword === 'const') message += ` ${JSON.stringify((e.params as { allowedValue?: unknown }).allowedValue)}`;
    if (e.keyword === 'enum')
      message += `: ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    const where = e.propertyName !== undefined ? `${e.instancePath}/${e.propertyName}` : e.instancePath;
    out.add(`${fieldName(where, root)}: ${e.propertyName !== undefined ? `invalid name (${message})` : message}`);
  }
  if (errors.length > 50) out.add(`… and ${errors.length - 50} more`);
  return [...out];
}
