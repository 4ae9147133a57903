import { validate, type Contracts, type SchemaName } from '@airlock/schemas';
import { SyncError, type SyncErrorCode } from './errors.js';

/**
 * Validates `data` against one of the repository's schemas (@airlock/schemas, the one loader); on failure throws
 * `code` with one line per offending entry. `label(key)` names the entry at a top-level array index / object key
 * so the message says *which* entry is bad (`entry 3 at /sha256`), not just `/3/sha256`. A schema that cannot be
 * loaded is SYNC_SCHEMA_INVALID.
 */
export function assertSchema<N extends SchemaName>(
  name: N,
  data: unknown,
  what: string,
  label: (key: string) => string = (k) => `entry ${k}`,
  code: SyncErrorCode = 'SYNC_INPUT_INVALID',
): asserts data is Contracts[N] {
  validate(name, data, {
    what,
    style: { where: (s) => `${label(s[0]!)}${s.length > 1 ? ` at /${s.slice(1).join('/')}` : ''}` },
    error: (e) =>
      new SyncError(e.code === 'SCHEMA_UNAVAILABLE' ? 'SYNC_SCHEMA_INVALID' : code, e.message, {
        cause: e,
        details: { schema: e.schema, problems: e.problems },
      }),
  });
}
