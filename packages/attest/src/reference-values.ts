/**
 * Reference values: the PCR values a node must quote to be admitted. A set's id is the digest of its content, so
 * a set edited after it was approved no longer carries the id that policies and claims name.
 */
import { canonicalize, isHex, sha256Hex } from '@airlock/core';
import { AttestError } from './errors.js';
import { hashName, hashAlgId, type TpmHashName } from './tpm/constants.js';

export interface ReferenceValueSet {
  /** `sha256:<hex>` of the canonical JSON of { bank, pcrs } (referenceValueSetId). */
  id: string;
  /** A human label, e.g. "runner-image-2026-12". Not covered by the id. */
  name: string;
  bank: TpmHashName;
  /** PCR index (decimal string) → expected value (hex). */
  pcrs: Record<string, string>;
}

function normalizedPcrs(pcrs: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(pcrs).map(([k, v]) => [String(Number(k)), v.toLowerCase()]));
}

export function referenceValueSetId(set: Pick<ReferenceValueSet, 'bank' | 'pcrs'>): string {
  return `sha256:${sha256Hex(canonicalize({ bank: set.bank, pcrs: normalizedPcrs(set.pcrs) }))}`;
}

/** Builds a set with its id computed. */
export function makeReferenceValueSet(
  name: string,
  bank: TpmHashName,
  pcrs: Record<string, string>,
): ReferenceValueSet {
  return { id: referenceValueSetId({ bank, pcrs }), name, bank, pcrs: normalizedPcrs(pcrs) };
}

/** Fails unless the set is well-formed and its id matches its content (a tampered reference value). */
export function checkReferenceValueSet(set: ReferenceValueSet): void {
  const bad = (why: string): never => {
    throw new AttestError('REFERENCE_VALUES_INVALID', `reference value set "${set.name}" (${set.id}): ${why}`);
  };
  if (!hashName(hashAlgId(set.bank))) bad(`unsupported bank ${String(set.bank)}`);
  const size = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }[set.bank];
  const entries = Object.entries(set.pcrs);
  if (entries.length === 0) bad('no PCRs');
  for (const [k, v] of entries) {
    if (!/^(?:[0-9]|1[0-9]|2[0-3])$/.test(k)) bad(`PCR index "${k}" is not 0..23`);
    if (!isHex(v, size)) bad(`PCR ${k}: expected ${size * 2} hex digits`);
  }
  const actual = referenceValueSetId(set);
  if (actual !== set.id) bad(`content digest is ${actual}: the values were changed after the id was computed`);
}
