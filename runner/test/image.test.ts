/**
 * The OCI image step of runBuild against a real docker-registry 2.8.2 on loopback: a real sandboxed build, a
 * one-layer image pushed with the digest the runner reports, provenance + SBOM + cosign signature signed by a real
 * P-256 key (AirlockSigner with a KeySigner; no CA or log at this level) and attached as `.sig`, `.att` and Sigstore
 * bundle referrers with the `sha256-<hex>` fallback index; reproducibility of the digest; failures (registry down,
 * wrong credentials, a signer that cannot sign blobs, bad image settings) with their codes and exit codes.
 */
import { createHash, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findMatchingSubject,
  INTOTO_PAYLOAD_TYPE,
  parseStatement,
  verifyDsse,
  type DsseEnvelope,
  type Statement,
} from '@airlock/core';
import {
  MEDIA_TYPES,
  readCosignAttestations,
  readCosignSignatures,
  readSigstoreBundles,
  RegistryClient,
  type ImageIndex,
  type ImageManifest,
} from '@airlock/oci';
import { CYCLONEDX_PREDICATE_TYPE } from '@airlock/sbom';
import { AirlockSigner, KeySigner } from '@airlock/sign';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import {
  checkImageRequest,
  cosignMaterialFromBundle,
  IMAGE_FILES,
  registryCredentialsFor,
  selectImageFiles,
} from '../src/image.js';
import { SLSA_PROVENANCE_V1 } from '../src/provenance.js';
import { runBuild, type AttestationSigner, type RunOptions, type RunResult } from '../src/run.js';
import { loadSpec, type BuildSpec } from '../src/spec.js';
import {
  HTPASSWD_PASSWORD,
  HTPASSWD_USER,
  registryJson,
  registryProblem,
  startRegistry,
  type RunningRegistry,
} from '@airlock/testkit';
import { bwrapProblem, git, gitProblem, rmrf, straceProblem, tempDir, toolsAvailable } from './helpers.js';

const BUILDER_ID = 'https://airlock.dev/runners/test/v1';
const KEY_HINT = 'runner-image-test';
const COMMIT_TIME = '2024-01-02T03:04:05Z';
const dir = tempDir('image');
afterAll(() => rmrf(dir));

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const airlockSigner = new AirlockSigner({
  fulcioUrl: 'http://127.0.0.1:1',
  rekorUrl: 'http://127.0.0.1:1',
  keySigner: new KeySigner(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), KEY_HINT),
  skipTlog: true,
});

async function failure(p: Promise<unknown>): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; details?: Record<string, unknown> };
  }
  throw new Error('expected the run to fail');
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const output = (name: string, executable = false) => ({ name, sha256: 'a'.repeat(64), size: 1, executable });

