import { describe, expect, it } from 'vitest';
import { derLength, derUtf8String, parseDerUtf8String } from '../src/der.js';

describe('DER UTF8String', () => {
  it('encodes short and long forms', () => {
    expect(derUtf8String('abc')).toEqual(Buffer.from([0x0c, 3, 0x61, 0x62, 0x63]));
    expect(derLength(127)).toEqual(Buffer.from([127]));
    expect(derLength(128)).toEqual(Buffer.from([0x81, 128]));
    expect(derLength(300)).toEqual(Buffer.from([0x82, 0x01, 0x2c]));
    const long = 'x'.repeat(300);
    expect(derUtf8String(long).subarray(0, 4)).toEqual(Buffer.from([0x0c, 0x82, 0x01, 0x2c]));
    expect(parseDerUtf8String(derUtf8String(long))).toBe(long);
    expect(parseDerUtf8String(derUtf8String('héllo'))).toBe('héllo');
  });

  it('rejects non-UTF8String or inconsistent input', () => {
    expect(() => parseDerUtf8String(Buffer.from([0x13, 1, 0x61]))).toThrow();
    expect(() => parseDerUtf8String(Buffer.from([0x0c, 5, 0x61]))).toThrow();
    expect(() => parseDerUtf8String(Buffer.from([0x0c, 0x81, 3, 1, 2, 3]))).toThrow(/non-minimal/);
  });
});
