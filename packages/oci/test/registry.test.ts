import { readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildImageLayout,
  MEDIA_TYPES,
  RegistryClient,
  type BuildImageOptions,
  type BuiltImage,
} from '../src/index.js';
import {
  makePki,
  opensslProblem,
  registryProblem,
  skopeoProblem,
  startRegistry,
  toolsAvailable,
  type RunningRegistry,
} from '@airlock/testkit';
import { removeDir, run, sha256, startCorruptingProxy, tempDir, type CorruptingProxy } from './helpers.js';

const imageOptions = (marker: string): BuildImageOptions => ({
  files: [
    { path: 'app/app', bytes: `#!/bin/sh\necho ${marker}\n`, mode: 0o755 },
    { path: 'app/README', bytes: `image ${marker}\n` },
  ],
  entrypoint: ['/app/app'],
  workingDir: '/app',
  architecture: 'amd64',
  os: 'linux',
});

const available = toolsAvailable('OCI registry tests', [registryProblem(), skopeoProblem()]);

describe.skipIf(!available)('RegistryClient against a real docker-registry (Distribution 2.8.2)', () => {
  let dir: string;
  let registry: RunningRegistry;
  let client: RegistryClient;
  let image: BuiltImage;
  let proxy: CorruptingProxy;

  beforeAll(async () => {
    dir = tempDir();
    registry = await startRegistry(join(dir, 'reg'));
    client = new RegistryClient({ url: registry.url });
    image = await buildImageLayout(imageOptions('one'), join(dir, 'layout-one'));
    // Corrupts manifest and blob bodies fetched through it; everything else passes unchanged.
    proxy = await startCorruptingProxy(
      registry.port,
      (method, path) => method === 'GET' && /\/(manifests|blobs)\//.test(path),
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
    removeDir(dir);
  });

  it('pushes a layout preserving its digest; skopeo sees that digest and --raw bytes hash to it', async () => {
    const pushed = await client.pushLayout(image.layoutDir, `${registry.host}/airlock/app:v1`);
    expect(pushed).toEqual({
      registry: registry.host,
      repository: 'airlock/app',
      tag: 'v1',
      digest: image.manifestDigest,
      mediaType: MEDIA_TYPES.ociManifest,
      size: image.manifestSize,
      uploaded: 2,
      skipped: 0,
    });
    const inspect = await run('skopeo', [
      'inspect',
      '--tls-verify=false',
      `docker://${registry.host}/airlock/app@${image.manifestDigest}`,
    ]);
    expect(inspect.status, inspect.stderr).toBe(0);
    const info = JSON.parse(inspect.stdout.toString()) as { Digest: string; Layers: string[] };
    expect(info.Digest).toBe(image.manifestDigest);
    expect(info.Layers).toEqual([image.layers[0]!.digest]);
    const raw = await run('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/airlock/app:v1`,
    ]);
    expect(raw.status, raw.stderr).toBe(0);
    expect(sha256(raw.stdout)).toBe(image.manifestDigest);
    expect(
      raw.stdout.equals(readFileSync(join(image.layoutDir, 'blobs', 'sha256', image.manifestDigest.slice(7)))),
    ).toBe(true);
  });

  it('a second push uploads nothing new, and skopeo --preserve-digests from the same layout agrees on the digest', async () => {
    const again = await client.pushLayout(image.layoutDir, { repository: 'airlock/app', tag: 'v1-again' });
    expect([again.digest, again.uploaded, again.skipped]).toEqual([image.manifestDigest, 0, 2]);
    const copy = await run('skopeo', [
      'copy',
      '--insecure-policy',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${image.layoutDir}:latest`,
      `docker://${registry.host}/airlock/skopeo-pushed:v1`,
    ]);
    expect(copy.status, copy.stderr).toBe(0);
    const viaSkopeo = await client.getManifest('airlock/skopeo-pushed', 'v1');
    expect(viaSkopeo.digest).toBe(image.manifestDigest);
  });

  it('pushes by digest only when the reference has no tag, and refuses a pinned digest that is not the layout', async () => {
    const byDigest = await client.pushLayout(image.layoutDir, `airlock/untagged@${image.manifestDigest}`);
    expect(byDigest.digest).toBe(image.manifestDigest);
    expect(await client.listTags('airlock/untagged')).toEqual([]);
    await expect(client.pushLayout(image.layoutDir, `airlock/untagged@sha256:${'0'.repeat(64)}`)).rejects.toMatchObject(
      { code: 'OCI_INPUT_INVALID' },
    );
    await expect(client.pushLayout(image.layoutDir, 'registry.example:5000/airlock/app:v1')).rejects.toMatchObject({
      code: 'OCI_INVALID_REFERENCE',
    });
  });

  it('gets manifests by tag and by digest with verified digests, HEADs, lists tags and blobs', async () => {
    const byTag = await client.getManifest('airlock/app', 'v1');
    const byDigest = await client.getManifest('airlock/app', image.manifestDigest);
    expect(byTag.digest).toBe(image.manifestDigest);
    expect(byDigest.bytes.equals(byTag.bytes)).toBe(true);
    expect(byTag.mediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(await client.manifestDigest('airlock/app', 'v1')).toBe(image.manifestDigest);
    expect(await client.manifestDigest('airlock/app', 'nope')).toBeUndefined();
    expect(await client.tryGetManifest('airlock/app', 'nope')).toBeUndefined();
    await expect(client.getManifest('airlock/app', 'nope')).rejects.toMatchObject({ code: 'OCI_NOT_FOUND' });
    expect((await client.listTags('airlock/app')).sort()).toEqual(['v1', 'v1-again']);
    expect(await client.listTags('airlock/never-pushed')).toEqual([]);
    expect(await client.blobExists('airlock/app', image.configDigest)).toBe(true);
    expect(await client.blobExists('airlock/app', `sha256:${'1'.repeat(64)}`)).toBe(false);
    const config = await client.getBlob('airlock/app', image.configDigest, { expectedSize: image.configSize });
    expect(sha256(config)).toBe(image.configDigest);
  });

  it('refuses registry bytes that do not hash to the requested digest (tampering proxy)', async () => {
    const tampered = new RegistryClient({ url: proxy.url });
    await expect(tampered.getManifest('airlock/app', image.manifestDigest)).rejects.toMatchObject({
      code: 'OCI_DIGEST_MISMATCH',
    });
    // By tag there is no requested digest: the registry's own Docker-Content-Digest must match the bytes.
    await expect(tampered.getManifest('airlock/app', 'v1')).rejects.toMatchObject({ code: 'OCI_DIGEST_MISMATCH' });
    await expect(tampered.getBlob('airlock/app', image.configDigest)).rejects.toMatchObject({
      code: 'OCI_DIGEST_MISMATCH',
    });
    expect(proxy.corrupted.length).toBe(3);
    // The same requests straight to the registry succeed: the failure is the corruption, not the request.
    expect((await client.getManifest('airlock/app', 'v1')).digest).toBe(image.manifestDigest);
  });

  it('still refuses a by-digest fetch when the proxy also forges Docker-Content-Digest', async () => {
    const forger = await startCorruptingProxy(
      registry.port,
      (method, path) => method === 'GET' && path.includes('/manifests/'),
      { forgeDigestHeader: true },
    );
    try {
      const tampered = new RegistryClient({ url: forger.url });
      const err = await tampered.getManifest('airlock/app', image.manifestDigest).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'OCI_DIGEST_MISMATCH', details: { expected: image.manifestDigest } });
      expect(forger.corrupted).toHaveLength(1);
    } finally {
      await forger.close();
    }
  });

  it('fails clearly and pushes nothing when the layout lacks a blob or a blob was altered', async () => {
    const broken = await buildImageLayout(imageOptions('broken'), join(dir, 'layout-broken'));
    const layerPath = join(broken.layoutDir, 'blobs', 'sha256', broken.layers[0]!.digest.slice(7));
    const saved = readFileSync(layerPath);
    rmSync(layerPath);
    const err = await client.pushLayout(broken.layoutDir, 'airlock/broken:v1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OCI_LAYOUT_BLOB_MISSING' });
    expect((err as Error).message).toContain(broken.layers[0]!.digest);
    writeFileSync(layerPath, Buffer.concat([saved, Buffer.from('x')]));
    await expect(client.pushLayout(broken.layoutDir, 'airlock/broken:v1')).rejects.toMatchObject({
      code: 'OCI_LAYOUT_DIGEST_MISMATCH',
    });
    expect(await client.listTags('airlock/broken')).toEqual([]);
    expect(await client.blobExists('airlock/broken', broken.configDigest)).toBe(false);
    await expect(client.pushLayout(join(dir, 'no-such-layout'), 'airlock/broken:v1')).rejects.toMatchObject({
      code: 'OCI_LAYOUT_INVALID',
    });
  });

  it('surfaces the registry refusing a manifest whose blob was never uploaded (400 MANIFEST_BLOB_UNKNOWN)', async () => {
    const other = await buildImageLayout(imageOptions('orphan'), join(dir, 'layout-orphan'));
    const bytes = readFileSync(join(other.layoutDir, 'blobs', 'sha256', other.manifestDigest.slice(7)));
    const err = await client
      .putManifest('airlock/orphan', 'v1', bytes, MEDIA_TYPES.ociManifest)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OCI_HTTP', details: { status: 400 } });
    expect((err as Error).message).toContain('MANIFEST_BLOB_UNKNOWN');
  });

  it('pushes a multi-manifest layout index (children by digest, index by tag)', async () => {
    // A hand-made index layout: two images' blobs in one layout, index.json → image index → both manifests.
    const a = await buildImageLayout({ ...imageOptions('arch-a'), architecture: 'amd64' }, join(dir, 'multi-a'));
    const b = await buildImageLayout({ ...imageOptions('arch-b'), architecture: 'arm64' }, join(dir, 'multi-b'));
    const multi = join(dir, 'multi');
    mkdirSync(join(multi, 'blobs', 'sha256'), { recursive: true });
    for (const img of [a, b]) {
      for (const d of [img.manifestDigest, img.configDigest, img.layers[0]!.digest]) {
        copyFileSync(join(img.layoutDir, 'blobs', 'sha256', d.slice(7)), join(multi, 'blobs', 'sha256', d.slice(7)));
      }
    }
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: [
          { ...a.manifest, platform: { architecture: 'amd64', os: 'linux' } },
          { ...b.manifest, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
    writeFileSync(join(multi, 'blobs', 'sha256', sha256(index).slice(7)), index);
    writeFileSync(join(multi, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(multi, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: MEDIA_TYPES.ociIndex, digest: sha256(index), size: index.length }],
      }),
    );
    const pushed = await client.pushLayout(multi, 'airlock/multi:v1');
    expect([pushed.digest, pushed.mediaType, pushed.uploaded]).toEqual([sha256(index), MEDIA_TYPES.ociIndex, 4]);
    expect((await client.getManifest('airlock/multi', b.manifestDigest)).digest).toBe(b.manifestDigest);
    const raw = await run('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/airlock/multi:v1`,
    ]);
    expect(sha256(raw.stdout)).toBe(sha256(index));
  });
});

