import { chmodSync, closeSync, openSync, readSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBlobStore, type MirrorStore } from '@airlock/cas';
import { toBase64, toNixBase32, fromHex } from '@airlock/core';
import { startMirrorServer, type RunningMirrorServer } from '../src/index.js';
import { json, rawRequest } from './helpers/http.js';
import {
  npmFile,
  openStore,
  populateFromManifest,
  pypiFiles,
  removeDir,
  sha1,
  sha256,
  sha512,
  tempDir,
  type FixtureFile,
} from './helpers/populate.js';
import { validate } from '@airlock/schemas';

const NPM_ACCEPT = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const PIP_ACCEPT = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01';

const tgz = (label: string) => Buffer.from(`fake tarball ${label} `.repeat(20));
const wheel = Buffer.from('PK fake wheel bytes '.repeat(50));
const sdist = Buffer.from('fake sdist bytes '.repeat(30));
const coreMetadata = Buffer.from(
  'Metadata-Version: 2.1\nName: Example_Project\nVersion: 1.0\nRequires-Python: >=3.8,<4\n',
);
const generic = Buffer.from('generic tool archive '.repeat(100));
const nixSrc = Buffer.from('hello-2.12 source tarball '.repeat(64));

function fixtures(): FixtureFile[] {
  return [
    npmFile(
      tgz('lp1'),
      { name: 'left-pad-lite', version: '1.0.0', description: 'pads', dependencies: { tiny: '^1.0.0' } },
      { time: '2020-01-01T00:00:00.000Z' },
    ),
    npmFile(
      tgz('lp11'),
      {
        name: 'left-pad-lite',
        version: '1.1.0',
        description: 'pads more',
        bin: { lp: 'bin.js' },
        scripts: { postinstall: 'node x' },
      },
      { time: '2021-01-01T00:00:00.000Z' },
    ),
    npmFile(
      tgz('lp2b'),
      { name: 'left-pad-lite', version: '2.0.0-beta.1', description: 'next' },
      { time: '2022-01-01T00:00:00.000Z' },
    ),
    npmFile(tgz('scoped'), { name: '@scope/pkg', version: '1.0.0', engines: { node: '>=18' } }),
    npmFile(tgz('tag1'), { name: 'tagged', version: '1.0.0' }, { distTags: { latest: '1.0.0', next: '2.0.0' } }),
    npmFile(tgz('tag2'), { name: 'tagged', version: '2.0.0' }, { distTags: { next: '2.0.0' } }),
    ...pypiFiles(wheel, {
      project: 'Example_Project',
      version: '1.0',
      filename: 'example_project-1.0-py3-none-any.whl',
      requiresPython: '>=3.8,<4',
      metadata: coreMetadata,
    }),
    ...pypiFiles(sdist, {
      project: 'Example_Project',
      version: '0.9',
      filename: 'example_project-0.9.tar.gz',
      yanked: 'broken build',
    }),
    {
      bytes: generic,
      entry: { ecosystem: 'generic', name: 'tool.tar.gz', version: null, filename: 'tool.tar.gz', metadata: {} },
    },
    {
      bytes: nixSrc,
      entry: {
        ecosystem: 'nix',
        name: 'hello-2.12.tar.gz',
        version: null,
        filename: 'hello-2.12.tar.gz',
        metadata: { outputHashAlgo: 'sha256', outputHashMode: 'flat' },
      },
    },
  ];
}

