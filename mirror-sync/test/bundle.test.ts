import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validatorFor } from '@airlock/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  fromHex,
  INTOTO_PAYLOAD_TYPE,
  parseDsseEnvelope,
  parseStatement,
  toNixBase32,
  verifyDsse,
} from '@airlock/core';
import {
  compareEntries,
  computeSnapshotId,
  readSyncState,
  syncToBundle,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
  type SyncError,
  type SyncOptions,
  type TransferManifest,
} from '../src/index.js';
import {
  loopbackFetch,
  makeNpmTarball,
  makeWheel,
  readTar,
  servePackage,
  sha256,
  startUpstream,
  tarballPath,
  type Upstream,
} from '@airlock/testkit';
import { testSigner } from './helpers/signer.js';

let up: Upstream;
let dir: string;
let inputs: SyncOptions['inputs'];
const signer = testSigner();

const sbom = async (m: TransferManifest): Promise<object> => ({
  bomFormat: 'CycloneDX',
  specVersion: '1.5',
  version: 1,
  metadata: { timestamp: m.snapshot.createdAt },
  components: m.entries.map((e) => ({
    type: 'library',
    name: e.name,
    ...(e.version ? { version: e.version } : {}),
    purl: e.purl,
    hashes: [{ alg: 'SHA-256', content: e.digests.sha256 }],
  })),
});

