import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { AdmissionError } from '../errors.js';

/** schemas/admission-policy.v1.schema.json, read at run time (src/ and dist/ sit at the same depth). */
const SCHEMA_URL = new URL('../../../../schemas/admission-policy.v1.schema.json', import.meta.url);

let compiled: ValidateFunction | undefined;

export function admissionPolicyValidator(): ValidateFunction {
  if (compiled) return compiled;
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8'));
  } catch (cause) {
    throw new AdmissionError('ADMISSION_POLICY_INVALID', 'cannot load admission-policy.v1.schema.json', { cause });
  }
  compiled = new Ajv({ strict: true, allErrors: true }).compile(schema as object);
  return compiled;
}

/** `/policies/0/mode` → `policies[0].mode`. */
function fieldName(pointer: string, root: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : `${acc}.${p}`), root);
}

/** One line per problem, each naming its field; an unknown key is reported as `<field>: unknown field`. */
export function schemaProblems(errors: readonly ErrorObject[], root: string): string[] {
  const out = new Set<string>();
  for (const e of errors.slice(0, 50)) {
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      out.add(`${fieldName(`${e.instancePath}/${key}`, root)}: unknown field`);
      continue;
    }
    let message = e.message ?? e.keyword;
    if (e.keyword === 'const') message += ` ${JSON.stringify((e.params as { allowedValue?: unknown }).allowedValue)}`;
    if (e.keyword === 'enum')
      message += `: ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    out.add(`${fieldName(e.instancePath, root)}: ${message}`);
  }
  if (errors.length > 50) out.add(`… and ${errors.length - 50} more`);
  return [...out];
}
