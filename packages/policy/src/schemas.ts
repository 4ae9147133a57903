import { schemaProblems, type SchemaName } from '@airlock/schemas';
import { PolicyError } from './errors.js';

/**
 * Problems of `value` against one of the repository's schemas (@airlock/schemas, the one loader), each naming
 * the field under `root` (`policy.provenance.builderIds[0]`); empty when it matches. A schema that cannot be
 * loaded is POLICY_SCHEMA_UNAVAILABLE.
 */
export function problemsAgainst(name: SchemaName, value: unknown, root: string): string[] {
  return schemaProblems(
    name,
    value,
    { root },
    (e) => new PolicyError('POLICY_SCHEMA_UNAVAILABLE', e.message, { cause: e }),
  );
}