beforeAll(async () => {
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-bundle-'));
  const w = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  // npm: a scoped package and its dependency
  const dep = await makeNpmTarball({ name: 'left-pad', version: '1.3.0', main: 'index.js' });
  const scoped = await makeNpmTarball({
    name: '@acme/util',
    version: '2.1.0',
    main: 'index.js',
    dependencies: { 'left-pad': '^1.3.0' },
  });
  for (const p of [dep, scoped]) servePackage(up, p);
  const lock = {
    name: 'app',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'app', version: '1.0.0', dependencies: { '@acme/util': '2.1.0' } },
      'node_modules/@acme/util': {
        version: '2.1.0',
        resolved: `${up.url}${tarballPath(scoped)}`,
        integrity: scoped.integrity,
        dependencies: { 'left-pad': '^1.3.0' },
      },
      'node_modules/left-pad': { version: '1.3.0', resolved: `${up.url}${tarballPath(dep)}`, integrity: dep.integrity },
    },
  };

  // PyPI: one wheel with PEP 658 metadata
  const whl = makeWheel('tiny', '0.1.0');
  up.file(`/files/${whl.filename}`, whl.wheel);
  up.file(`/files/${whl.filename}.metadata`, whl.metadata);
  up.file(
    '/simple/tiny/',
    JSON.stringify({
      meta: { 'api-version': '1.0' },
      name: 'tiny',
      files: [
        {
          filename: whl.filename,
          url: `/files/${whl.filename}`,
          hashes: { sha256: sha256(whl.wheel) },
          'core-metadata': { sha256: sha256(whl.metadata) },
        },
      ],
    }),
    'application/vnd.pypi.simple.v1+json',
  );

  // Bazel, Nix, generic: plain files
  const archive = Buffer.from('pretend this is greet-1.0.tar.gz\n');
  const nixSrc = Buffer.from('pretend this is hello-2.12.1.tar.gz\n');
  const patch = Buffer.from('--- a/x\n+++ b/x\n');
  const tool = Buffer.from('#!/bin/sh\necho tool\n');
  up.file('/gh/example/greet/archive/v1.0.tar.gz', archive);
  up.file('/gnu/hello/hello-2.12.1.tar.gz', nixSrc);
  up.file('/patches/fix.patch', patch);
  up.file('/dl/tool-1.0', tool);
  up.file('/mirror2/tool-1.0', tool);
  const drv = {
    '/nix/store/0ry0wq7s3mm4ijhh0jnjqmg7vpbghcn4-hello-2.12.1.tar.gz.drv': {
      outputs: {
        out: {
          path: '/nix/store/sk4ga2wy0b02k7pnzakwq4r3jdknda4g-hello-2.12.1.tar.gz',
          hashAlgo: 'sha256',
          hash: sha256(nixSrc),
        },
      },
      inputSrcs: [],
      inputDrvs: {},
      system: 'x86_64-linux',
      builder: 'builtin:fetchurl',
      args: [],
      env: {
        name: 'hello-2.12.1.tar.gz',
        outputHash: `sha256-${Buffer.from(sha256(nixSrc), 'hex').toString('base64')}`,
        outputHashAlgo: '',
        outputHashMode: 'flat',
        urls: `${up.url}/gnu/hello/hello-2.12.1.tar.gz`,
      },
    },
    '/nix/store/wz0zyc0a1r5hwjyr7jkc10mwvcpxyb1v-hello-2.12.1.drv': {
      outputs: { out: { path: '/nix/store/xq4mhx6f4fg7kx5k1x1v4p5m5bn8ikl1-hello-2.12.1' } },
      inputSrcs: [],
      inputDrvs: {},
      system: 'x86_64-linux',
      builder: '/bin/sh',
      args: [],
      env: { name: 'hello-2.12.1' },
    },
  };

  inputs = [
    { path: w('package-lock.json', JSON.stringify(lock, null, 2)) },
    { path: w('requirements.txt', `tiny==0.1.0 --hash=sha256:${sha256(whl.wheel)}\n`) },
    {
      path: w(
        'bazel.yaml',
        `- name: greet\n  urls: ["${up.url}/gh/example/greet/archive/v1.0.tar.gz"]\n  sha256: ${sha256(archive)}\n  strip_prefix: greet-1.0\n`,
      ),
      kind: 'bazel-fetch',
    },
    { path: w('drv.json', JSON.stringify(drv, null, 2)) },
    {
      path: w(
        'nix-fetch.json',
        JSON.stringify([{ url: `${up.url}/patches/fix.patch`, hash: toNixBase32(fromHex(sha256(patch))) }]),
      ),
      kind: 'nix-fetch',
    },
    {
      path: w(
        'files.json',
        JSON.stringify([
          { url: `${up.url}/dl/tool-1.0`, sha256: sha256(tool) },
          { url: `${up.url}/mirror2/tool-1.0`, sha256: sha256(tool), name: 'tool-copy' },
        ]),
      ),
      kind: 'generic',
    },
  ];
});
afterAll(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

const run = (out: string, extra: Partial<SyncOptions> = {}): ReturnType<typeof syncToBundle> =>
  syncToBundle({
    inputs,
    out: join(dir, out),
    createdAt: '2026-11-28T15:00:00Z',
    quiet: true,
    signer,
    sbom,
    pypiIndex: `${up.url}/simple/`,
    fetch: loopbackFetch,
    ...extra,
  });

// As the importer does: the repository's one loader (@airlock/schemas).
const schemaValidator = () => validatorFor('transfer-manifest.v1');

describe('transfer bundle', () => {
  it('holds exactly manifest.json, the attestations and every blob, with fixed headers', async () => {
    const r = await run('layout.tar');
    const tarEntries = await readTar(r.bundlePath);
    const blobNames = r.manifest.blobs.map((b) => `blobs/sha256/${b.sha256}`);
    expect(tarEntries.map((e) => e.name)).toEqual([
      'manifest.json',
      'attestations/manifest.sigstore.json',
      'attestations/sbom.cdx.json',
      'attestations/sbom.sigstore.json',
      ...blobNames,
    ]);
    expect(blobNames).toEqual([...blobNames].sort());
    for (const e of tarEntries)
      expect({ mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, type: e.type }).toEqual({
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        type: 'file',
      });
    for (const b of r.manifest.blobs) {
      const e = tarEntries.find((x) => x.name === `blobs/sha256/${b.sha256}`)!;
      expect(sha256(e.body)).toBe(b.sha256);
      expect(e.size).toBe(b.size);
    }
    const manifestBody = tarEntries[0]!.body;
    expect(manifestBody.equals(canonicalBytes(r.manifest))).toBe(true); // RFC 8785 form on disk
    expect(JSON.parse(manifestBody.toString('utf8'))).toEqual(r.manifest);
    expect(r.bytes).toBe(readFileSync(r.bundlePath).length);
    expect(r.bundleSha256).toBe(sha256(readFileSync(r.bundlePath)));
    expect(JSON.parse(JSON.stringify(r))).toEqual(r); // --json-serialisable
  });

  it('produces a manifest that validates against the schema, with a recomputable snapshot id', async () => {
    const r = await run('schema.tar');
    const validate = schemaValidator();
    expect(validate(r.manifest), JSON.stringify(validate.errors)).toBe(true);
    const m = r.manifest;
    expect(new Set(m.entries.map((e) => e.ecosystem))).toEqual(new Set(['npm', 'pypi', 'bazel', 'nix', 'generic']));
    expect([...m.entries].sort(compareEntries)).toEqual(m.entries);
    expect(m.snapshot).toMatchObject({
      sequence: 1,
      previous: null,
      createdAt: '2026-11-28T15:00:00Z',
      producer: { name: 'airlock-mirror-sync' },
    });
    expect(m.snapshot.id).toBe(computeSnapshotId({ ...m.snapshot, entries: m.entries, blobs: m.blobs }));
    // every entry's blob (and the PEP 658 metadata blob) is listed, and nothing else
    const referenced = new Set(
      m.entries.flatMap((e) => [
        e.digests.sha256,
        ...(e.ecosystem === 'pypi' && e.metadata.coreMetadata ? [e.metadata.coreMetadata.sha256] : []),
      ]),
    );
    expect(new Set(m.blobs.map((b) => b.sha256))).toEqual(referenced);
    expect(m.entries.filter((e) => e.ecosystem === 'generic').map((e) => e.name)).toEqual(['tool-1.0', 'tool-copy']);
    const nix = m.entries.find((e) => e.ecosystem === 'nix' && e.name === 'hello-2.12.1.tar.gz')!;
    expect(nix.metadata).toMatchObject({
      outputHashAlgo: 'sha256',
      outputHashMode: 'flat',
      nixBase32: toNixBase32(fromHex(nix.digests.sha256)),
    });

    // …and the schema is not a rubber stamp
    for (const tamper of [
      (x: TransferManifest) => void ((x.entries[0] as { filename: string }).filename = '../../etc/passwd'),
      (x: TransferManifest) => void ((x as unknown as Record<string, unknown>).extra = 1),
      (x: TransferManifest) => void ((x.blobs[0] as { sha256: string }).sha256 = 'A'.repeat(64)),
      (x: TransferManifest) =>
        void ((x.entries.find((e) => e.ecosystem === 'bazel')! as { version: string | null }).version = '1.0'),
      (x: TransferManifest) =>
        void ((x.entries.find((e) => e.ecosystem === 'npm')!.metadata as unknown as Record<string, unknown>).shasum =
          'nope'),
    ]) {
      const copy = structuredClone(r.manifest);
      tamper(copy);
      expect(validate(copy)).toBe(false);
    }
  });

  it('signs an in-toto statement whose subjects are manifest.json and every blob; the SBOM is attested too', async () => {
    const r = await run('signed.tar');
    const files = new Map((await readTar(r.bundlePath)).map((e) => [e.name, e.body]));
    const bundle = JSON.parse(files.get('attestations/manifest.sigstore.json')!.toString('utf8')) as {
      dsseEnvelope: unknown;
    };
    const payload = verifyDsse(parseDsseEnvelope(bundle.dsseEnvelope), signer.publicKey, INTOTO_PAYLOAD_TYPE);
    const st = parseStatement(payload);
    expect(st.predicateType).toBe(TRANSFER_MANIFEST_PREDICATE_TYPE);
    expect(st.subject).toEqual([
      { name: 'manifest.json', digest: { sha256: sha256(files.get('manifest.json')!) } },
      ...r.manifest.blobs.map((b) => ({ name: `blobs/sha256/${b.sha256}`, digest: { sha256: b.sha256 } })),
    ]);
    for (const name of files.keys())
      if (name.startsWith('blobs/'))
        expect(st.subject.some((s) => s.name === name && s.digest.sha256 === sha256(files.get(name)!))).toBe(true);
    const pred = st.predicate as Record<string, unknown>;
    expect(pred.snapshot).toEqual({ id: r.snapshotId, sequence: 1, previous: null, createdAt: '2026-11-28T15:00:00Z' });
    expect(pred.entryCount).toBe(r.entries);
    expect(pred.inputs).toEqual(
      inputs.map((i) => ({
        kind: expect.any(String),
        name: i.path.slice(i.path.lastIndexOf('/') + 1),
        digest: { sha256: sha256(readFileSync(i.path)) },
      })),
    );

    const sbomBody = files.get('attestations/sbom.cdx.json')!;
    expect(JSON.parse(sbomBody.toString('utf8')).bomFormat).toBe('CycloneDX');
    const sbomBundle = JSON.parse(files.get('attestations/sbom.sigstore.json')!.toString('utf8')) as {
      dsseEnvelope: unknown;
    };
    const sbomSt = parseStatement(
      verifyDsse(parseDsseEnvelope(sbomBundle.dsseEnvelope), signer.publicKey, INTOTO_PAYLOAD_TYPE),
    );
    expect(sbomSt.subject).toEqual([{ name: 'attestations/sbom.cdx.json', digest: { sha256: sha256(sbomBody) } }]);
  });

  it('is byte-for-byte deterministic for the same inputs and createdAt', async () => {
    const a = await run('det-a.tar');
    const b = await run('det-b.tar');
    expect(sha256(readFileSync(a.bundlePath))).toBe(sha256(readFileSync(b.bundlePath)));
    expect(a.bundleSha256).toBe(b.bundleSha256);
    const c = await run('det-c.tar', { createdAt: '2026-11-28T15:00:01Z' });
    expect(c.bundleSha256).not.toBe(a.bundleSha256);
    expect(c.snapshotId).not.toBe(a.snapshotId);
  });

  it('chains snapshots through the state file and refuses options that would fork the chain', async () => {
    const state = join(dir, 'state.json');
    const first = await run('seq1.tar', { state });
    expect([first.sequence, first.previous]).toEqual([1, null]);
    expect(await readSyncState(state)).toEqual({
      version: 1,
      snapshotId: first.snapshotId,
      sequence: 1,
      createdAt: '2026-11-28T15:00:00Z',
      bundleSha256: first.bundleSha256,
    });
    const second = await run('seq2.tar', { state, createdAt: '2026-11-29T15:00:00Z' });
    expect(second.manifest.snapshot).toMatchObject({ sequence: 2, previous: first.snapshotId });
    expect((await readSyncState(state))!.snapshotId).toBe(second.snapshotId);

    const before = readFileSync(state, 'utf8');
    const conflict = (await run('seq-bad.tar', { state, sequence: 2, previous: first.snapshotId }).catch(
      (e: unknown) => e,
    )) as SyncError;
    expect(conflict.code).toBe('SYNC_STATE_INVALID');
    // a failing run leaves the state (and the chain) untouched
    const badList = join(dir, 'bad.json');
    writeFileSync(badList, JSON.stringify([{ url: `${up.url}/dl/tool-1.0`, sha256: 'a'.repeat(64) }]));
    const failed = (await syncToBundle({
      inputs: [{ path: badList, kind: 'generic' }],
      out: join(dir, 'seq3.tar'),
      state,
      quiet: true,
      fetch: loopbackFetch,
    }).catch((e: unknown) => e)) as SyncError;
    expect(failed.code).toBe('SYNC_ENTRIES_FAILED');
    expect(readFileSync(state, 'utf8')).toBe(before);
    expect(existsSync(join(dir, 'seq3.tar'))).toBe(false);

    // explicit chain position without a state file
    const explicit = await run('explicit.tar', { sequence: 3, previous: second.snapshotId });
    expect(explicit.manifest.snapshot).toMatchObject({ sequence: 3, previous: second.snapshotId });
    const missingPrev = (await run('x.tar', { sequence: 3 }).catch((e: unknown) => e)) as SyncError;
    expect(missingPrev.code).toBe('SYNC_OPTIONS_INVALID');
    const corrupt = join(dir, 'corrupt-state.json');
    writeFileSync(corrupt, JSON.stringify({ version: 1, snapshotId: 'nope', sequence: 0 }));
    expect(((await run('y.tar', { state: corrupt }).catch((e: unknown) => e)) as SyncError).code).toBe(
      'SYNC_STATE_INVALID',
    );
  });

  it('without a signer writes no manifest attestation and says so', async () => {
    const r = await run('unsigned.tar', { signer: undefined, sbom: undefined });
    expect(r.signed).toBe(false);
    expect((await readTar(r.bundlePath, false)).filter((e) => !e.name.startsWith('blobs/')).map((e) => e.name)).toEqual(
      ['manifest.json'],
    );
    expect(r.notes.join('\n')).toMatch(/no signer/);
  });

  it('a signer failure fails the run and writes nothing', async () => {
    const out = 'sign-fail.tar';
    const err = (await run(out, {
      signer: { attest: async () => Promise.reject(new Error('fulcio unreachable')) },
    }).catch((e: unknown) => e)) as SyncError;
    expect(err.code).toBe('SYNC_SIGN_FAILED');
    expect(err.message).toContain('fulcio unreachable');
    expect(existsSync(join(dir, out))).toBe(false);
  });
});
