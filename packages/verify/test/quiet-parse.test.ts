import { ASN1Obj, X509Certificate } from '@sigstore/core';
import { describe, expect, it } from 'vitest';
import { quietParse } from '../src/quiet-parse.js';

describe('quietParse', () => {
  it('returns what the parse returns, with stack capture off while it runs and restored after', () => {
    const before = Error.stackTraceLimit;
    let during: number | undefined;
    expect(
      quietParse(() => {
        during = Error.stackTraceLimit;
        return 42;
      }),
    ).toBe(42);
    expect(during).toBe(0);
    expect(Error.stackTraceLimit).toBe(before);
  });

  it('throws the plain parse error, stack trace included, and restores the limit', () => {
    const before = Error.stackTraceLimit;
    const garbage = Buffer.from([0x30, 0x05, 0x04, 0x01]); // a SEQUENCE that overruns its buffer
    let plain: unknown;
    try {
      X509Certificate.parse(garbage);
    } catch (err) {
      plain = err;
    }
    let quiet: unknown;
    try {
      quietParse(() => X509Certificate.parse(garbage));
    } catch (err) {
      quiet = err;
    }
    expect(plain).toBeInstanceOf(Error);
    expect(quiet).toBeInstanceOf((plain as Error).constructor);
    expect((quiet as Error).message).toBe((plain as Error).message);
    expect((quiet as Error).stack).toContain('\n    at ');
    expect(Error.stackTraceLimit).toBe(before);
  });

  it('parses an OCTET STRING that is not nested ASN.1 as a primitive, as the plain parse does', () => {
    // OCTET STRING holding 0xff 0xff: the speculative nested parse throws inside and is caught by @sigstore/core.
    const der = Buffer.from([0x30, 0x04, 0x04, 0x02, 0xff, 0xff]);
    const quiet = quietParse(() => ASN1Obj.parseBuffer(der));
    expect(quiet.subs[0]?.subs).toHaveLength(0);
    expect(quiet.toDER().equals(ASN1Obj.parseBuffer(der).toDER())).toBe(true);
  });
});
