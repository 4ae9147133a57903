import { TlogError } from '../errors.js';
import { invalid, isObject, type PreparedEntry } from './common.js';
import { DSSE_API_VERSION, dssePreparation } from './dsse.js';
import { prepareSync, type Preparation } from './preparation.js';
import { HASHEDREKORD_API_VERSION, prepareHashedRekord } from './hashedrekord.js';

export type { PreparedEntry } from './common.js';
export { DSSE_API_VERSION } from './dsse.js';
export { HASHEDREKORD_API_VERSION } from './hashedrekord.js';

/** The kinds and versions this log accepts. */
export const SUPPORTED_KINDS: Readonly<Record<string, string>> = {
  hashedrekord: HASHEDREKORD_API_VERSION,
  dsse: DSSE_API_VERSION,
};

/**
 * Validates, verifies and canonicalizes a proposed entry (the JSON body of `POST /api/v1/log/entries`).
 * Throws TLOG_INVALID_ENTRY / TLOG_UNSUPPORTED_ENTRY / TLOG_SIGNATURE_INVALID naming what is wrong.
 */
export function prepareEntry(proposed: unknown): PreparedEntry {
  return prepareSync(entryPreparation(proposed));
}

/** prepareEntry as a `Preparation` (see preparation.ts). */
export function* entryPreparation(proposed: unknown): Preparation {
  if (!isObject(proposed)) invalid('proposed entry must be a JSON object');
  const { kind, apiVersion, spec } = proposed as Record<string, unknown>;
  if (typeof kind !== 'string') invalid('proposed entry has no kind');
  if (typeof apiVersion !== 'string') invalid('proposed entry has no apiVersion');
  if (!isObject(spec)) invalid('proposed entry has no spec object');
  const supported = SUPPORTED_KINDS[kind as string];
  if (supported === undefined || !Object.hasOwn(SUPPORTED_KINDS, kind as string)) {
    throw new TlogError(
      'TLOG_UNSUPPORTED_ENTRY',
      `unsupported entry kind '${String(kind).slice(0, 40)}' (supported: ${Object.keys(SUPPORTED_KINDS).join(', ')})`,
    );
  }
  if (apiVersion !== supported) {
    throw new TlogError(
      'TLOG_UNSUPPORTED_ENTRY',
      `unsupported ${kind as string} apiVersion '${String(apiVersion).slice(0, 20)}' (supported: ${supported})`,
    );
  }
  return kind === 'hashedrekord' ? prepareHashedRekord(spec) : yield* dssePreparation(spec);
}
