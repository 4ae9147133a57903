import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { SbomError } from './errors.js';

/**
 * CycloneDX 1.6 JSON-schema validation, offline: the schemas ship inside @cyclonedx/cyclonedx-library (`res/schema`).
 * The library's own validator also wants `ajv-formats-draft2019` (for `idn-email`/`iri-reference`); this one uses
 * ajv + ajv-formats and defines those two formats itself, as the library does for `iri-reference`.
 */
export interface SbomValidationResult {
  valid: boolean;
  /** `<instance path>: <message>` per violation; empty when valid. */
  errors: string[];
}

// ajv and ajv-formats (over 100 modules) load with the first validation, not when a command imports this package.
// ajv-formats is CommonJS with `exports.default`.
function loadAjv(): { Ajv: typeof Ajv; addFormats: (ajv: Ajv, opts?: object) => Ajv } {
  const require = createRequire(import.meta.url);
  const formats = require('ajv-formats') as { default?: unknown };
  return {
    Ajv: (require('ajv') as typeof import('ajv')).Ajv,
    addFormats: (formats.default ?? formats) as (ajv: Ajv, opts?: object) => Ajv,
  };
}

const SCHEMA_FILES = {
  bom: 'bom-1.6.SNAPSHOT.schema.json',
  refs: {
    // $ref targets as the bom schema spells them, resolved against its $id (http://cyclonedx.org/schema/…).
    'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json': 'spdx.SNAPSHOT.schema.json',
    'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json': 'jsf-0.82.SNAPSHOT.schema.json',
  },
} as const;

let compiled: ValidateFunction | undefined;

function schemaDir(): string {
  // res/ is not in the package's "exports", so locate it next to the (exported) package.json.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
}

function validator(): ValidateFunction {
  if (compiled) return compiled;
  try {
    const dir = schemaDir();
    const load = (file: string): Record<string, unknown> =>
      JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
    const { Ajv, addFormats } = loadAjv();
    const ajv = new Ajv({ strict: false, useDefaults: false, allErrors: true, addUsedSchema: false });
    addFormats(ajv, { mode: 'full', keywords: false });
    ajv.addFormat('idn-email', /^[^\s@]+@[^\s@]+$/u);
    ajv.addFormat('iri-reference', true);
    for (const [key, file] of Object.entries(SCHEMA_FILES.refs)) ajv.addSchema(load(file), key);
    compiled = ajv.compile(load(SCHEMA_FILES.bom));
    return compiled;
  } catch (cause) {
    throw new SbomError(
      'SBOM_SCHEMA_UNAVAILABLE',
      `cannot load the CycloneDX 1.6 JSON schema: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Validates a parsed CycloneDX document against the 1.6 JSON schema. */
export function validateSbom(value: unknown): SbomValidationResult {
  const validate = validator();
  if (validate(value)) return { valid: true, errors: [] };
  return { valid: false, errors: (validate.errors ?? []).map(describe) };
}

function describe(e: ErrorObject): string {
  const extra =
    e.keyword === 'additionalProperties'
      ? ` ('${String((e.params as { additionalProperty?: unknown }).additionalProperty)}')`
      : '';
  return `${e.instancePath || '/'}: ${e.message ?? e.keyword}${extra}`;
}
