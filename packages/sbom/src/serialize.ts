import { canonicalBytes } from '@airlock/core';
import type { CycloneDxBom } from './types.js';

/**
 * The bytes to store or sign for an SBOM (e.g. `attestations/sbom.cdx.json`): RFC 8785 canonical JSON, so the
 * same BOM always hashes the same, whatever built the object.
 */
export function serializeSbom(bom: CycloneDxBom): Buffer {
  return canonicalBytes(bom);
}
