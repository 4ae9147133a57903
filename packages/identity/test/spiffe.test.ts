import { describe, expect, it } from 'vitest';
import { assertSpiffeIdInTrustDomain, parseSpiffeId, validateTrustDomain } from '../src/spiffe.js';

describe('SPIFFE ID validation', () => {
  it('parses a workload ID', () => {
    expect(parseSpiffeId('spiffe://airlock.internal/ci/runner-1')).toEqual({
      trustDomain: 'airlock.internal',
      path: '/ci/runner-1',
      id: 'spiffe://airlock.internal/ci/runner-1',
    });
    expect(assertSpiffeIdInTrustDomain('spiffe://corp_x.example/a.b/c-d_e', 'corp_x.example').path).toBe('/a.b/c-d_e');
  });

  it.each([
    ['not a string', 42],
    ['wrong scheme', 'https://airlock.internal/ci'],
    ['upper-case scheme', 'SPIFFE://airlock.internal/ci'],
    ['no path', 'spiffe://airlock.internal'],
    ['bare slash path', 'spiffe://airlock.internal/'],
    ['trailing slash', 'spiffe://airlock.internal/ci/'],
    ['empty segment', 'spiffe://airlock.internal/ci//runner'],
    ['dot segment', 'spiffe://airlock.internal/ci/./runner'],
    ['dot-dot segment', 'spiffe://airlock.internal/ci/../admin'],
    ['query', 'spiffe://airlock.internal/ci?x=1'],
    ['fragment', 'spiffe://airlock.internal/ci#frag'],
    ['port', 'spiffe://airlock.internal:8443/ci'],
    ['userinfo', 'spiffe://user@airlock.internal/ci'],
    ['upper-case trust domain', 'spiffe://Airlock.internal/ci'],
    ['percent-encoding', 'spiffe://airlock.internal/c%2Fi'],
    ['empty trust domain', 'spiffe:///ci'],
    ['too long', `spiffe://airlock.internal/${'a'.repeat(2100)}`],
  ])('rejects %s', (_why, value) => {
    expect(() => parseSpiffeId(value)).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_INVALID' }));
  });

  it('rejects an ID from another trust domain with its own code', () => {
    expect(() => assertSpiffeIdInTrustDomain('spiffe://evil.internal/ci', 'airlock.internal')).toThrow(
      expect.objectContaining({ code: 'SPIFFE_TRUST_DOMAIN_MISMATCH' }),
    );
  });

  it('validates trust domain names', () => {
    expect(validateTrustDomain('airlock.internal')).toBe('airlock.internal');
    for (const bad of ['', 'UPPER', 'a b', 'a/b', 'a:1', '..']) {
      expect(() => validateTrustDomain(bad)).toThrow(expect.objectContaining({ code: 'SPIFFE_ID_INVALID' }));
    }
  });
});
