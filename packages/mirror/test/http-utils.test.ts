import { describe, expect, it } from 'vitest';
import { toBase64, toNixBase32 } from '@airlock/core';
import {
  negotiate,
  parseAccept,
  parseHashedPath,
  parseNpmPath,
  parseRange,
  parseRequestPath,
  type HttpError,
} from '../src/index.js';

function status(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as HttpError).status;
  }
}

describe('parseRequestPath', () => {
  it('decodes segments and keeps an encoded slash inside its segment', () => {
    expect(parseRequestPath('/@scope%2fname?write=true')).toEqual({
      raw: '/@scope%2fname',
      segments: ['@scope/name'],
      trailingSlash: false,
    });
    expect(parseRequestPath('/simple/foo/')).toEqual({
      raw: '/simple/foo/',
      segments: ['simple', 'foo'],
      trailingSlash: true,
    });
    expect(parseRequestPath('/')).toEqual({ raw: '/', segments: [], trailingSlash: false });
    expect(parseRequestPath('//sha256-abc')).toMatchObject({ segments: ['', 'sha256-abc'] });
  });

  it.each([
    ['/../x', 400],
    ['/a/%2e%2e/x', 400],
    ['/a%2f..%2fb', 400],
    ['/a/./b', 400],
    ['/a%00', 400],
    ['/a\u0000', 400],
    ['/a\\b', 400],
    ['/a%5Cb', 400],
    ['/a%0d%0aSet-Cookie:x', 400],
    ['/%E0%A4%A', 400],
    ['x', 400],
    ['*', 400],
    [`/${'a'.repeat(5000)}`, 414],
  ])('refuses %s with %i', (url, code) => {
    expect(status(() => parseRequestPath(url))).toBe(code);
  });
});

describe('Accept negotiation', () => {
  const offers = ['text/html', 'application/vnd.pypi.simple.v1+json', 'application/vnd.pypi.simple.v1+html'];
  it.each([
    [
      'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01',
      'application/vnd.pypi.simple.v1+json',
    ],
    ['*/*', 'text/html'],
    ['text/*', 'text/html'],
    ['application/vnd.pypi.simple.v1+json, */*', 'application/vnd.pypi.simple.v1+json'],
    ['application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.6', 'text/html'],
    ['APPLICATION/VND.PYPI.SIMPLE.V1+JSON', 'application/vnd.pypi.simple.v1+json'],
    ['application/vnd.pypi.simple.v1+json;q=0', undefined],
    ['text/html;q=1.5', undefined],
    ['garbage', undefined],
    ['', undefined],
  ])('%s → %s', (accept, expected) => {
    expect(negotiate(parseAccept(accept), offers)).toBe(expected);
  });

  it('refuses absurdly long Accept headers', () => {
    expect(status(() => parseAccept('a/b,'.repeat(1000)))).toBe(400);
  });
});

describe('parseRange', () => {
  it.each([
    [undefined, { kind: 'none' }],
    ['bytes=0-0', { kind: 'single', start: 0, end: 0 }],
    ['bytes=2-', { kind: 'single', start: 2, end: 9 }],
    ['bytes=-4', { kind: 'single', start: 6, end: 9 }],
    ['bytes=-40', { kind: 'single', start: 0, end: 9 }],
    ['bytes=3-100', { kind: 'single', start: 3, end: 9 }],
    ['bytes=0-1,2-3', { kind: 'none' }],
    ['lines=1-2', { kind: 'none' }],
    ['bytes=10-', { kind: 'unsatisfiable' }],
    ['bytes=4-3', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=x-y', { kind: 'unsatisfiable' }],
    ['bytes=99999999999999999999-', { kind: 'unsatisfiable' }],
  ])('%s on 10 bytes → %o', (header, expected) => {
    expect(parseRange(header, 10)).toEqual(expected);
  });

  it('nothing is satisfiable on an empty blob', () => {
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });
});

describe('parseNpmPath', () => {
  it.each([
    [['lodash'], { kind: 'packument', name: 'lodash' }],
    [['@babel/core'], { kind: 'packument', name: '@babel/core' }],
    [['@babel', 'core'], { kind: 'packument', name: '@babel/core' }],
    [['@babel', 'core', '7.0.0'], { kind: 'version', name: '@babel/core', spec: '7.0.0' }],
    [['lodash', 'latest'], { kind: 'version', name: 'lodash', spec: 'latest' }],
    [['lodash', '-', 'lodash-4.17.21.tgz'], { kind: 'tarball', name: 'lodash', filename: 'lodash-4.17.21.tgz' }],
    [['@babel', 'core', '-', 'core-7.0.0.tgz'], { kind: 'tarball', name: '@babel/core', filename: 'core-7.0.0.tgz' }],
    [['@babel/core', '-', 'core-7.0.0.tgz'], { kind: 'tarball', name: '@babel/core', filename: 'core-7.0.0.tgz' }],
    [['a b'], undefined],
    [['@scope'], undefined],
    [['@a/b/c'], undefined],
    [['x'.repeat(215)], undefined],
    [['lodash', '-', 'a', 'b'], undefined],
  ])('%o → %o', (segments, expected) => {
    expect(parseNpmPath(segments)).toEqual(expected);
  });
});

describe('parseHashedPath', () => {
  const bytes = Buffer.alloc(32, 0xfb); // base64 of 0xfb… is full of '+' and '/'
  const hex = bytes.toString('hex');
  it('decodes base16, nix base32, base64 (with slashes) and SRI', () => {
    const b64 = toBase64(bytes);
    expect(b64).toContain('/');
    expect(parseHashedPath(['sha256', hex])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['sha256', toNixBase32(bytes)])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['sha256', ...b64.split('/')])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['', ...`sha256-${b64}`.split('/')])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['sha256', ...`sha256-${b64}`.split('/')])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['sha256', `sha256:${hex}`])).toEqual({ algorithm: 'sha256', hex });
    expect(parseHashedPath(['sha256', hex, 'x.tar.gz'])).toEqual({ algorithm: 'sha256', hex, filename: 'x.tar.gz' });
    expect(parseHashedPath(['md5', '0'.repeat(32)])).toBe('unsupported');
    expect(parseHashedPath(['lodash'])).toBeUndefined();
    expect(parseHashedPath(['sha256'])).toBeUndefined();
  });

  it('refuses hashes of the wrong length or alphabet', () => {
    expect(status(() => parseHashedPath(['sha256', hex.slice(2)]))).toBe(400);
    expect(status(() => parseHashedPath(['sha512', hex]))).toBe(400);
    expect(status(() => parseHashedPath(['sha256', 'e'.repeat(52)]))).toBe(400);
  });
});
