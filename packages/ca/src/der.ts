/**
 * The two DER encodings the CA writes by hand (X.690 §8.1.3 definite lengths, §8.23 UTF8String). Everything
 * else is produced by @peculiar/x509.
 */
export function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** DER `UTF8String` (tag 12), the encoding Fulcio uses for extensions `1.3.6.1.4.1.57264.1.8` and later. */
export function derUtf8String(value: string): Buffer {
  const content = Buffer.from(value, 'utf8');
  return Buffer.concat([Buffer.from([0x0c]), derLength(content.length), content]);
}

/** Decodes a DER UTF8String (strict: one TLV, definite minimal length, nothing trailing). */
export function parseDerUtf8String(der: Uint8Array): string {
  const buf = Buffer.from(der);
  if (buf.length < 2 || buf[0] !== 0x0c) throw new Error('not a DER UTF8String');
  let offset = 2;
  let length = buf[1]!;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || buf.length < 2 + n) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[2 + i]!;
    if (length < 0x80) throw new Error('non-minimal DER length');
    offset += n;
  }
  if (offset + length !== buf.length) throw new Error('DER UTF8String length mismatch');
  return buf.subarray(offset).toString('utf8');
}
