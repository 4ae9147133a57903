import { CoreError } from './errors.js';

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS). Keys sorted by UTF-16 code units, no whitespace, numbers in
 * ECMAScript shortest form (which `JSON.stringify` already produces for finite numbers), strings escaped as
 * `JSON.stringify` does (RFC 8785 §3.2.2.2 matches it). Rekor signs SETs over this form.
 * https://www.rfc-editor.org/rfc/rfc8785
 *
 * Refuses (CANONICAL_JSON_UNSUPPORTED) what has no single JSON form: NaN/±Infinity, bigint, functions, symbols,
 * undefined outside an object member, lone UTF-16 surrogates, cycles, Map and Set.
 */
export function canonicalize(value: unknown): string {
  return serialize(value, '$', []);
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

function serialize(value: unknown, path: string, ancestors: object[]): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: non-finite number`);
      return JSON.stringify(value);
    case 'string':
      return serializeString(value, path);
    case 'object': {
      // A cycle would otherwise end in a RangeError (stack overflow) rather than a typed error.
      if (ancestors.includes(value)) throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: circular structure`);
      const inner = [...ancestors, value];
      if (Array.isArray(value)) return `[${value.map((v, i) => serialize(v, `${path}[${i}]`, inner)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
        return serialize((obj as { toJSON: () => unknown }).toJSON(), path, inner);
      }
      // Map/Set have no own enumerable keys: JSON.stringify turns them into `{}`, silently signing nothing.
      if (value instanceof Map || value instanceof Set) {
        throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: cannot canonicalize a ${value.constructor.name}`);
      }
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort(compareUtf16);
      return `{${keys.map((k) => `${serializeString(k, `${path}.${k}`)}:${serialize(obj[k], `${path}.${k}`, inner)}`).join(',')}}`;
    }
    default:
      throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: cannot canonicalize a ${typeof value}`);
  }
}

// RFC 8785 §3.1: input must be I-JSON (RFC 7493 §2.1), so strings must be valid Unicode. `JSON.stringify` would
// escape a lone surrogate as `\udXXX`, which other JCS implementations reject or replace: refuse it instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function serializeString(s: string, path: string): string {
  if (LONE_SURROGATE.test(s))
    throw new CoreError('CANONICAL_JSON_UNSUPPORTED', `${path}: string contains a lone UTF-16 surrogate`);
  return JSON.stringify(s);
}

// Array.prototype.sort's default compares UTF-16 code units, which is exactly what RFC 8785 §3.2.3 asks for.
function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
