import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { ImportError } from './errors.js';

// The one copy of the contract lives in the repository's `schemas/` folder (mirror-sync validates against the
// same file when it writes); src/ and dist/ are at the same depth, so the relative URL works from both.
const SCHEMA_URL = new URL('../../../../schemas/transfer-manifest.v1.schema.json', import.meta.url);

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (!validator) {
    const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as object;
    validator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  return validator;
}

export function validateTransferManifest(value: unknown): void {
  const validate = getValidator();
  if (!validate(value)) {
    const problems = (validate.errors ?? [])
      .slice(0, 10)
      .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    throw new ImportError(
      'IMPORT_MANIFEST_INVALID',
      `manifest.json does not match the transfer-manifest schema: ${problems.join('; ')}`,
      {
        details: { problems },
      },
    );
  }
}
