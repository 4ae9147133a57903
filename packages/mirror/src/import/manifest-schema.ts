import { validate, type TransferManifest } from '@airlock/schemas';
import { ImportError } from './errors.js';

/**
 * Checks manifest.json against transfer-manifest.v1.schema.json through the repository's one loader
 * (@airlock/schemas), the same contract mirror-sync validates when it writes. A schema that cannot be loaded
 * refuses the manifest too: nothing is imported unchecked.
 */
export function validateTransferManifest(value: unknown): asserts value is TransferManifest {
  validate('transfer-manifest.v1', value, {
    what: 'manifest.json',
    error: (e) =>
      new ImportError('IMPORT_MANIFEST_INVALID', e.message, { cause: e, details: { problems: e.problems } }),
  });
}
