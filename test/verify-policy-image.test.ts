/**
 * `airlock verify image REF` through the built CLI against a real CNCF Distribution registry (docker-registry 2.8.2)
 * on loopback. A small OCI image is pushed by tag; provenance and SBOM about its manifest digest are made by the
 * runner's builders, signed as the runner through a real trust plane, and attached as Sigstore-bundle referrers
 * with packages/oci (referrers API or the `sha256-<hex>` fallback index, as the runner attaches them). Proves: the
 * tag is resolved to the digest and the verdict, the JSON and the VSA are about that digest; a policy passes
 * (exit 0) and a wrong builder id fails naming provenance.builderId (exit 1); a registry that cannot be reached →
 * exit 3. Skips (printing why) without docker-registry unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachSigstoreBundle, MEDIA_TYPES, RegistryClient, sha256Digest } from '@airlock/oci';
import { buildSbom, provenancePredicate, provenanceStatement, sbomStatement } from '@airlock/runner';
import { provenanceInput, startWorld, type World } from './helpers/policy-world.js';
import { runCli } from './helpers/cli.js';
import { registryProblem, startRegistry, toolsAvailable, type RunningRegistry } from '@airlock/testkit';

const enabled = toolsAvailable('verify image against a registry (docker-registry)', [registryProblem()]);
const REPO = 'acme/app';

let w: World;
let registry: RunningRegistry;
let data: string;
let work: string;
let policyPath: string;
let snapDir: string;
let digest: string;

async function pushImage(client: RegistryClient): Promise<string> {
  const config = await client.pushBlob(REPO, Buffer.from('{"architecture":"amd64","os":"linux"}'));
  const layer = await client.pushBlob(REPO, Buffer.from('not really a tar, but bytes with a digest\n'));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerTar, digest: layer.digest, size: layer.size }],
    }),
  );
  await client.putManifest(REPO, 'v1.4.2', manifest, MEDIA_TYPES.ociManifest);
  return sha256Digest(manifest);
}

beforeAll(async () => {
  if (!enabled) return;
  w = await startWorld(4);
  data = join(w.dir, 'plane');
  work = join(w.dir, 'work');
  registry = await startRegistry(join(w.dir, 'registry'));
  const client = new RegistryClient({ url: registry.url });
  digest = await pushImage(client);
  const subject = { name: `${registry.host}/${REPO}`, digest: { sha256: digest.slice('sha256:'.length) } };
  const input = provenanceInput(w, { finishedOn: new Date().toISOString() });
  for (const statement of [
    provenanceStatement(subject, provenancePredicate(input, 3600)),
    sbomStatement(subject, buildSbom(subject, input)),
  ])
    await attachSigstoreBundle(client, REPO, { subject: digest, bundle: await w.signers.runner.attest(statement) });
  snapDir = join(work, 'snapshot');
  mkdirSync(join(snapDir, 'attestations'), { recursive: true });
  writeFileSync(join(snapDir, 'manifest.json'), w.snapshot.manifestBytes);
  writeFileSync(join(snapDir, 'attestations', 'manifest.sigstore.json'), JSON.stringify(w.snapshot.bundle));
  policyPath = join(work, 'release.policy.yaml');
  writeFileSync(
    policyPath,
    `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  source: { uris: ['https://git.corp.example/acme/*.git'], refs: { semverTags: '^1.0.0' } }
  reproducible: true
  maxAge: 30d
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`,
  );
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await w?.close();
});

describe.runIf(enabled)('airlock verify image', () => {
  it('resolves the tag to its digest and passes the policy on the referrer bundles; the VSA is about the digest', async () => {
    const vsa = join(work, 'image.vsa.json');
    const r = await runCli([
      'verify',
      'image',
      `${registry.host}/${REPO}:v1.4.2`,
      '--registry-plain-http',
      '--policy',
      policyPath,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--vsa',
      vsa,
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      result: string;
      image: string;
      artifact: { digest: { sha256: string } };
      rules: { rule: string; passed: boolean }[];
      inputAttestations: { uri: string }[];
    };
    expect(j.result).toBe('PASS');
    expect(j.image).toBe(`${registry.host}/${REPO}@${digest}`);
    expect(j.artifact.digest.sha256).toBe(digest.slice(7));
    expect(j.rules.filter((x) => !x.passed)).toEqual([]);
    expect(j.inputAttestations).toHaveLength(2);
    for (const a of j.inputAttestations) expect(a.uri).toMatch(new RegExp(`^${registry.host}/${REPO}@sha256:`));
    const b = JSON.parse(readFileSync(vsa, 'utf8')) as { dsseEnvelope: { payload: string } };
    const st = JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      subject: { digest: { sha256: string } }[];
      predicate: { resourceUri: string };
    };
    expect(st.subject.map((s) => s.digest.sha256)).toEqual([digest.slice(7)]);
    expect(st.predicate.resourceUri).toBe(`${registry.host}/${REPO}@${digest}`);
  });

  it('a wrong builder id → exit 1 naming provenance.builderId', async () => {
    const r = await runCli([
      'verify',
      'image',
      `${registry.host}/${REPO}:v1.4.2`,
      '--registry-plain-http',
      '--data',
      data,
      '--builder-id',
      'https://ci.example/other-builder',
      '--certificate-identity',
      w.ids.runner,
      '--certificate-oidc-issuer',
      w.issuer,
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('✗ provenance.builderId');
  });

  it('a registry that cannot be reached → exit 3', async () => {
    const r = await runCli([
      'verify',
      'image',
      '127.0.0.1:9/acme/app:v1',
      '--registry-plain-http',
      '--policy',
      policyPath,
      '--data',
      data,
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect((JSON.parse(r.stdout) as { ok: boolean }).ok).toBe(false);
  });
});
