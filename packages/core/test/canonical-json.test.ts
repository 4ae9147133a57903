import { describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalize } from '../src/canonical-json.js';
import { hasErrorCode } from '../src/errors.js';

/** Builds the double whose IEEE 754 binary64 bits are `hex` (big-endian), as RFC 8785 Appendix B lists them. */
function fromBits(hex: string): number {
  return Buffer.from(hex, 'hex').readDoubleBE(0);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('canonicalize (RFC 8785)', () => {
  // RFC 8785 Appendix B: "ES6 Number Serialization Samples".
  const APPENDIX_B: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'], // minus zero
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];

  it.each(APPENDIX_B)('serialises the double with bits %s as %s', (bits, expected) => {
    expect(canonicalize(fromBits(bits))).toBe(expected);
    expect(canonicalize([fromBits(bits)])).toBe(`[${expected}]`);
  });

  it('switches to exponent form at 1e21 and below 1e-6, as ECMAScript does', () => {
    expect(canonicalize(1e20)).toBe('100000000000000000000');
    expect(canonicalize(1e21)).toBe('1e+21');
    expect(canonicalize(0.000001)).toBe('0.000001');
    expect(canonicalize(1e-7)).toBe('1e-7');
    expect(canonicalize(1e-7)).toBe(canonicalize(Number('1E-7')));
    expect(canonicalize(-0)).toBe('0');
    expect(canonicalize(4.5)).toBe('4.5');
    expect(canonicalize(2e-3)).toBe('0.002');
  });

  it('rejects NaN and ±Infinity (Appendix B lists them as errors)', () => {
    for (const v of [NaN, Infinity, -Infinity, fromBits('7fffffffffffffff'), fromBits('7ff0000000000000')]) {
      expect(codeOf(() => canonicalize(v))).toBe('CANONICAL_JSON_UNSUPPORTED');
      expect(codeOf(() => canonicalize({ nested: [v] }))).toBe('CANONICAL_JSON_UNSUPPORTED');
    }
  });

  it('sorts keys by UTF-16 code units, including non-BMP keys (§3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const values = Object.values(JSON.parse(canonicalize(input)) as Record<string, string>);
    // JSON.parse reorders integer-like keys ('1') first, so compare the raw key order in the text instead.
    const text = canonicalize(input);
    const order = [...text.matchAll(/"([^"]*)":/g)].map((m) => m[1]);
    expect(order).toEqual(['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
    expect(values).toHaveLength(7);
    // U+1F600 (surrogates D83D DE00) sorts before U+FB33 by code unit, although it is after it by code point.
    expect(text.indexOf('\ud83d\ude00')).toBeLessThan(text.indexOf('\ufb33'));
  });

  it('reproduces the §3.2.4 example byte for byte', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    const expected =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    expect(canonicalize(input)).toBe(expected);
    // §3.2.4 also gives the UTF-8 bytes of that output.
    const hex =
      '7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b3333333333333333332e' +
      '333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c22737472696e67223a22e282ac245c753030306' +
      '65c6e4127425c225c5c5c5c5c222f227d';
    expect(canonicalBytes(input).toString('hex')).toBe(hex);
  });

  it('escapes control characters with the short forms or lowercase \\u00xx, and leaves U+2028/U+2029, DEL and / raw', () => {
    const s = '\u0000\u0001\u0008\u0009\u000a\u000b\u000c\u000d\u001f "\\/\u007f\u2028\u2029é';
    expect(canonicalize(s)).toBe('"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\"\\\\/\u007f\u2028\u2029é"');
    expect(canonicalBytes('\u2028').toString('hex')).toBe('22e280a822');
  });

  it('writes no whitespace and keeps array order', () => {
    expect(canonicalize({ b: [3, 1, { d: 1, c: 2 }], a: { z: null, y: true } })).toBe(
      '{"a":{"y":true,"z":null},"b":[3,1,{"c":2,"d":1}]}',
    );
    expect(canonicalize([])).toBe('[]');
    expect(canonicalize({})).toBe('{}');
    expect(canonicalize('')).toBe('""');
  });

  it('drops undefined properties, as JSON.stringify does', () => {
    expect(canonicalize({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalize({ a: undefined })).toBe('{}');
  });

  it('honours toJSON (Date, Buffer)', () => {
    expect(canonicalize({ t: new Date('2026-11-28T15:00:00Z') })).toBe('{"t":"2026-11-28T15:00:00.000Z"}');
    expect(canonicalize(Buffer.from([1, 2]))).toBe('{"data":[1,2],"type":"Buffer"}');
  });

  it('rejects functions, bigint, symbols and undefined values where JSON has no representation', () => {
    expect(codeOf(() => canonicalize(() => 1))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize({ f: () => 1 }))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize(10n))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize({ n: [1n] }))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize(Symbol('x')))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize(undefined))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize([undefined]))).toBe('CANONICAL_JSON_UNSUPPORTED');
  });

  it('names the path of the offending value', () => {
    try {
      canonicalize({ a: { b: [1, NaN] } });
      expect.unreachable();
    } catch (err) {
      expect(hasErrorCode(err, 'CANONICAL_JSON_UNSUPPORTED')).toBe(true);
      expect((err as Error).message).toContain('$.a.b[1]');
    }
  });

  it('rejects lone surrogates in values and keys (I-JSON), but accepts proper pairs', () => {
    expect(codeOf(() => canonicalize('\ud800'))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize('a\udc00b'))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize('\ude00\ud83d'))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize({ ['\udfff']: 1 }))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(canonicalize('\ud83d\ude00')).toBe('"\ud83d\ude00"');
    expect(canonicalBytes('\ud83d\ude00').toString('hex')).toBe('22f09f988022');
  });

  it('rejects cycles and Map/Set with a typed error instead of overflowing or signing {}', () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    expect(codeOf(() => canonicalize(a))).toBe('CANONICAL_JSON_UNSUPPORTED');
    const arr: unknown[] = [];
    arr.push({ arr });
    expect(codeOf(() => canonicalize(arr))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize(new Map([['a', 1]])))).toBe('CANONICAL_JSON_UNSUPPORTED');
    expect(codeOf(() => canonicalize({ s: new Set([1]) }))).toBe('CANONICAL_JSON_UNSUPPORTED');
    // A shared (non-cyclic) reference is fine.
    const shared = { v: 1 };
    expect(canonicalize({ a: shared, b: shared })).toBe('{"a":{"v":1},"b":{"v":1}}');
  });

  it('is independent of insertion order and idempotent over parse', () => {
    const x = { b: 2, a: [1, { y: 'é', x: '\n' }] };
    const y = { a: [1, { x: '\n', y: 'é' }], b: 2 };
    expect(canonicalize(x)).toBe(canonicalize(y));
    expect(canonicalize(JSON.parse(canonicalize(x)))).toBe(canonicalize(x));
  });
});
