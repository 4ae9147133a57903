import { isHex, type DigestAlgorithm } from '@airlock/core';

/** Collects problems found in untrusted input, so one error can name them all. */
export class Problems {
  readonly list: string[] = [];
  add(problem: string): void {
    this.list.push(problem);
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
  /** A message naming the first few problems (the full list goes into the error's details). */
  summary(what: string): string {
    const shown = this.list.slice(0, 10).join('; ');
    const more = this.list.length > 10 ? `; … and ${this.list.length - 10} more` : '';
    return `${what}: ${shown}${more}`;
  }
}

export const MAX_STRING = 4096;
const DIGEST_HEX_LENGTH: Record<DigestAlgorithm, number> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128 };

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isShortString(v: unknown, { allowEmpty = false } = {}): v is string {
  return typeof v === 'string' && (allowEmpty || v.length > 0) && v.length <= MAX_STRING;
}

/**
 * Checks a DigestSet: an object of known algorithms → lowercase hex of the right length. Unknown algorithm names
 * are reported too (a CycloneDX hash needs a known algorithm). Returns how many valid digests it holds.
 */
export function checkDigests(v: unknown, path: string, problems: Problems, required: DigestAlgorithm[] = []): number {
  if (!isObject(v)) {
    problems.add(`${path} must be an object`);
    return 0;
  }
  let valid = 0;
  for (const [alg, hex] of Object.entries(v)) {
    if (hex === undefined) continue;
    if (!(alg in DIGEST_HEX_LENGTH)) {
      problems.add(`${path}.${alg}: unsupported digest algorithm`);
      continue;
    }
    const len = DIGEST_HEX_LENGTH[alg as DigestAlgorithm];
    if (typeof hex !== 'string' || hex.length !== len || !isHex(hex))
      problems.add(`${path}.${alg} must be ${len} lowercase hex characters`);
    else valid++;
  }
  for (const alg of required) if (v[alg] === undefined) problems.add(`${path}.${alg} is required`);
  return valid;
}

/** A bom-ref piece: percent-encoded so refs stay ASCII (the library's sorting is locale-dependent beyond that). */
export function refPart(s: string): string {
  return encodeURIComponent(s);
}