describe.skipIf(!available || !toolsAvailable('OCI registry over TLS', [opensslProblem()]))(
  'RegistryClient over https with a private CA and Basic auth',
  () => {
    let dir: string;
    let registry: RunningRegistry;
    let pki: ReturnType<typeof makePki>;
    let image: BuiltImage;
    const auth = { username: 'airlock', password: 'airlock-pw' };

    beforeAll(async () => {
      dir = tempDir();
      mkdirSync(join(dir, 'pki'));
      pki = makePki(join(dir, 'pki'));
      registry = await startRegistry(join(dir, 'reg'), { tls: pki, htpasswd: true });
      image = await buildImageLayout(imageOptions('tls'), join(dir, 'layout'));
    });
    afterAll(async () => {
      await registry?.stop();
      removeDir(dir);
    });

    it('pushes over https trusting only the given CA, with Basic credentials; skopeo agrees', async () => {
      const client = new RegistryClient({ url: registry.url, ca: readFileSync(pki.caFile), auth });
      await client.ping();
      const pushed = await client.pushLayout(image.layoutDir, `${registry.host}/secure/app:v1`);
      expect(pushed.digest).toBe(image.manifestDigest);
      const certDir = join(dir, 'certs');
      mkdirSync(certDir);
      copyFileSync(pki.caFile, join(certDir, 'ca.crt'));
      const r = await run('skopeo', [
        'inspect',
        '--raw',
        '--cert-dir',
        certDir,
        '--creds',
        'airlock:airlock-pw',
        `docker://${registry.host}/secure/app:v1`,
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(sha256(r.stdout)).toBe(image.manifestDigest);
    });

    it('refuses an untrusted certificate, missing credentials and a wrong password', async () => {
      const noCa = new RegistryClient({ url: registry.url, auth });
      const err = await noCa.ping().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'OCI_HTTP' });
      expect(String((err as Error).message)).toMatch(/certificate/i);
      await expect(
        new RegistryClient({ url: registry.url, ca: readFileSync(pki.caFile) }).ping(),
      ).rejects.toMatchObject({ code: 'OCI_UNAUTHORIZED' });
      const wrong = new RegistryClient({
        url: registry.url,
        ca: readFileSync(pki.caFile),
        auth: { ...auth, password: 'nope' },
      });
      await expect(wrong.pushLayout(image.layoutDir, 'secure/app:v2')).rejects.toMatchObject({
        code: 'OCI_UNAUTHORIZED',
      });
    });
  },
);
