import { describe, expect, it } from 'vitest';
import { AirlockError, CoreError, hasErrorCode } from '../src/errors.js';
import { fromBase64, fromBase64Url, fromHex, isHex, toBase64, toBase64Url, toHex } from '../src/encoding.js';

describe('AirlockError', () => {
  it('carries code, message, cause and details', () => {
    const cause = new Error('disk on fire');
    const e = new AirlockError('SOMETHING_BROKE', 'it broke', { cause, details: { path: '/x' } });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('AirlockError');
    expect(e.code).toBe('SOMETHING_BROKE');
    expect(e.message).toBe('it broke');
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ path: '/x' });
    expect(e.stack).toContain('it broke');
  });

  it('omits cause and details when not given', () => {
    const e = new AirlockError('X', 'm');
    expect('cause' in e).toBe(false);
    expect(e.details).toBeUndefined();
    expect(e.toJSON()).toEqual({ name: 'AirlockError', code: 'X', message: 'm' });
  });

  it('toJSON includes details but never the cause (which may hold secrets or cycles)', () => {
    const e = new AirlockError('X', 'm', { cause: new Error('inner'), details: { n: 1 } });
    expect(e.toJSON()).toEqual({ name: 'AirlockError', code: 'X', message: 'm', details: { n: 1 } });
    expect(JSON.parse(JSON.stringify(e))).toEqual({ name: 'AirlockError', code: 'X', message: 'm', details: { n: 1 } });
  });

  it('subclasses keep their own name', () => {
    class TlogError extends AirlockError<'TLOG_X'> {}
    const e = new TlogError('TLOG_X', 'm');
    expect(e.name).toBe('TlogError');
    expect(e).toBeInstanceOf(AirlockError);
    expect(new CoreError('DIGEST_MISMATCH', 'm').name).toBe('CoreError');
  });
});

describe('hasErrorCode', () => {
  it('matches by code on any object, including copies from another package instance', () => {
    expect(hasErrorCode(new CoreError('DIGEST_MISMATCH', 'm'), 'DIGEST_MISMATCH')).toBe(true);
    expect(hasErrorCode({ code: 'DIGEST_MISMATCH' }, 'DIGEST_MISMATCH')).toBe(true);
    expect(hasErrorCode(new CoreError('DIGEST_MISMATCH', 'm'), 'DIGEST_MALFORMED')).toBe(false);
    expect(hasErrorCode(Object.assign(new Error('x'), { code: 'ENOENT' }), 'ENOENT')).toBe(true);
  });

  it('is false for non-objects', () => {
    for (const v of [null, undefined, 'DIGEST_MISMATCH', 42, true])
      expect(hasErrorCode(v, 'DIGEST_MISMATCH')).toBe(false);
  });
});

describe('encoding', () => {
  const bytes = Uint8Array.from([0, 1, 0xfb, 0xff, 0x7f]);

  it('hex round-trips, accepts uppercase, rejects odd length and non-hex', () => {
    expect(toHex(bytes)).toBe('0001fbff7f');
    expect(fromHex('0001FBFF7F').equals(Buffer.from(bytes))).toBe(true);
    expect(() => fromHex('abc')).toThrow(TypeError);
    expect(() => fromHex('zz')).toThrow(TypeError);
    expect(() => fromHex('00 11')).toThrow(TypeError);
  });

  it('toHex respects subarray views', () => {
    const big = Buffer.from('00112233', 'hex');
    expect(toHex(big.subarray(1, 3))).toBe('1122');
    expect(toBase64(new Uint8Array(big.buffer, big.byteOffset + 1, 2))).toBe(
      Buffer.from('1122', 'hex').toString('base64'),
    );
  });

  it('base64 is strict: padded standard alphabet only', () => {
    expect(toBase64(bytes)).toBe('AAH7/38=');
    expect(fromBase64('AAH7/38=').equals(Buffer.from(bytes))).toBe(true);
    for (const bad of ['AAH7/38', 'AAH7_38=', 'AA=H', 'A', '====', 'AAH7/38=\n'])
      expect(() => fromBase64(bad), bad).toThrow(TypeError);
  });

  it('base64url round-trips and rejects the standard alphabet', () => {
    expect(toBase64Url(bytes)).toBe('AAH7_38');
    expect(fromBase64Url('AAH7_38').equals(Buffer.from(bytes))).toBe(true);
    expect(() => fromBase64Url('AAH7/38')).toThrow(TypeError);
    expect(() => fromBase64Url('AAH7_38=')).toThrow(TypeError);
  });

  it('isHex checks lowercase hex and optional byte length', () => {
    expect(isHex('00ff')).toBe(true);
    expect(isHex('00FF')).toBe(false);
    expect(isHex('0')).toBe(false);
    expect(isHex('00ff', 2)).toBe(true);
    expect(isHex('00ff', 3)).toBe(false);
    expect(isHex('')).toBe(true);
  });
});
