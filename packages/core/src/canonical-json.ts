import { CoreError } from './errors.js';

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS). Keys sorted by UTF-16 code units, no whitespace, numbers in
 * ECMAScript shortest form (which `JSON.stringify` already produces for finite numbers), strings escaped as
 * `JSON.stringify` does (RFC 8785 §3.2.2.2 matches it). Rekor signs SETs over this form.
 * https://www.rfc-editor.org/rfc/rfc8785
 */
export function canonicalize(value: unknown): string {
  return serialize(value, '$');
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

function serialize(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: non-finite number`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => serialize(v, `${path}[${i}]`)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
        return serialize((obj as { toJSON: () => unknown }).toJSON(), path);
      }
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort(compareUtf16);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${serialize(obj[k], `${path}.${k}`)}`).join(',')}}`;
    }
    default:
      throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: cannot canonicalize a ${typeof value}`);
  }
}

// Array.prototype.sort's default compares UTF-16 code units, which is exactly what RFC 8785 §3.2.3 asks for.
function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