describe('mirror server routes', () => {
  let dir: string;
  let store: MirrorStore;
  let server: RunningMirrorServer;
  let url: string;
  beforeAll(async () => {
    dir = tempDir();
    store = await openStore(dir);
    await populateFromManifest(store, fixtures());
    server = await startMirrorServer({ store });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    removeDir(dir);
  });

  it('answers / with the head snapshot and /-/ping', async () => {
    const res = await rawRequest(url, '/');
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ service: 'airlock-mirror', head: { sequence: 1 } });
    expect((await rawRequest(url, '/-/ping')).status).toBe(200);
  });

  it('describes a blob by sha256 at /-/airlock/blobs/<hex> (the runner resolves what a build fetched with it)', async () => {
    const hex = sha256(tgz('lp1'));
    const res = await rawRequest(url, `/-/airlock/blobs/${hex}`);
    expect(res.status).toBe(200);
    const doc: unknown = json(res);
    // The answer is the shared contract the runner checks it against (throws naming every field that is not).
    validate('mirror-blob-lookup.v1', doc, { what: 'the lookup answer' });
    expect(doc).toMatchObject({
      sha256: hex,
      size: tgz('lp1').length,
      snapshot: { id: store.head()!.id, sequence: 1 },
    });
    expect(doc.entries).toEqual([
      expect.objectContaining({
        ecosystem: 'npm',
        name: 'left-pad-lite',
        version: '1.0.0',
        digests: expect.objectContaining({ sha256: hex, sha512: sha512(tgz('lp1')) }),
      }),
    ]);
    // Unknown digests and malformed paths are 404s, never a lookup elsewhere.
    expect((await rawRequest(url, `/-/airlock/blobs/${'0'.repeat(64)}`)).status).toBe(404);
    expect((await rawRequest(url, `/-/airlock/blobs/${hex.toUpperCase()}`)).status).toBe(404);
    expect((await rawRequest(url, `/-/airlock/blobs/${hex}/x`)).status).toBe(404);
  });

  describe('npm', () => {
    it("builds tarball URLs from the request's own Host (the runner bridge's 127.0.0.1:18080), ignoring a malformed one", async () => {
      const viaBridge = await rawRequest(url, '/left-pad-lite', { headers: { host: '127.0.0.1:18080' } });
      const doc = json(viaBridge) as { versions: Record<string, { dist: { tarball: string } }> };
      expect(doc.versions['1.0.0']!.dist.tarball).toBe(
        'http://127.0.0.1:18080/left-pad-lite/-/left-pad-lite-1.0.0.tgz',
      );
      for (const host of ['evil"/><x', 'a b', 'x:99999999', '']) {
        const r = await rawRequest(url, '/left-pad-lite', { headers: { host } });
        const d = json(r) as { versions: Record<string, { dist: { tarball: string } }> };
        expect(d.versions['1.0.0']!.dist.tarball, host).toBe(`${url}/left-pad-lite/-/left-pad-lite-1.0.0.tgz`);
      }
    });

    it("keeps the operator's --public-url (a proxy in front) whatever Host the request carries", async () => {
      const proxied = await startMirrorServer({ store, publicUrl: 'https://mirror.example/npm/' });
      try {
        const r = await rawRequest(proxied.url, '/left-pad-lite', { headers: { host: '127.0.0.1:18080' } });
        const d = json(r) as { versions: Record<string, { dist: { tarball: string } }> };
        expect(d.versions['1.0.0']!.dist.tarball).toBe(
          'https://mirror.example/npm/left-pad-lite/-/left-pad-lite-1.0.0.tgz',
        );
      } finally {
        await proxied.close();
      }
    });

    it('serves the full packument with tarball URLs rewritten and integrity/shasum preserved', async () => {
      const res = await rawRequest(url, '/left-pad-lite');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['vary']).toBe('Accept');
      const doc = json(res) as {
        name: string;
        versions: Record<string, Record<string, unknown>>;
        time: Record<string, string>;
        'dist-tags': Record<string, string>;
        description?: string;
      };
      expect(doc.name).toBe('left-pad-lite');
      expect(Object.keys(doc.versions)).toEqual(['1.0.0', '1.1.0', '2.0.0-beta.1']);
      expect(doc['dist-tags']).toEqual({ latest: '1.1.0' });
      const v1 = doc.versions['1.0.0']!;
      const bytes = tgz('lp1');
      expect(v1['dist']).toEqual({
        integrity: `sha512-${Buffer.from(sha512(bytes), 'hex').toString('base64')}`,
        shasum: sha1(bytes),
        tarball: `${url}/left-pad-lite/-/left-pad-lite-1.0.0.tgz`,
      });
      expect(v1['dependencies']).toEqual({ tiny: '^1.0.0' });
      expect(doc.time).toMatchObject({
        created: '2020-01-01T00:00:00.000Z',
        modified: '2022-01-01T00:00:00.000Z',
        '1.1.0': '2021-01-01T00:00:00.000Z',
      });
      expect(doc.versions['1.1.0']!['hasInstallScript']).toBe(true);
      expect(doc.description).toBe('pads more');
    });

    it('serves the abbreviated packument when npm asks for it', async () => {
      const res = await rawRequest(url, '/left-pad-lite', { headers: { accept: NPM_ACCEPT } });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/vnd.npm.install-v1+json');
      const doc = json(res) as {
        modified: string;
        versions: Record<string, Record<string, unknown>>;
        'dist-tags': unknown;
      };
      expect(Object.keys(doc).sort()).toEqual(['dist-tags', 'modified', 'name', 'versions']);
      expect(doc.modified).toBe('2022-01-01T00:00:00.000Z');
      const v = doc.versions['1.1.0']!;
      expect(v).toMatchObject({
        name: 'left-pad-lite',
        version: '1.1.0',
        bin: { lp: 'bin.js' },
        hasInstallScript: true,
      });
      expect(v['description']).toBeUndefined();
      expect(v['scripts']).toBeUndefined();
      expect((v['dist'] as Record<string, string>)['tarball']).toBe(`${url}/left-pad-lite/-/left-pad-lite-1.1.0.tgz`);
      // A client that prefers plain JSON gets the full document.
      const full = await rawRequest(url, '/left-pad-lite', {
        headers: { accept: 'application/json, application/vnd.npm.install-v1+json;q=0.5' },
      });
      expect(full.headers['content-type']).toBe('application/json');
    });

    it.each(['/@scope%2fpkg', '/@scope%2Fpkg', '/@scope/pkg', '/%40scope%2Fpkg', '/%40scope%2fpkg'])(
      'accepts the scoped spelling %s',
      async (path) => {
        const res = await rawRequest(url, path, { headers: { accept: NPM_ACCEPT } });
        expect(res.status).toBe(200);
        const doc = json(res) as { name: string; versions: Record<string, { dist: { tarball: string } }> };
        expect(doc.name).toBe('@scope/pkg');
        expect(doc.versions['1.0.0']!.dist.tarball).toBe(`${url}/@scope/pkg/-/pkg-1.0.0.tgz`);
      },
    );

    it.each(['/@scope/pkg/-/pkg-1.0.0.tgz', '/@scope%2fpkg/-/pkg-1.0.0.tgz', '/%40scope%2Fpkg/-/pkg-1.0.0.tgz'])(
      'serves the scoped tarball at %s',
      async (path) => {
        const res = await rawRequest(url, path);
        expect(res.status).toBe(200);
        expect(res.body).toEqual(tgz('scoped'));
        expect(res.headers['etag']).toBe(`"sha256:${sha256(tgz('scoped'))}"`);
      },
    );

    it('serves tarballs and 404s what is not mirrored', async () => {
      const res = await rawRequest(url, '/left-pad-lite/-/left-pad-lite-1.1.0.tgz');
      expect(res.status).toBe(200);
      expect(res.body).toEqual(tgz('lp11'));
      expect(res.headers['content-length']).toBe(String(tgz('lp11').length));
      expect((await rawRequest(url, '/left-pad-lite/-/left-pad-lite-9.9.9.tgz')).status).toBe(404);
      const missing = await rawRequest(url, '/not-mirrored');
      expect(missing.status).toBe(404);
      expect(json(missing)['error']).toContain('not-mirrored');
      expect((await rawRequest(url, '/@scope/other')).status).toBe(404);
      // A tarball of another package is not reachable under this package's name.
      expect((await rawRequest(url, '/tagged/-/left-pad-lite-1.0.0.tgz')).status).toBe(404);
    });

    it('uses the dist-tags recorded in the snapshot', async () => {
      const doc = json(await rawRequest(url, '/tagged')) as { 'dist-tags': Record<string, string> };
      expect(doc['dist-tags']).toEqual({ latest: '1.0.0', next: '2.0.0' });
    });

    it('serves single versions by number and by tag', async () => {
      expect(json(await rawRequest(url, '/left-pad-lite/1.0.0'))).toMatchObject({
        version: '1.0.0',
        name: 'left-pad-lite',
      });
      expect(json(await rawRequest(url, '/left-pad-lite/latest'))).toMatchObject({ version: '1.1.0' });
      expect(json(await rawRequest(url, '/@scope/pkg/1.0.0'))).toMatchObject({ version: '1.0.0' });
      expect((await rawRequest(url, '/left-pad-lite/3.0.0')).status).toBe(404);
    });

    it('supports ETag / If-None-Match and HEAD on packuments', async () => {
      const first = await rawRequest(url, '/left-pad-lite', { headers: { accept: NPM_ACCEPT } });
      const etag = first.headers['etag'] as string;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      const again = await rawRequest(url, '/left-pad-lite', { headers: { accept: NPM_ACCEPT, 'if-none-match': etag } });
      expect(again.status).toBe(304);
      expect(again.body.length).toBe(0);
      // The full document is a different representation with a different tag.
      const full = await rawRequest(url, '/left-pad-lite', { headers: { 'if-none-match': etag } });
      expect(full.status).toBe(200);
      const head = await rawRequest(url, '/left-pad-lite', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(Number(head.headers['content-length'])).toBe(full.body.length);
    });
  });

  describe('PyPI', () => {
    const project = '/simple/example-project/';

    it('negotiates PEP 691 JSON for pip and gives api-version 1.1 fields', async () => {
      const res = await rawRequest(url, project, { headers: { accept: PIP_ACCEPT } });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/vnd.pypi.simple.v1+json');
      expect(res.headers['vary']).toBe('Accept');
      const doc = json(res) as { meta: unknown; name: string; versions: string[]; files: Record<string, unknown>[] };
      expect(doc.meta).toEqual({ 'api-version': '1.1' });
      expect(doc.name).toBe('example-project');
      expect(doc.versions).toEqual(['0.9', '1.0']);
      const whl = doc.files.find((f) => f['filename'] === 'example_project-1.0-py3-none-any.whl')!;
      expect(whl).toEqual({
        filename: 'example_project-1.0-py3-none-any.whl',
        // Relative to the project page (PEP 691): works at whatever address the client reached the mirror.
        url: `../../files/${sha256(wheel)}/example_project-1.0-py3-none-any.whl`,
        hashes: { sha256: sha256(wheel) },
        'requires-python': '>=3.8,<4',
        'core-metadata': { sha256: sha256(coreMetadata) },
        size: wheel.length,
      });
      expect(whl['dist-info-metadata']).toBeUndefined();
      const sd = doc.files.find((f) => f['filename'] === 'example_project-0.9.tar.gz')!;
      expect(sd['yanked']).toBe('broken build');
    });

    it('links files relative to the page, so a client at another address (a proxy, the runner bridge) resolves them there', async () => {
      const res = await rawRequest(url, project, { headers: { accept: PIP_ACCEPT, host: '127.0.0.1:18080' } });
      const doc = json(res) as { files: { url: string }[] };
      for (const f of doc.files) {
        expect(f.url).toMatch(/^\.\.\/\.\.\/files\/[0-9a-f]{64}\//);
        // What pip does: resolve against the page URL it fetched.
        const resolved = new URL(f.url, `http://127.0.0.1:18080${project}`);
        expect(resolved.origin).toBe('http://127.0.0.1:18080');
        expect((await rawRequest(url, resolved.pathname)).status).toBe(200);
      }
    });

    it('serves PEP 503 HTML with hashes, escaped requires-python, yanked and core-metadata attributes', async () => {
      for (const accept of [
        undefined,
        'text/html',
        '*/*',
        'application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.9',
      ]) {
        const res = await rawRequest(url, project, accept ? { headers: { accept } } : {});
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
        const html = res.body.toString();
        expect(html).toContain('<meta name="pypi:repository-version" content="1.1">');
        expect(html).toContain(
          `href="../../files/${sha256(wheel)}/example_project-1.0-py3-none-any.whl#sha256=${sha256(wheel)}"`,
        );
        expect(html).toContain('data-requires-python="&gt;=3.8,&lt;4"');
        expect(html).toContain(`data-core-metadata="sha256=${sha256(coreMetadata)}"`);
        expect(html).toContain(`data-dist-info-metadata="sha256=${sha256(coreMetadata)}"`);
        expect(html).toContain('data-yanked="broken build">example_project-0.9.tar.gz</a>');
      }
      const v1html = await rawRequest(url, project, { headers: { accept: 'application/vnd.pypi.simple.v1+html' } });
      expect(v1html.headers['content-type']).toBe('application/vnd.pypi.simple.v1+html');
      const latest = await rawRequest(url, project, { headers: { accept: 'application/vnd.pypi.simple.latest+json' } });
      expect(latest.headers['content-type']).toBe('application/vnd.pypi.simple.v1+json');
    });

    it('answers 406 when nothing acceptable is offered (and survives weird Accept headers)', async () => {
      expect((await rawRequest(url, project, { headers: { accept: 'application/xml' } })).status).toBe(406);
      expect(
        (
          await rawRequest(url, project, {
            headers: { accept: 'text/html;q=0, application/vnd.pypi.simple.v1+json;q=0' },
          })
        ).status,
      ).toBe(406);
      expect((await rawRequest(url, project, { headers: { accept: ';;;,,,/,*/' } })).status).toBe(406);
      expect((await rawRequest(url, project, { headers: { accept: 'text/html;q=nope' } })).status).toBe(406);
      expect(
        (await rawRequest(url, project, { headers: { accept: `text/html, ${'x/y, '.repeat(600)}` } })).status,
      ).toBe(400);
    });

    it('lists projects at /simple/ in both forms', async () => {
      const html = await rawRequest(url, '/simple/');
      expect(html.body.toString()).toContain('<a href="example-project/">example-project</a>');
      const j = json(await rawRequest(url, '/simple/', { headers: { accept: PIP_ACCEPT } }));
      expect(j).toEqual({ meta: { 'api-version': '1.1' }, projects: [{ name: 'example-project' }] });
    });

    it('redirects non-normalised names and missing trailing slashes', async () => {
      for (const path of ['/simple/Example_Project/', '/simple/example.project/', '/simple/example-project']) {
        const res = await rawRequest(url, path);
        expect(res.status).toBe(301);
        expect(res.headers['location']).toBe('/simple/example-project/');
      }
      expect((await rawRequest(url, '/simple/unknown-project/')).status).toBe(404);
      expect((await rawRequest(url, '/simple/bad%20name/')).status).toBe(400);
    });

    it('serves files and PEP 658 core metadata, only under their own digest', async () => {
      const file = await rawRequest(url, `/files/${sha256(wheel)}/example_project-1.0-py3-none-any.whl`);
      expect(file.status).toBe(200);
      expect(file.body).toEqual(wheel);
      const meta = await rawRequest(url, `/files/${sha256(wheel)}/example_project-1.0-py3-none-any.whl.metadata`);
      expect(meta.status).toBe(200);
      expect(meta.body).toEqual(coreMetadata);
      expect((await rawRequest(url, `/files/${sha256(sdist)}/example_project-0.9.tar.gz.metadata`)).status).toBe(404);
      expect((await rawRequest(url, `/files/${sha256(sdist)}/example_project-1.0-py3-none-any.whl`)).status).toBe(404);
      expect((await rawRequest(url, `/files/${sha256(wheel)}/other.whl`)).status).toBe(404);
    });
  });

  describe('Nix hashed mirrors and Bazel', () => {
    const hex = sha256(nixSrc);
    const raw = fromHex(hex);
    const hex512 = sha512(nixSrc);
    it.each([
      ['base16', `/sha256/${hex}`],
      ['nix base32', `/sha256/${toNixBase32(raw)}`],
      ['base64', `/sha256/${toBase64(raw)}`],
      ['SRI after algo', `/sha256/sha256-${toBase64(raw)}`],
      ['SRI without algo (empty outputHashAlgo)', `//sha256-${toBase64(raw)}`],
      ['sha512 base16', `/sha512/${hex512}`],
      ['sha512 nix base32', `/sha512/${toNixBase32(fromHex(hex512))}`],
      ['sha512 base64', `/sha512/${toBase64(fromHex(hex512))}`],
      ['sha1 base16', `/sha1/${sha1(nixSrc)}`],
      ['uppercase base16', `/sha256/${hex.toUpperCase()}`],
      ['Bazel with file name', `/sha256/${hex}/hello-2.12.tar.gz`],
    ])('serves %s', async (_label, path) => {
      const head = await rawRequest(url, path, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe(String(nixSrc.length));
      const res = await rawRequest(url, path);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(nixSrc);
    });

    it('404s unknown hashes and md5, 400s malformed hashes', async () => {
      expect((await rawRequest(url, `/sha256/${sha256('nothing')}`)).status).toBe(404);
      expect((await rawRequest(url, `/md5/${'0'.repeat(32)}`)).status).toBe(404);
      expect((await rawRequest(url, '/sha256/not-a-hash')).status).toBe(400);
      expect((await rawRequest(url, `/sha256/${hex}/a/b`)).status).toBe(400);
    });
  });

  describe('generic blobs', () => {
    const hex = sha256(generic);
    const path = `/blobs/sha256/${hex}`;

    it('serves with ETag, length, ranges and immutable caching', async () => {
      const res = await rawRequest(url, path);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(generic);
      expect(res.headers).toMatchObject({
        etag: `"sha256:${hex}"`,
        'content-length': String(generic.length),
        'accept-ranges': 'bytes',
        'cache-control': 'public, max-age=31536000, immutable',
        'content-type': 'application/octet-stream',
      });
      expect((await rawRequest(url, path, { headers: { 'if-none-match': `"sha256:${hex}"` } })).status).toBe(304);
      const head = await rawRequest(url, path, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers['content-length']).toBe(String(generic.length));
    });

    it.each([
      ['bytes=0-4', 0, 4],
      ['bytes=10-', 10, generic.length - 1],
      ['bytes=-3', generic.length - 3, generic.length - 1],
      ['bytes=5-999999', 5, generic.length - 1],
    ])('answers Range %s with 206', async (range, start, end) => {
      const res = await rawRequest(url, path, { headers: { range } });
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${generic.length}`);
      expect(res.body).toEqual(generic.subarray(start, end + 1));
    });

    it.each(['bytes=99999-', 'bytes=5-2', 'bytes=abc', 'bytes=-0', 'bytes=1-2-3'])(
      'answers bad Range %s with 416',
      async (range) => {
        const res = await rawRequest(url, path, { headers: { range } });
        expect(res.status).toBe(416);
        expect(res.headers['content-range']).toBe(`bytes */${generic.length}`);
      },
    );

    it('ignores multi-range and foreign units (full 200), and If-Range with another validator', async () => {
      expect((await rawRequest(url, path, { headers: { range: 'bytes=0-1,3-4' } })).status).toBe(200);
      expect((await rawRequest(url, path, { headers: { range: 'items=0-1' } })).status).toBe(200);
      expect((await rawRequest(url, path, { headers: { range: 'bytes=0-1', 'if-range': '"other"' } })).status).toBe(
        200,
      );
      expect(
        (await rawRequest(url, path, { headers: { range: 'bytes=0-1', 'if-range': `"sha256:${hex}"` } })).status,
      ).toBe(206);
    });

    it('does not serve blobs that are only staged by an unfinished import', async () => {
      const session = await store.beginImport();
      try {
        const staged = Buffer.from('staged but not committed');
        await session.put([staged]);
        expect(await store.blobs.has(sha256(staged))).toBe(true);
        expect((await rawRequest(url, `/blobs/sha256/${sha256(staged)}`)).status).toBe(404);
        expect((await rawRequest(url, `/sha256/${sha256(staged)}`)).status).toBe(404);
      } finally {
        await session.abort();
      }
    });
  });

  describe('hostile requests', () => {
    it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('rejects %s with 405', async (method) => {
      const res = await rawRequest(url, '/left-pad-lite', { method });
      expect(res.status).toBe(405);
      expect(res.headers['allow']).toBe('GET, HEAD');
    });

    it.each([
      '/../index.sqlite',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/%2E%2E%2Findex.sqlite',
      '/simple/..%2f..%2findex.sqlite/',
      `/blobs/sha256/..%2F..%2Findex.sqlite`,
      `/files/${'a'.repeat(64)}/..%2f..%2findex.sqlite`,
      '/left-pad-lite/-/..%2f..%2f..%2findex.sqlite',
      '/foo%00bar',
      '/foo%5c..%5cindex.sqlite',
      '/foo\\..\\index.sqlite',
      '/%zz',
      '/./left-pad-lite',
      'http://evil.example/left-pad-lite',
    ])('refuses %s with a 4xx and never leaks store files', async (path) => {
      const res = await rawRequest(url, path);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.body.toString('latin1')).not.toContain('SQLite format');
    });

    it('refuses over-long URLs with 414 (and oversized request heads with 431)', async () => {
      expect((await rawRequest(url, `/${'a'.repeat(5000)}`)).status).toBe(414);
      expect((await rawRequest(url, `/${'a'.repeat(20_000)}`)).status).toBe(431);
      expect((await rawRequest(url, '/')).status).toBe(200);
    });
  });
});

describe('verify-on-read through HTTP', () => {
  it('refuses to serve a blob whose bytes changed on disk: 500 and quarantine, then 410', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    const server = await startMirrorServer({ store });
    try {
      const bytes = Buffer.from('tarball that will rot '.repeat(100));
      await populateFromManifest(store, [npmFile(bytes, { name: 'rotten', version: '1.0.0' })]);
      const path = '/rotten/-/rotten-1.0.0.tgz';
      expect((await rawRequest(server.url, path)).body).toEqual(bytes);
      // Flip one byte in place (the file is 0444: chmod first, as an intruder would).
      const file = (store.blobs as FsBlobStore).pathOf(sha256(bytes));
      chmodSync(file, 0o644);
      const fd = openSync(file, 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, 10);
      writeSync(fd, Buffer.from([b[0]! ^ 1]), 0, 1, 10);
      closeSync(fd);
      const bad = await rawRequest(server.url, path);
      expect(bad.status).toBe(500);
      expect(json(bad)['error']).toMatch(/failed integrity verification.*quarantined/);
      expect(bad.body.includes(Buffer.from('tarball that will rot'))).toBe(false);
      expect(store.index.getBlob(sha256(bytes))?.state).toBe('quarantined');
      const gone = await rawRequest(server.url, path);
      expect(gone.status).toBe(410);
      expect((await rawRequest(server.url, `/blobs/sha256/${sha256(bytes)}`)).status).toBe(410);
    } finally {
      await server.close();
      await store.close();
      removeDir(dir);
    }
  });
});
