import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/http/http-client.js';
import { UrlRewriter } from '../src/http/url-rewrite.js';
import { createProgress } from '../src/progress.js';
import { registryBase, packumentPath } from '../src/resolve/npm-registry.js';
import { decodeHtmlEntities, parseSimpleHtml, parseSimpleJson } from '../src/resolve/pypi-simple.js';
import { genericPurl, npmPurl, pypiPurl } from '../src/resolve/purl.js';

describe('small pieces', () => {
  it('parseRetryAfter reads delay-seconds and HTTP-dates (RFC 9110 §10.2.3)', () => {
    expect(parseRetryAfter('120')).toBe(120_000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    const now = Date.parse('2026-11-28T15:00:00Z');
    expect(parseRetryAfter('Sat, 28 Nov 2026 15:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sat, 28 Nov 2026 14:00:00 GMT', now)).toBe(0);
  });

  it('UrlRewriter rewrites by origin only and refuses non-http targets', () => {
    const r = new UrlRewriter({ 'https://registry.npmjs.org': 'http://127.0.0.1:9/npm/' });
    expect(r.rewrite('https://registry.npmjs.org/@a%2fb?x=1')).toBe('http://127.0.0.1:9/npm/@a%2fb?x=1');
    expect(r.rewrite('https://registry.npmjs.org.evil.com/x')).toBe('https://registry.npmjs.org.evil.com/x');
    expect(r.rewrite('http://registry.npmjs.org/x')).toBe('http://registry.npmjs.org/x'); // different origin
    expect(() => new UrlRewriter({ 'https://a': 'file:///etc' })).toThrow(/http/);
  });

  it('registryBase follows the registry a lockfile names; the public one can be swapped', () => {
    const pkg = (name: string, resolved: string) => ({
      name,
      version: '1.0.0',
      resolved,
      integrity: 'x',
      lockPath: '',
    });
    expect(registryBase(pkg('@a/b', 'https://npm.corp.example/repo/@a/b/-/b-1.0.0.tgz'), undefined)).toBe(
      'https://npm.corp.example/repo/',
    );
    expect(registryBase(pkg('@a/b', 'https://npm.corp.example/@a%2fb/-/b-1.0.0.tgz'), undefined)).toBe(
      'https://npm.corp.example/',
    );
    expect(registryBase(pkg('x', 'https://registry.npmjs.org/x/-/x-1.0.0.tgz'), 'http://127.0.0.1:1/')).toBe(
      'http://127.0.0.1:1/',
    );
    expect(registryBase(pkg('x', 'https://cdn.example/odd/layout.tgz'), undefined)).toBe('https://registry.npmjs.org/');
    expect(packumentPath('@a/b')).toBe('@a%2Fb');
  });

  it("registryBase for an entry without resolved: its scope's registry, else the configured one, else refused", () => {
    const bare = (name: string) => ({ name, version: '1.0.0', integrity: 'x', lockPath: '' });
    const scopes = { '@corp': 'https://npm.corp.example/' };
    expect(registryBase(bare('@corp/lib'), 'http://127.0.0.1:1/', scopes)).toBe('https://npm.corp.example/');
    expect(registryBase(bare('@other/lib'), 'http://127.0.0.1:1/', scopes)).toBe('http://127.0.0.1:1/');
    expect(registryBase(bare('plain'), 'http://127.0.0.1:1/', scopes)).toBe('http://127.0.0.1:1/');
    expect(() => registryBase(bare('@other/lib'), undefined, scopes)).toThrow(/--npm-registry/);
    expect(() => registryBase(bare('plain'), undefined)).toThrow(
      expect.objectContaining({ code: 'SYNC_NO_REGISTRY' }) as Error,
    );
  });

  it('purls follow the spec', () => {
    expect(npmPurl('@scope/pkg', '1.2.3')).toBe('pkg:npm/%40scope/pkg@1.2.3');
    // packageurl-js (through @airlock/sbom) is the one writer: qualifier values percent-encoded, pypi per file.
    expect(pypiPurl('Typing_Extensions', '4.9.0', 'typing_extensions-4.9.0-py3-none-any.whl')).toBe(
      'pkg:pypi/typing-extensions@4.9.0?file_name=typing_extensions-4.9.0-py3-none-any.whl',
    );
    expect(genericPurl('tool 1', 'ab', 'https://x/y?z')).toBe(
      'pkg:generic/tool%201?checksum=sha256%3Aab&download_url=https%3A%2F%2Fx%2Fy%3Fz',
    );
  });

  it('PEP 503 HTML: entities, relative URLs, fragments, yanked and metadata attributes', () => {
    const html = `<meta name="pypi:repository-version" content="1.0"><a href="../../f/a-1.0.tar.gz#sha256=${'A'.repeat(64)}" data-requires-python="&gt;=3.8,&lt;4" data-yanked="" data-dist-info-metadata="true">a-1.0.tar.gz</a>
      <a href='https://files.example/b-1.0-py3-none-any.whl' data-core-metadata="sha256=${'b'.repeat(64)}"><span>b-1.0-py3-none-any.whl</span></a>`;
    const { files } = parseSimpleHtml(html, 'https://idx.example/simple/a/');
    expect(files[0]).toEqual({
      filename: 'a-1.0.tar.gz',
      url: 'https://idx.example/f/a-1.0.tar.gz',
      hashes: { sha256: 'a'.repeat(64) },
      requiresPython: '>=3.8,<4',
      yanked: '',
      coreMetadata: true,
    });
    expect(files[1]).toMatchObject({
      filename: 'b-1.0-py3-none-any.whl',
      coreMetadata: { sha256: 'b'.repeat(64) },
      yanked: false,
      requiresPython: null,
    });
    expect(() => parseSimpleHtml('<meta name="pypi:repository-version" content="2.0">', 'https://i/')).toThrow(
      /API version/,
    );
    expect(() => parseSimpleHtml('<a href="javascript:alert(1)">x</a>', 'https://i/')).toThrow(/http/);
    expect(decodeHtmlEntities('&#x41;&#66;&amp;&bogus;')).toBe('AB&&bogus;');
  });

  it('PEP 691 JSON: yanked true, legacy dist-info-metadata, bad api-version', () => {
    const page = (extra: object, meta = { 'api-version': '1.0' }) =>
      JSON.stringify({ meta, name: 'a', files: [{ filename: 'a-1.whl', url: 'a-1.whl', hashes: {}, ...extra }] });
    expect(
      parseSimpleJson(page({ yanked: true, 'dist-info-metadata': { sha256: 'c'.repeat(64) } }), 'https://i/simple/a/')
        .files[0],
    ).toMatchObject({ url: 'https://i/simple/a/a-1.whl', yanked: '', coreMetadata: { sha256: 'c'.repeat(64) } });
    expect(() => parseSimpleJson(page({}, { 'api-version': '2.0' }), 'https://i/')).toThrow(/API version/);
    expect(() => parseSimpleJson('{"files": [{"filename": 1}]}', 'https://i/')).toThrow(/filename/);
  });

  it('progress: plain lines on a non-TTY, nothing in none mode', () => {
    let text = '';
    const stream = Object.assign(new Writable({ write: (c, _e, cb) => void ((text += String(c)), cb()) }), {
      isTTY: false,
    });
    const p = createProgress({ stream, intervalMs: 0 });
    p.planned(2);
    p.bytes(3 * 1024 * 1024);
    p.done();
    p.done();
    p.stop();
    expect(text).toMatch(/sync: 1\/2 done/);
    expect(text).toMatch(/sync: 2\/2 done, 3\.0 MB/);
    text = '';
    const q = createProgress({ stream, mode: 'none' });
    q.planned(1);
    q.done();
    q.stop();
    expect(text).toBe('');
  });
});
