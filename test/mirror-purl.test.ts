/**
 * Issue 7: one purl per package everywhere. The same packages — an npm scoped package, a PyPI wheel, a generic
 * file — synced from a loopback upstream must carry byte-identical purls in the transfer manifest, in the
 * snapshot SBOM of the bundle, and in the provenance (through the runner's own functions: the mirror blob lookup
 * → resolveMirrorFetches → resolvedDependencies, and the build SBOM). Each is also the canonical packageurl-js
 * form, so a purl parsed and written again anywhere does not change.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { startMirrorServer, type RunningMirrorServer } from '@airlock/mirror';
import { syncToBundle, type TransferManifest } from '@airlock/mirror-sync';
import { resolveMirrorFetches, type MirrorEndpoint } from '@airlock/runner';
import { canonicalPurl, sbomFromManifest } from '@airlock/sbom';
import { resolvedDependencies } from '../runner/src/provenance.js';
import {
  loopbackFetch,
  makeNpmTarball,
  makeWheel,
  readTar,
  servePackage,
  startUpstream,
  tarballPath,
  type Upstream,
} from '@airlock/testkit';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const GENERIC = Buffer.from('a generic file, named by its digest\n'.repeat(50));
const WHEEL = makeWheel('purl_fixture', '2.1.0');

let root: string;
let up: Upstream;
let store: MirrorStore | undefined;
let server: RunningMirrorServer | undefined;

/** The three purls of each document, by entry name. */
type Purls = Record<string, string>;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-purl-'));
  up = await startUpstream();
  const scoped = await makeNpmTarball({ name: '@purl-scope/pkg', version: '1.0.0-rc.1' });
  servePackage(up, scoped);
  up.route('/simple/purl-fixture/', (_req, res) => {
    res.setHeader('content-type', 'application/vnd.pypi.simple.v1+json');
    res.end(
      JSON.stringify({
        meta: { 'api-version': '1.1' },
        name: 'purl-fixture',
        versions: ['2.1.0'],
        files: [
          {
            filename: WHEEL.filename,
            url: `${up.url}/files/${WHEEL.filename}`,
            hashes: { sha256: sha256(WHEEL.wheel) },
          },
        ],
      }),
    );
  });
  up.file(`/files/${WHEEL.filename}`, WHEEL.wheel);
  up.file('/files/tool-1.0+local.tar.gz', GENERIC);
  writeFileSync(
    join(root, 'package-lock.json'),
    JSON.stringify({
      name: 'app',
      lockfileVersion: 3,
      packages: {
        '': { name: 'app' },
        'node_modules/@purl-scope/pkg': {
          version: scoped.version,
          resolved: `${up.url}${tarballPath(scoped)}`,
          integrity: scoped.integrity,
        },
      },
    }),
  );
  writeFileSync(join(root, 'requirements.txt'), `purl_fixture==2.1.0 --hash=sha256:${sha256(WHEEL.wheel)}\n`);
  writeFileSync(
    join(root, 'list.json'),
    JSON.stringify([{ url: `${up.url}/files/tool-1.0+local.tar.gz`, sha256: sha256(GENERIC) }]),
  );
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await up?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('one purl per package: transfer manifest = snapshot SBOM = provenance', () => {
  it('an npm scoped package, a pypi wheel and a generic file get byte-identical canonical purls in all three', async () => {
    const out = join(root, 'b.tar');
    const result = await syncToBundle({
      inputs: [
        { path: join(root, 'package-lock.json'), kind: 'npm-lock' },
        { path: join(root, 'requirements.txt'), kind: 'requirements' },
        { path: join(root, 'list.json'), kind: 'generic' },
      ],
      out,
      pypiIndex: `${up.url}/simple`,
      progress: 'none',
      fetch: loopbackFetch,
      sbom: async (m) => sbomFromManifest(m),
    });
    const manifest: TransferManifest = result.manifest;

    // 1. The transfer manifest.
    const fromManifest: Purls = Object.fromEntries(manifest.entries.map((e) => [e.name, e.purl]));
    expect(fromManifest).toEqual({
      '@purl-scope/pkg': 'pkg:npm/%40purl-scope/pkg@1.0.0-rc.1',
      'purl-fixture': `pkg:pypi/purl-fixture@2.1.0?file_name=${WHEEL.filename}`,
      'tool-1.0+local.tar.gz': `pkg:generic/tool-1.0%2Blocal.tar.gz?checksum=sha256%3A${sha256(GENERIC)}&download_url=${encodeURIComponent(`${up.url}/files/tool-1.0+local.tar.gz`)}`,
    });
    for (const p of Object.values(fromManifest)) expect(canonicalPurl(p)).toBe(p);

    // 2. The snapshot SBOM inside the bundle.
    const sbomFile = (await readTar(out)).find((e) => e.name === 'attestations/sbom.cdx.json')!;
    const sbom = JSON.parse(sbomFile.body.toString('utf8')) as {
      components: { name: string; group?: string; purl: string }[];
    };
    const fromSbom: Purls = Object.fromEntries(
      sbom.components.map((c) => [c.group ? `${c.group}/${c.name}` : c.name, c.purl]),
    );
    expect(fromSbom).toEqual(fromManifest);

    // 3. The provenance: publish the snapshot, serve it, and let the runner's functions look the blobs up.
    store = await MirrorStore.open(join(root, 'store'), { fs: { fsync: false } });
    const session = await store.beginImport();
    const tar = await readTar(out);
    for (const b of manifest.blobs) {
      const body = tar.find((e) => e.name === `blobs/sha256/${b.sha256}`)!.body;
      await session.put(Readable.from([body]), { sha256: b.sha256, size: b.size });
    }
    await session.commit({ manifest: { ...manifest }, signedBundles: {}, entries: manifest.entries });
    server = await startMirrorServer({ store, host: '127.0.0.1', port: 0 });
    const base = server.url;
    const endpoint = {
      get: async (path: string) => {
        const r = await fetch(`${base}${path}`);
        return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
      },
    } as unknown as MirrorEndpoint;
    const fetches = manifest.entries.map((e) => ({ path: `/x/${e.filename}`, sha256: e.digests.sha256, size: e.size }));
    const resolved = await resolveMirrorFetches(endpoint, fetches);
    const deps = resolvedDependencies({
      source: {
        repo: 'r',
        repoUri: 'git+file:///r',
        commit: 'c'.repeat(40),
        gitTree: 't'.repeat(40),
        treeSha256: '0'.repeat(64),
        commitTime: 0,
        dir: '/r',
      },
      mirrorDependencies: resolved.dependencies,
      toolchain: [],
      spec: {} as Parameters<typeof resolvedDependencies>[0]['spec'],
      ...(resolved.snapshotId ? { mirrorSnapshotId: resolved.snapshotId } : {}),
    });
    const fromProvenance: Purls = Object.fromEntries(
      deps.filter((d) => d.annotations?.role === 'mirror-blob').map((d) => [d.name!, d.uri!]),
    );
    expect(fromProvenance).toEqual(fromManifest);
    expect(readFileSync(out).length).toBe(result.bytes);
  }, 60_000);
});
