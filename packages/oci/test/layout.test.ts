import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildImageLayout,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  MEDIA_TYPES,
  parseImageReference,
  resolveLayoutManifest,
  type BuildImageOptions,
} from '../src/index.js';
import { skopeoProblem, toolsAvailable, umociProblem } from '@airlock/testkit';
import { removeDir, run, sha256, tempDir, treeContents } from './helpers.js';

interface TarHeaderSeen {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  body: Buffer;
  linkname: string | null;
}

async function listTar(bytes: Buffer): Promise<TarHeaderSeen[]> {
  const out: TarHeaderSeen[] = [];
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.push({
          name: h.name,
          type: h.type ?? '',
          mode: h.mode ?? -1,
          uid: h.uid ?? -1,
          gid: h.gid ?? -1,
          uname: h.uname ?? '',
          gname: h.gname ?? '',
          mtime: (h.mtime as Date).getTime() / 1000,
          body: Buffer.concat(chunks),
          linkname: h.linkname ?? null,
        });
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  Readable.from([bytes]).pipe(extract);
  await done;
  return out;
}

const blob = (layout: string, digest: string): Buffer => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));

describe('buildImageLayout', () => {
  let dir: string;
  let src: string;
  const savedEpoch = process.env.SOURCE_DATE_EPOCH;

  beforeAll(() => {
    dir = tempDir();
    src = join(dir, 'src-app');
    writeFileSync(src, '#!/bin/sh\necho hello from airlock\n');
  });
  afterAll(() => removeDir(dir));
  afterEach(() => {
    if (savedEpoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = savedEpoch;
  });

  const options = (): BuildImageOptions => ({
    files: [
      { path: '/app/bin/app', source: src, mode: 0o755 },
      { path: 'etc/airlock/config.json', bytes: '{"a":1}\n' },
      { path: 'app/data', type: 'directory', mode: 0o700 },
      { path: 'app/current', type: 'symlink', linkTarget: 'bin/app' },
      { path: 'b-z', bytes: new Uint8Array([1, 2, 3]) },
    ],
    entrypoint: ['/app/bin/app'],
    workingDir: '/app',
    architecture: 'amd64',
    os: 'linux',
    labels: { 'org.opencontainers.image.source': 'https://example.invalid/airlock' },
  });

  it('writes byte-identical layouts from the same inputs', async () => {
    delete process.env.SOURCE_DATE_EPOCH;
    const a = await buildImageLayout(options(), join(dir, 'repro-a'));
    const b = await buildImageLayout(options(), join(dir, 'repro-b'));
    expect(b).toEqual({ ...a, layoutDir: join(dir, 'repro-b') });
    const ta = treeContents(join(dir, 'repro-a'));
    const tb = treeContents(join(dir, 'repro-b'));
    expect([...ta.keys()]).toEqual([...tb.keys()]);
    for (const [k, v] of ta) expect(tb.get(k)?.equals(v), k).toBe(true);
    // oci-layout, index.json, config, manifest and one layer; no temp files left behind.
    expect([...ta.keys()].sort()).toEqual(
      [
        'index.json',
        'oci-layout',
        ...[a.manifestDigest, a.configDigest, a.layers[0]!.digest].map((d) => `blobs/sha256/${d.slice(7)}`),
      ].sort(),
    );
    for (const [k, v] of ta)
      if (k.startsWith('blobs/')) expect(sha256(v)).toBe(`sha256:${k.slice('blobs/sha256/'.length)}`);
  });

  it('changes the digest when one byte of content changes', async () => {
    const base = await buildImageLayout(options(), join(dir, 'diff-a'));
    const o = options();
    o.files[1] = { path: 'etc/airlock/config.json', bytes: '{"a":2}\n' };
    const changed = await buildImageLayout(o, join(dir, 'diff-b'));
    expect(changed.layers[0]!.diffId).not.toBe(base.layers[0]!.diffId);
    expect(changed.manifestDigest).not.toBe(base.manifestDigest);
  });

  it('writes a deterministic tar: sorted names, implicit parents, uid/gid 0 without names, one mtime, fixed modes', async () => {
    delete process.env.SOURCE_DATE_EPOCH;
    const built = await buildImageLayout(options(), join(dir, 'tar'));
    const layer = blob(built.layoutDir, built.layers[0]!.digest);
    const tarBytes = gunzipSync(layer);
    expect(sha256(tarBytes)).toBe(built.layers[0]!.diffId);
    const entries = await listTar(tarBytes);
    expect(entries.map((e) => [e.name, e.type, e.mode.toString(8)])).toEqual([
      ['app/', 'directory', '755'],
      ['app/bin/', 'directory', '755'],
      ['app/bin/app', 'file', '755'],
      ['app/current', 'symlink', '777'],
      ['app/data/', 'directory', '700'],
      ['b-z', 'file', '644'],
      ['etc/', 'directory', '755'],
      ['etc/airlock/', 'directory', '755'],
      ['etc/airlock/config.json', 'file', '644'],
    ]);
    for (const e of entries) {
      expect([e.uid, e.gid, e.uname, e.gname, e.mtime]).toEqual([0, 0, '', '', 0]);
    }
    expect(entries.find((e) => e.name === 'app/bin/app')!.body.toString()).toBe(readFileSync(src, 'utf8'));
    expect(entries.find((e) => e.name === 'app/current')!.linkname).toBe('bin/app');
  });

  it('gzips without a name or a time (RFC 1952 header: FLG 0, MTIME 0, OS 3)', async () => {
    const built = await buildImageLayout(options(), join(dir, 'gz'));
    const layer = blob(built.layoutDir, built.layers[0]!.digest);
    expect([...layer.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]); // deflate, no FNAME/FCOMMENT/FEXTRA
    expect(layer.readUInt32LE(4)).toBe(0); // MTIME
    expect(layer[9]).toBe(3); // OS: Unix on every host
    expect(built.layers[0]!.mediaType).toBe(MEDIA_TYPES.ociLayerGzip);
  });

  it('writes a config with rootfs.diff_ids, fixed history and the run settings, and a manifest that points at it', async () => {
    delete process.env.SOURCE_DATE_EPOCH;
    const built = await buildImageLayout(options(), join(dir, 'cfg'));
    const manifest = JSON.parse(blob(built.layoutDir, built.manifestDigest).toString()) as Record<string, unknown>;
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: built.configDigest, size: built.configSize },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: built.layers[0]!.digest, size: built.layers[0]!.size }],
    });
    const config = JSON.parse(blob(built.layoutDir, built.configDigest).toString()) as Record<string, unknown>;
    expect(config).toEqual({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: {
        Entrypoint: ['/app/bin/app'],
        WorkingDir: '/app',
        Labels: { 'org.opencontainers.image.source': 'https://example.invalid/airlock' },
      },
      rootfs: { type: 'layers', diff_ids: [built.layers[0]!.diffId] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'airlock buildImageLayout' }],
    });
    const index = JSON.parse(readFileSync(join(built.layoutDir, 'index.json'), 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toEqual([
      { ...built.manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
    ]);
    expect(JSON.parse(readFileSync(join(built.layoutDir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    expect(await resolveLayoutManifest(built.layoutDir, 'latest')).toEqual({
      ...built.manifest,
      annotations: { 'org.opencontainers.image.ref.name': 'latest' },
    });
  });

  it('takes SOURCE_DATE_EPOCH for created and every mtime, and an explicit created over it', async () => {
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    const fromEnv = await buildImageLayout(options(), join(dir, 'sde'));
    expect(fromEnv.created).toBe('2023-11-14T22:13:20Z');
    const entries = await listTar(gunzipSync(blob(fromEnv.layoutDir, fromEnv.layers[0]!.digest)));
    expect(new Set(entries.map((e) => e.mtime))).toEqual(new Set([1700000000]));
    const config = JSON.parse(blob(fromEnv.layoutDir, fromEnv.configDigest).toString()) as {
      created: string;
      history: { created: string }[];
    };
    expect([config.created, config.history[0]!.created]).toEqual(['2023-11-14T22:13:20Z', '2023-11-14T22:13:20Z']);

    const explicit = await buildImageLayout(
      { ...options(), created: '2001-02-03T04:05:06Z' },
      join(dir, 'sde-explicit'),
    );
    expect(explicit.created).toBe('2001-02-03T04:05:06Z');
    expect(explicit.manifestDigest).not.toBe(fromEnv.manifestDigest);

    process.env.SOURCE_DATE_EPOCH = 'yesterday';
    await expect(buildImageLayout(options(), join(dir, 'sde-bad'))).rejects.toMatchObject({
      code: 'OCI_INPUT_INVALID',
    });
  });

  it('with compression none, the layer is the plain tar and its digest is the diff_id', async () => {
    const built = await buildImageLayout({ ...options(), compression: 'none' }, join(dir, 'plain'));
    expect(built.layers[0]!.mediaType).toBe(MEDIA_TYPES.ociLayerTar);
    expect(built.layers[0]!.digest).toBe(built.layers[0]!.diffId);
    const gz = await buildImageLayout(options(), join(dir, 'plain-gz'));
    expect(gz.layers[0]!.diffId).toBe(built.layers[0]!.diffId);
  });

  it('refuses bad input with OCI_INPUT_INVALID / OCI_LAYOUT_EXISTS', async () => {
    const bad: [string, BuildImageOptions][] = [
      [
        'duplicate',
        {
          files: [
            { path: 'a', bytes: '1' },
            { path: '/a', bytes: '2' },
          ],
        },
      ],
      ['dotdot', { files: [{ path: 'a/../../etc/passwd', bytes: '1' }] }],
      ['empty path', { files: [{ path: '/', bytes: '1' }] }],
      [
        'file as parent',
        {
          files: [
            { path: 'a', bytes: '1' },
            { path: 'a/b', bytes: '2' },
          ],
        },
      ],
      ['both bytes and source', { files: [{ path: 'a', bytes: '1', source: src }] }],
      ['missing source', { files: [{ path: 'a', source: join(dir, 'nope') }] }],
      ['bad mode', { files: [{ path: 'a', bytes: '1', mode: 0o10000 }] }],
      ['no files', { files: [] }],
    ];
    for (const [name, o] of bad) {
      await expect(buildImageLayout(o, join(dir, `bad-${name.replace(/ /g, '-')}`)), name).rejects.toMatchObject({
        code: 'OCI_INPUT_INVALID',
      });
    }
    mkdirSync(join(dir, 'occupied'));
    writeFileSync(join(dir, 'occupied', 'x'), '');
    await expect(buildImageLayout(options(), join(dir, 'occupied'))).rejects.toMatchObject({
      code: 'OCI_LAYOUT_EXISTS',
    });
  });

  it('exposes the OCI empty descriptor content with its well-known digest', () => {
    expect(sha256(EMPTY_JSON)).toBe(EMPTY_JSON_DIGEST);
    expect(EMPTY_JSON.toString()).toBe('{}');
  });

  it('parses image references the way docker does', () => {
    expect(parseImageReference('127.0.0.1:5000/team/app:v1')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'team/app',
      tag: 'v1',
    });
    const d = `sha256:${'a'.repeat(64)}`;
    expect(parseImageReference(`localhost/app@${d}`)).toEqual({ registry: 'localhost', repository: 'app', digest: d });
    expect(parseImageReference('team/app')).toEqual({ repository: 'team/app' });
    for (const bad of ['Team/App', 'app@sha256:abc', 'app:', 'a//b', 'reg.io/app:bad tag']) {
      expect(() => parseImageReference(bad), bad).toThrow(expect.objectContaining({ code: 'OCI_INVALID_REFERENCE' }));
    }
  });

  describe('accepted by real OCI tools', () => {
    const umoci = toolsAvailable('umoci unpack of the layout', [umociProblem()]);
    const skopeo = toolsAvailable('skopeo inspect of the layout', [skopeoProblem()]);

    it.skipIf(!umoci)('umoci unpacks the layout to the expected rootfs', async () => {
      const built = await buildImageLayout(options(), join(dir, 'umoci'));
      const bundle = join(dir, 'umoci-bundle');
      const r = await run('umoci', ['unpack', '--rootless', '--image', `${built.layoutDir}:latest`, bundle]);
      expect(r.status, r.stderr).toBe(0);
      const app = join(bundle, 'rootfs', 'app', 'bin', 'app');
      expect(readFileSync(app, 'utf8')).toBe(readFileSync(src, 'utf8'));
      expect(statSync(app).mode & 0o777).toBe(0o755);
      expect(statSync(join(bundle, 'rootfs', 'app', 'data')).mode & 0o777).toBe(0o700);
      expect(readFileSync(join(bundle, 'rootfs', 'app', 'current'), 'utf8')).toBe(readFileSync(src, 'utf8'));
      const runtime = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
        process: { args: string[]; cwd: string };
      };
      expect(runtime.process.args).toEqual(['/app/bin/app']);
      expect(runtime.process.cwd).toBe('/app');
    });

    it.skipIf(!skopeo)('skopeo inspects the layout and reports our manifest digest', async () => {
      const built = await buildImageLayout(options(), join(dir, 'skopeo'));
      const r = await run('skopeo', ['inspect', `oci:${built.layoutDir}:latest`]);
      expect(r.status, r.stderr).toBe(0);
      const info = JSON.parse(r.stdout.toString()) as {
        Digest: string;
        Layers: string[];
        Architecture: string;
        Created: string;
      };
      expect(info.Digest).toBe(built.manifestDigest);
      expect(info.Layers).toEqual([built.layers[0]!.digest]);
      expect([info.Architecture, info.Created]).toEqual(['amd64', '1970-01-01T00:00:00Z']);
    });
  });
});