describe('image settings (no tools needed)', () => {
  const outputs = [
    output('bin/hello', true),
    output('bin/helper'),
    output('share/a.txt'),
    output('share/b.md'),
    output('notes.txt'),
  ];

  it('puts every output under /app by default, keeping the build’s executable bit', () => {
    const files = selectImageFiles({ type: 'oci', repository: 'r.example/x' }, outputs);
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      ['/app/bin/hello', '0755'],
      ['/app/bin/helper', '0644'],
      ['/app/share/a.txt', '0644'],
      ['/app/share/b.md', '0644'],
      ['/app/notes.txt', '0644'],
    ]);
  });

  it('selects by directory name and glob, sets modes by pattern, and honours path', () => {
    const files = selectImageFiles(
      {
        type: 'oci',
        repository: 'r.example/x',
        path: '/opt/tool',
        files: ['bin', 'share/*.txt'],
        executable: ['bin/*'],
      },
      outputs,
    );
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      ['/opt/tool/bin/hello', '0755'],
      ['/opt/tool/bin/helper', '0755'],
      ['/opt/tool/share/a.txt', '0644'],
    ]);
    expect(
      selectImageFiles({ type: 'oci', repository: 'r.example/x', path: '/', files: ['notes.txt'] }, outputs).map(
        (f) => f.path,
      ),
    ).toEqual(['/notes.txt']);
  });

  it('refuses patterns that match nothing, naming each', () => {
    let err: (Error & { code?: string }) | undefined;
    try {
      selectImageFiles(
        { type: 'oci', repository: 'r.example/x', files: ['bin', 'lib/**'], executable: ['share/*'] },
        outputs,
      );
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe('RUNNER_SPEC_INVALID');
    expect(err?.message).toMatch(/image\.files\[1\] 'lib\/\*\*' matches no declared output/);
    expect(err?.message).toMatch(/image\.executable\[0\] 'share\/\*' matches no file of the image/);
  });

  it('validates the image part of the spec with field-named errors', () => {
    const base = {
      source: { repo: '.', commit: 'c'.repeat(40) },
      builder: { type: 'command', argv: ['true'] },
      outputs: ['x'],
    };
    for (const [image, pattern] of [
      [{ type: 'oci', repository: 'r.example/x', tag: 'sha256-abc.sig' }, /image\.tag: .*reserved/],
      [{ type: 'oci', repository: 'r.example/x', path: 'app' }, /image\.path: must be an absolute/],
      [{ type: 'oci', repository: 'r.example/x', workingDir: '/a/../b' }, /image\.workingDir: must be an absolute/],
      [{ type: 'oci', repository: 'r.example/x', files: ['../x'] }, /image\.files\[0\]/],
      [{ type: 'oci', repository: 'r.example/x', entrypoint: [] }, /image\.entrypoint/],
      [{ type: 'oci', repository: 'r.example/x', user: 'root' }, /image\.user: unknown field/],
    ] as const) {
      let err: (Error & { code?: string }) | undefined;
      try {
        loadSpec({ ...base, image });
      } catch (e) {
        err = e as Error & { code?: string };
      }
      expect(err?.code, JSON.stringify(image)).toBe('RUNNER_SPEC_INVALID');
      expect(err?.message).toMatch(pattern);
    }
    expect(
      loadSpec({
        ...base,
        image: {
          type: 'oci',
          repository: 'r.example/x',
          tag: 'v1.2',
          path: '/',
          entrypoint: ['/x'],
          workingDir: '/',
          files: ['x'],
          executable: ['x'],
        },
      }).spec.image?.tag,
    ).toBe('v1.2');
  });

  it('refuses before building: a repository without registry host, and a signer that cannot sign blobs', async () => {
    const spec = (repository: string): BuildSpec => ({
      source: { repo: dir, commit: 'c'.repeat(40) },
      builder: { type: 'command', argv: ['true'] },
      outputs: ['x'],
      image: { type: 'oci', repository },
    });
    const out = join(dir, 'never-made');
    const noHost = await failure(runBuild(spec('team/app'), { outDir: out, builderId: BUILDER_ID }));
    expect(noHost.code).toBe('RUNNER_SPEC_INVALID');
    expect(noHost.message).toMatch(/does not name a registry/);
    const attestOnly: AttestationSigner = { attest: (s) => airlockSigner.attest(s) };
    const noBlob = await failure(
      runBuild(spec('127.0.0.1:5000/team/app'), { outDir: out, builderId: BUILDER_ID, signer: attestOnly }),
    );
    expect(noBlob.code).toBe('RUNNER_SIGNING_FAILED');
    expect(noBlob.message).toMatch(/cannot sign blobs/);
    expect(exitCodeFor(noBlob)).toBe(EXIT_CODES.SIGNING_FAILED);
    const halfCreds = await failure(
      runBuild(spec('127.0.0.1:5000/team/app'), { outDir: out, builderId: BUILDER_ID, registry: { username: 'u' } }),
    );
    expect(halfCreds.code).toBe('RUNNER_SPEC_INVALID');
    // Nothing ran: the output directory was never created.
    expect(existsSync(out)).toBe(false);
  });

  it('binds registry credentials to the operator-configured hosts: another host gets none, and is refused (exit 2)', () => {
    const registry = { username: 'ci', password: 'pw-123', hosts: ['registry.internal:5000', 'LOCALHOST:5001'] };
    expect(registryCredentialsFor('registry.internal:5000', registry)).toEqual({ username: 'ci', password: 'pw-123' });
    expect(registryCredentialsFor('localhost:5001', registry)).toEqual({ username: 'ci', password: 'pw-123' });
    for (const host of [
      'registry.internal',
      'registry.internal:5001',
      'evil.example:5000',
      'registry.internal.evil:5000',
    ])
      expect(registryCredentialsFor(host, registry), host).toBeUndefined();
    expect(registryCredentialsFor('registry.internal:5000', { hosts: ['registry.internal:5000'] })).toBeUndefined();
    const img = (repository: string) => ({ type: 'oci' as const, repository });
    const commit = 'a'.repeat(40);
    expect(checkImageRequest(img('registry.internal:5000/team/app'), commit, { registry }).registry).toBe(
      'registry.internal:5000',
    );
    for (const repository of ['evil.example:5000/team/app', 'registry.internal/team/app']) {
      let err: unknown;
      try {
        checkImageRequest(img(repository), commit, { registry });
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code, repository).toBe('RUNNER_SPEC_INVALID');
      expect(exitCodeFor(err)).toBe(EXIT_CODES.SPEC_ERROR);
      expect((err as Error).message).toContain('is not one of the registries the operator configured');
      expect((err as Error).message).not.toContain('pw-123');
    }
    // Credentials with no host to bind them to are refused rather than sent wherever the spec points.
    expect(() =>
      checkImageRequest(img('registry.internal:5000/team/app'), commit, {
        registry: { username: 'ci', password: 'pw' },
      }),
    ).toThrow(/registry credentials need the registry host/);
  });

  it('derives cosign annotations from a Sigstore bundle (certificate PEM, Rekor bundle with hex logID)', () => {
    const m = cosignMaterialFromBundle({
      verificationMaterial: {
        certificate: { rawBytes: Buffer.from('not really DER').toString('base64') },
        tlogEntries: [
          {
            logIndex: '42',
            logId: { keyId: Buffer.from([0xc0, 0xff, 0xee]).toString('base64') },
            integratedTime: '1700000000',
            inclusionPromise: { signedEntryTimestamp: 'U0VU' },
            canonicalizedBody: 'Ym9keQ==',
          },
        ],
      },
    });
    expect(m.certificate).toBe(
      `-----BEGIN CERTIFICATE-----\n${Buffer.from('not really DER').toString('base64')}\n-----END CERTIFICATE-----\n`,
    );
    expect(m.bundle).toEqual({
      SignedEntryTimestamp: 'U0VU',
      Payload: { body: 'Ym9keQ==', integratedTime: 1700000000, logIndex: 42, logID: 'c0ffee' },
    });
    expect(cosignMaterialFromBundle({ verificationMaterial: { publicKey: { hint: 'k' }, tlogEntries: [] } })).toEqual(
      {},
    );
  });
});

