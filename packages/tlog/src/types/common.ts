import { TlogError } from '../errors.js';

/** An entry that passed verification and is ready to be sequenced. */
export interface PreparedEntry {
  kind: 'hashedrekord' | 'dsse';
  apiVersion: string;
  /** The canonicalized body (RFC 8785 JSON of {apiVersion, kind, spec}): the Merkle leaf data. */
  body: Buffer;
  /** hashLeaf(body); its hex is the entry UUID. */
  leafHash: Buffer;
  /** Search-index keys: `sha256:<hex>` artifact digests and `key:<hex>` signer fingerprints. */
  indexKeys: string[];
}

export type Json = Record<string, unknown>;

export function invalid(message: string): never {
  throw new TlogError('TLOG_INVALID_ENTRY', message);
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function field(obj: Json, key: string, path: string): Json {
  const v = obj[key];
  if (!isObject(v)) invalid(`${path}.${key} is missing or not an object`);
  return v as Json;
}

export function artifactKey(algorithm: string, hex: string): string {
  return `${algorithm}:${hex}`.toLowerCase();
}

export function signerKey(fingerprint: string): string {
  return `key:${fingerprint}`;
}
