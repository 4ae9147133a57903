import { createHash } from 'node:crypto';

/** RFC 4122 §4.3 (RFC 9562 §5.5) name-based UUID, version 5: SHA-1 over namespace bytes + name. */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (ns.length !== 16) throw new TypeError(`not a UUID: '${namespace}'`);
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** RFC 4122 Appendix C: the URL namespace. */
export const UUID_NAMESPACE_URL = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';

/** Namespace for airlock SBOM serial numbers: uuidV5(URL, 'https://airlock.dev/sbom'). */
export const AIRLOCK_SBOM_NAMESPACE = uuidV5(UUID_NAMESPACE_URL, 'https://airlock.dev/sbom');

export const SERIAL_NUMBER_RE = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