const enabled = toolsAvailable('runner image tests (bwrap sandbox, strace, git, docker-registry)', [
  bwrapProblem(),
  straceProblem(),
  gitProblem(),
  registryProblem(),
]);

describe.runIf(enabled)('runBuild with an OCI image output, pushed to docker-registry 2.8.2', () => {
  let registry: RunningRegistry;
  let authRegistry: RunningRegistry;
  let repo: string;
  let commit: string;
  let n = 0;
  const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
    outDir: join(dir, `out-${++n}`),
    workRoot: join(dir, 'work'),
    builderId: BUILDER_ID,
    registry: { plainHttp: true },
    ...extra,
  });
  const blobCalls: Buffer[] = [];
  const signer: AttestationSigner = {
    attest: (s) => airlockSigner.attest(s),
    signBlob: (b) => (blobCalls.push(b), airlockSigner.signBlob(b)),
  };
  const spec = (host: string, extra: Record<string, unknown> = {}): BuildSpec => ({
    source: { repo, commit },
    builder: { type: 'command', argv: ['sh', 'build.sh'] },
    outputs: ['bin/hello', 'share', 'notes.txt'],
    image: {
      type: 'oci',
      repository: `${host}/airlock/hello`,
      files: ['bin', 'share/*.txt'],
      executable: ['bin/*'],
      entrypoint: ['/app/bin/hello'],
      ...extra,
    },
  });

  beforeAll(async () => {
    registry = await startRegistry(join(dir, 'registry'));
    authRegistry = await startRegistry(join(dir, 'registry-auth'), { htpasswd: true });
    const work = join(dir, 'src');
    mkdirSync(work, { recursive: true });
    writeFileSync(
      join(work, 'build.sh'),
      [
        '#!/bin/sh',
        'set -eu',
        'mkdir -p "$AIRLOCK_OUTPUT_DIR/bin" "$AIRLOCK_OUTPUT_DIR/share"',
        // Not executable in the build: the spec's `executable` decides the image mode.
        'printf "#!/bin/sh\\necho hello from the image\\n" > "$AIRLOCK_OUTPUT_DIR/bin/hello"',
        'echo "greetings" > "$AIRLOCK_OUTPUT_DIR/share/greeting.txt"',
        'echo "# not in the image" > "$AIRLOCK_OUTPUT_DIR/share/readme.md"',
        'date -u -d "@$SOURCE_DATE_EPOCH" > "$AIRLOCK_OUTPUT_DIR/notes.txt"',
        '',
      ].join('\n'),
    );
    git(work, 'init', '-q');
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', 'image fixture');
    repo = join(dir, 'src.git');
    git(dir, 'clone', '-q', '--bare', work, repo);
    commit = git(work, 'rev-parse', 'HEAD');
  });

  afterAll(async () => {
    await registry?.stop();
    await authRegistry?.stop();
  });

  describe('a signed image', () => {
    let result: RunResult;
    let options: RunOptions;
    let client: RegistryClient;
    let digest: string;
    const repoPath = 'airlock/hello';

    beforeAll(async () => {
      options = opts({ signer });
      result = await runBuild(spec(registry.host), options);
      client = new RegistryClient({ url: registry.url });
      digest = result.image!.digest;
    });

    it('reports the digest the registry serves, under the tag (first 12 hex of the commit) and by digest', async () => {
      const image = result.image!;
      expect(image.reference).toBe(`${registry.host}/${repoPath}@${digest}`);
      expect(image.tags).toEqual([commit.slice(0, 12)]);
      expect(await client.manifestDigest(repoPath, commit.slice(0, 12))).toBe(digest);
      const raw = await fetch(`${registry.url}/v2/${repoPath}/manifests/${digest}`, {
        headers: { Accept: MEDIA_TYPES.ociManifest },
      });
      expect(raw.status).toBe(200);
      expect(`sha256:${sha256(Buffer.from(await raw.arrayBuffer()))}`).toBe(digest);
      // image.json says the same, with file names relative to the output directory
      const meta = JSON.parse(readFileSync(join(options.outDir, IMAGE_FILES.metadata), 'utf8')) as Record<
        string,
        unknown
      >;
      expect(meta).toMatchObject({
        reference: image.reference,
        digest,
        tags: image.tags,
        signed: true,
        statements: { provenance: IMAGE_FILES.provenance, sbom: IMAGE_FILES.sbom },
      });
      expect((meta.referrers as { digest: string }[]).map((r) => r.digest)).toEqual(
        image.referrers.map((r) => r.digest),
      );
    });

    it('holds exactly the selected outputs, owned by root, with the commit time and the spec’s modes', async () => {
      const manifest = (await client.getManifest(repoPath, digest)).bytes;
      const m = JSON.parse(manifest.toString('utf8')) as ImageManifest;
      expect(m.layers).toHaveLength(1);
      const config = JSON.parse((await client.getBlob(repoPath, m.config.digest)).toString('utf8')) as {
        created: string;
        config: { Entrypoint: string[]; WorkingDir: string; Labels: Record<string, string> };
        rootfs: { diff_ids: string[] };
      };
      expect(config.created).toBe(COMMIT_TIME);
      expect(config.config).toMatchObject({
        Entrypoint: ['/app/bin/hello'],
        WorkingDir: '/app',
        Labels: { 'org.opencontainers.image.revision': commit },
      });
      const layer = gunzipSync(await client.getBlob(repoPath, m.layers[0]!.digest));
      expect(`sha256:${sha256(layer)}`).toBe(config.rootfs.diff_ids[0]);
      const entries: { name: string; mode: number; uid: number; gid: number; mtime: number; body: string }[] = [];
      const extract = tar.extract();
      extract.on('entry', (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          entries.push({
            name: h.name,
            mode: h.mode ?? 0,
            uid: h.uid ?? -1,
            gid: h.gid ?? -1,
            mtime: h.mtime!.getTime() / 1000,
            body: Buffer.concat(chunks).toString('utf8'),
          });
          next();
        });
      });
      await new Promise<void>((resolve, reject) => {
        extract.on('finish', resolve);
        extract.on('error', reject);
        extract.end(layer);
      });
      expect(entries.map((e) => [e.name, e.mode.toString(8)])).toEqual([
        ['app/', '755'],
        ['app/bin/', '755'],
        ['app/bin/hello', '755'],
        ['app/share/', '755'],
        ['app/share/greeting.txt', '644'],
      ]);
      for (const e of entries) expect([e.uid, e.gid, e.mtime]).toEqual([0, 0, Date.parse(COMMIT_TIME) / 1000]);
      expect(entries.find((e) => e.name === 'app/bin/hello')!.body).toBe('#!/bin/sh\necho hello from the image\n');
      expect(result.image!.files.map((f) => f.name)).toEqual(['bin/hello', 'share/greeting.txt']);
    });

    it('lists the tag, the .sig and .att tags and the sha256-<hex> referrers index', async () => {
      const hex = digest.slice('sha256:'.length);
      const tags = await registryJson<{ tags: string[] }>(`${registry.url}/v2/${repoPath}/tags/list`);
      expect(tags.body.tags.sort()).toEqual(
        [commit.slice(0, 12), `sha256-${hex}`, `sha256-${hex}.att`, `sha256-${hex}.sig`].sort(),
      );
      const index = JSON.parse(
        (await client.getManifest(repoPath, `sha256-${hex}`)).bytes.toString('utf8'),
      ) as ImageIndex;
      expect(index.manifests.map((d) => d.digest).sort()).toEqual(result.image!.referrers.map((r) => r.digest).sort());
      expect(result.image!.referrersIndex).toEqual({ tag: `sha256-${hex}`, digest: expect.stringMatching(/^sha256:/) });
    });

    it('has referrer bundles signed by the key over the image digest, and the statements reuse the run’s provenance', async () => {
      const bundles = await readSigstoreBundles(client, repoPath, digest);
      expect(bundles).toHaveLength(3);
      expect(bundles.every((b) => b.source === 'fallback')).toBe(true);
      const sigs = await readCosignSignatures(client, repoPath, digest);
      expect(sigs).toHaveLength(1);
      expect(sigs[0]!.payloadMatchesImage).toBe(true);
      expect(sigs[0]!.simpleSigning?.dockerReference).toBe(`${registry.host}/${repoPath}`);
      expect(cryptoVerify('sha256', sigs[0]!.payload, publicKey, Buffer.from(sigs[0]!.signature, 'base64'))).toBe(true);
      expect(blobCalls.some((b) => b.equals(sigs[0]!.payload))).toBe(true);
      // (Sigstore trust — certificates, log entries — is verified end to end in test/runner-oci-e2e.test.ts; here
      // the key signs directly, so the signatures are checked with it.)
      const predicateTypes: string[] = [];
      for (const b of bundles) {
        const bundle = b.bundle as {
          messageSignature?: { messageDigest: { digest: string }; signature: string };
          dsseEnvelope?: DsseEnvelope;
        };
        if (bundle.messageSignature) {
          expect(bundle.messageSignature.signature).toBe(sigs[0]!.signature);
          expect(Buffer.from(bundle.messageSignature.messageDigest.digest, 'base64').toString('hex')).toBe(
            sha256(sigs[0]!.payload),
          );
          continue;
        }
        const st = parseStatement(verifyDsse(bundle.dsseEnvelope!, publicKey, INTOTO_PAYLOAD_TYPE));
        expect(findMatchingSubject(st, { sha256: digest.slice(7) }, `${registry.host}/${repoPath}`).name).toBe(
          `${registry.host}/${repoPath}`,
        );
        expect(b.predicateType).toBe(st.predicateType);
        predicateTypes.push(st.predicateType);
      }
      expect(predicateTypes.sort()).toEqual([CYCLONEDX_PREDICATE_TYPE, SLSA_PROVENANCE_V1].sort());
      // the same bundles are in the output directory
      expect(JSON.parse(readFileSync(join(options.outDir, IMAGE_FILES.signatureBundle), 'utf8'))).toEqual(
        bundles.find((b) => b.predicateType === undefined)!.bundle,
      );
      expect(readFileSync(join(options.outDir, IMAGE_FILES.signaturePayload))).toEqual(sigs[0]!.payload);
      const imageProv = JSON.parse(readFileSync(result.image!.statements.provenance, 'utf8')) as Statement;
      const artifactProv = JSON.parse(readFileSync(result.artifacts[0]!.provenancePath, 'utf8')) as Statement;
      expect(imageProv.subject).toEqual([
        { name: `${registry.host}/${repoPath}`, digest: { sha256: digest.slice(7) } },
      ]);
      expect(imageProv.predicate).toEqual(artifactProv.predicate);
    });

    it('has .att envelopes signed by the key whose statements name the image digest', async () => {
      const atts = await readCosignAttestations(client, repoPath, digest);
      expect(atts.map((a) => a.predicateType).sort()).toEqual([CYCLONEDX_PREDICATE_TYPE, SLSA_PROVENANCE_V1].sort());
      for (const a of atts) {
        const st = parseStatement(verifyDsse(a.envelope!, publicKey, INTOTO_PAYLOAD_TYPE));
        expect(st.subject).toEqual([{ name: `${registry.host}/${repoPath}`, digest: { sha256: digest.slice(7) } }]);
        expect(st.predicateType).toBe(a.predicateType);
      }
    });

    it('builds the same image digest again (reproducible), adding a second set of signatures', async () => {
      const again = await runBuild(spec(registry.host), opts({ signer }));
      expect(again.image!.digest).toBe(digest);
      expect(again.image!.layers).toEqual(result.image!.layers);
      expect(await readSigstoreBundles(client, repoPath, digest)).toHaveLength(6);
      // and a different entrypoint is a different image
      const other = await runBuild(spec(registry.host, { entrypoint: ['/bin/sh'] }), opts());
      expect(other.image!.digest).not.toBe(digest);
      expect(other.image!.signed).toBe(false);
    }, 120_000);
  });

  it('pushes to a registry with Basic auth, and refuses wrong credentials with RUNNER_IMAGE_PUSH_FAILED (exit 15)', async () => {
    const ok = await runBuild(
      spec(authRegistry.host),
      opts({
        registry: { plainHttp: true, username: HTPASSWD_USER, password: HTPASSWD_PASSWORD, hosts: [authRegistry.host] },
      }),
    );
    expect(ok.image!.signed).toBe(false);
    expect(ok.image!.referrers).toEqual([]);
    const authed = new RegistryClient({
      url: authRegistry.url,
      auth: { username: HTPASSWD_USER, password: HTPASSWD_PASSWORD },
    });
    expect(await authed.manifestDigest('airlock/hello', ok.image!.tags[0]!)).toBe(ok.image!.digest);

    const o = opts({
      signer,
      registry: { plainHttp: true, username: HTPASSWD_USER, password: 'wrong', hosts: [authRegistry.host] },
    });
    const before = blobCalls.length;
    const err = await failure(runBuild(spec(authRegistry.host), o));
    expect(err.code).toBe('RUNNER_IMAGE_PUSH_FAILED');
    expect(err.message).toMatch(/username and password/);
    expect(exitCodeFor(err)).toBe(EXIT_CODES.IMAGE_PUSH_FAILED);
    expect(EXIT_CODES.IMAGE_PUSH_FAILED).toBe(15);
    // refused before anything was signed for the image, and nothing reported
    expect(blobCalls.length).toBe(before);
    expect(existsSync(join(o.outDir, IMAGE_FILES.metadata))).toBe(false);
  }, 120_000);

  it("never sends the operator's registry credentials to a host the spec names", async () => {
    // Another "registry" the spec points at, recording any Authorization header it is sent.
    const seen: string[] = [];
    const other = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      res.end('{}');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    try {
      for (const registryOptions of [
        { plainHttp: true, username: HTPASSWD_USER, password: HTPASSWD_PASSWORD },
        { plainHttp: true, username: HTPASSWD_USER, password: HTPASSWD_PASSWORD, hosts: [authRegistry.host] },
      ]) {
        const err = await failure(runBuild(spec(`127.0.0.1:${port}`), opts({ registry: registryOptions })));
        expect(err.code).toBe('RUNNER_SPEC_INVALID');
        expect(exitCodeFor(err)).toBe(EXIT_CODES.SPEC_ERROR);
        expect(err.message).not.toContain(HTPASSWD_PASSWORD);
      }
      expect(seen.filter((l) => !l.endsWith(' -'))).toEqual([]);
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  }, 120_000);

  it('fails with RUNNER_REGISTRY_UNAVAILABLE (exit 3) when the registry is down, writing no image files', async () => {
    const down = await startRegistry(join(dir, 'registry-down'));
    await down.stop();
    const o = opts({ signer });
    const before = blobCalls.length;
    const err = await failure(runBuild(spec(down.host), o));
    expect(err.code).toBe('RUNNER_REGISTRY_UNAVAILABLE');
    expect(err.message).toContain(`http://${down.host}`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(exitCodeFor(err)).toBe(EXIT_CODES.UNAVAILABLE);
    expect(blobCalls.length).toBe(before);
    for (const f of Object.values(IMAGE_FILES)) expect(existsSync(join(o.outDir, f)), f).toBe(false);
  }, 120_000);

  it('tells an HTTPS client talking to a plain-HTTP registry to use plain HTTP', async () => {
    const err = await failure(runBuild(spec(registry.host), opts({ registry: {} })));
    expect(err.code).toBe('RUNNER_REGISTRY_UNAVAILABLE');
    expect(err.message).toMatch(/registry-plain-http/);
  }, 120_000);
});
