/** Small, strict encoders: every decoder rejects input that is not exactly its alphabet. */

const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Buffer {
  const lower = hex.toLowerCase();
  if (!HEX_RE.test(lower)) throw new TypeError('not a hex string');
  return Buffer.from(lower, 'hex');
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fromBase64(b64: string): Buffer {
  if (b64.length % 4 !== 0 || !B64_RE.test(b64)) throw new TypeError('not a padded base64 string');
  return Buffer.from(b64, 'base64');
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function fromBase64Url(b64: string): Buffer {
  if (!B64URL_RE.test(b64)) throw new TypeError('not a base64url string');
  return Buffer.from(b64, 'base64url');
}

export function isHex(s: string, bytes?: number): boolean {
  return HEX_RE.test(s) && (bytes === undefined || s.length === bytes * 2);
}
