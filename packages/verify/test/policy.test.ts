import { describe, expect, it } from 'vitest';
import { checkPolicy } from '../src/verifier.js';

const ISSUER = 'http://127.0.0.1:1234';

describe('checkPolicy', () => {
  it('accepts an exact subject and issuer', () => {
    expect(() =>
      checkPolicy({ subject: 'spiffe://a.b/ci/x', issuer: ISSUER }, 'spiffe://a.b/ci/x', ISSUER),
    ).not.toThrow();
  });

  it('treats an exact subject literally (regex metacharacters do not match other strings)', () => {
    expect(() => checkPolicy({ subject: 'spiffe://a.b/ci/x', issuer: ISSUER }, 'spiffe://aXb/ci/x', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });

  it('anchors regular expressions at both ends', () => {
    const policy = { subjectRegExp: 'spiffe://a\\.b/ci/.*', issuer: ISSUER };
    expect(() => checkPolicy(policy, 'spiffe://a.b/ci/build', ISSUER)).not.toThrow();
    expect(() => checkPolicy(policy, 'evil:spiffe://a.b/ci/build', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
    expect(() =>
      checkPolicy({ subjectRegExp: 'spiffe://a\\.b/ci', issuer: ISSUER }, 'spiffe://a.b/ci/build', ISSUER),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_POLICY' }));
    // alternation cannot escape the anchors
    expect(() => checkPolicy({ subjectRegExp: 'x|.*', issuer: ISSUER }, 'anything', ISSUER)).not.toThrow();
    expect(() => checkPolicy({ subjectRegExp: 'x|y', issuer: ISSUER }, 'xy', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });

  it('requires the issuer to match exactly', () => {
    expect(() => checkPolicy({ subject: 's', issuer: ISSUER }, 's', `${ISSUER}/`)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
    expect(() => checkPolicy({ subject: 's', issuer: ISSUER }, 's', undefined)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });

  it('refuses a policy with no subject at all', () => {
    expect(() => checkPolicy({ issuer: ISSUER }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });

  it('refuses a certificate without a SAN', () => {
    expect(() => checkPolicy({ subjectRegExp: '.*', issuer: ISSUER }, undefined, ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });
});

describe('checkPolicy: issuer by regular expression', () => {
  it('anchors the issuer expression and requires exactly one issuer form', () => {
    const policy = { subject: 's', issuerRegExp: 'http://127\\.0\\.0\\.1:[0-9]+' };
    expect(() => checkPolicy(policy, 's', ISSUER)).not.toThrow();
    expect(() => checkPolicy(policy, 's', `${ISSUER}/evil`)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
    expect(() => checkPolicy({ subject: 's', issuer: ISSUER, issuerRegExp: '.*' }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
    expect(() => checkPolicy({ subject: 's' }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
  });

  it('refuses both subject forms at once and an invalid expression, as policy errors', () => {
    expect(() => checkPolicy({ subject: 's', subjectRegExp: 's', issuer: ISSUER }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY' }),
    );
    expect(() => checkPolicy({ subjectRegExp: '(', issuer: ISSUER }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY', message: expect.stringMatching(/identity regular expression/) }),
    );
    expect(() => checkPolicy({ subject: 's', issuerRegExp: '[' }, 's', ISSUER)).toThrow(
      expect.objectContaining({ code: 'VERIFY_POLICY', message: expect.stringMatching(/issuer regular expression/) }),
    );
  });
});
