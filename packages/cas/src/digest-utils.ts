import { CasError } from './errors.js';

const SHA256_RE = /^[0-9a-f]{64}$/;
const HEX_LENGTH = { sha1: 40, sha256: 64, sha512: 128 } as const;

export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && SHA256_RE.test(s);
}

/** Blob names are lowercase hex only: one spelling per digest, and nothing that can form a path. */
export function assertSha256Hex(s: unknown, what = 'sha256'): asserts s is string {
  if (!isSha256Hex(s)) {
    throw new CasError('CAS_INVALID_DIGEST', `${what} must be 64 lowercase hex characters, got ${describe(s)}`);
  }
}

export function isHexOfAlgorithm(algorithm: keyof typeof HEX_LENGTH, s: unknown): s is string {
  return typeof s === 'string' && s.length === HEX_LENGTH[algorithm] && /^[0-9a-f]+$/.test(s);
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
  return typeof v;
}
