/**
 * The admission acceptance world and request builders (@airlock/testkit, issue 9 §3) checked on their own, so the
 * webhook e2e test and the benchmark stand on verified ground:
 *   - every AdmissionReview builder makes an object the upstream Kubernetes schema accepts (kubernetes-models),
 *     with every image where the kind keeps it; the ephemeral-container UPDATE adds exactly one new container;
 *   - every malformed-corpus body is malformed the way its name says;
 *   - the world: each image exists in the real docker-registry under its tag and digest; the runner-signed image
 *     and the fallback-index-only image pass `airlock verify image` with the world's policy; the unsigned one has no
 *     signature tags and fails; the wrong identity and the untrusted builder fail naming their rule; the re-tagged
 *     `stable` names an unsigned digest (fails) while the digest it was signed under still passes; the fallback image
 *     has only the `sha256-<hex>` index, no `.sig`/`.att`.
 * The world part skips (printing why) without docker-registry, skopeo, git, bwrap or strace unless
 * AIRLOCK_REQUIRE_TOOLS=1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admissionWorldProblems,
  buildAdmissionWorld,
  ephemeralContainersReview,
  imagePointers,
  KIND_INFO,
  malformedCorpus,
  toolsAvailable,
  WORKLOAD_KINDS,
  workloadObject,
  workloadReview,
  type AdmissionWorld,
  type WorldImage,
} from '@airlock/testkit';
import { CLI } from './helpers/cli.js';
import { runCliJson } from './helpers/upstream-e2e.js';

const IMAGES = {
  containers: ['registry.test/acme/app:v1', 'registry.test/acme/sidecar@sha256:' + 'a'.repeat(64)],
  initContainers: ['registry.test/acme/init:v2'],
  ephemeralContainers: ['registry.test/acme/debug:v3'],
  imageVolumes: ['registry.test/acme/data:v4'],
};
const ALL = [...IMAGES.containers, ...IMAGES.initContainers, ...IMAGES.ephemeralContainers, ...IMAGES.imageVolumes];

describe('AdmissionReview builders', () => {
  it.each(WORKLOAD_KINDS)('%s: a schema-valid object with every image where the kind keeps it', (kind) => {
    const review = workloadReview(kind, IMAGES);
    const info = KIND_INFO[kind];
    expect(review).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        kind: { group: info.group, version: info.version, kind },
        resource: { resource: info.resource },
        operation: 'CREATE',
        dryRun: false,
      },
    });
    expect(review.request.uid).toMatch(/^[0-9a-f-]{36}$/);
    const object = review.request.object!;
    expect(object).toMatchObject({ apiVersion: info.group ? `${info.group}/${info.version}` : 'v1', kind });
    const pointers = imagePointers(kind, object);
    expect([...pointers.values()].sort()).toEqual([...ALL].sort());
    for (const p of pointers.keys()) expect(p.startsWith(`${info.podSpecPointer}/`)).toBe(true);
  });

  it('gives every review its own uid', () => {
    const uids = new Set(WORKLOAD_KINDS.map((k) => workloadReview(k, IMAGES).request.uid));
    expect(uids.size).toBe(WORKLOAD_KINDS.length);
  });

  it('refuses an object the Kubernetes schema rejects (kubernetes-models validation is on)', () => {
    // A container image must be a string in the upstream schema.
    expect(() => workloadObject('Pod', { containers: [42 as unknown as string] })).toThrow(/image/);
  });

  it('pods/ephemeralcontainers UPDATE: oldObject without, object with the one new ephemeral container', () => {
    const r = ephemeralContainersReview({ containers: ['registry.test/acme/app:v1'] }, 'registry.test/tools/debug:1');
    expect(r.request).toMatchObject({
      operation: 'UPDATE',
      subResource: 'ephemeralcontainers',
      requestSubResource: 'ephemeralcontainers',
      kind: { kind: 'Pod' },
      resource: { resource: 'pods' },
    });
    const oldSpec = (r.request.oldObject as { spec: { ephemeralContainers?: unknown[] } }).spec;
    const newSpec = (r.request.object as { spec: { ephemeralContainers?: { image: string }[] } }).spec;
    expect(oldSpec.ephemeralContainers).toBeUndefined();
    expect(newSpec.ephemeralContainers).toEqual([{ name: 'debug0', image: 'registry.test/tools/debug:1' }]);
  });

  it('DELETE and dryRun requests are built as the API server sends them', () => {
    const del = workloadReview('Deployment', IMAGES, { operation: 'DELETE' });
    expect(del.request.object).toBeUndefined();
    expect(workloadReview('Pod', IMAGES, { dryRun: true }).request.dryRun).toBe(true);
  });
});

describe('malformed-input corpus', () => {
  const corpus = malformedCorpus('registry.test/acme/app:v1', '127.0.0.1:5000');
  const byName = (n: string) => corpus.find((c) => c.name.startsWith(n))!;
  interface Loose {
    apiVersion?: string;
    request: { uid?: string; kind: { kind: string }; object?: { spec: { containers: { image: string }[] } } };
  }
  const parse = (n: string): Loose => JSON.parse(byName(n).body().toString('utf8')) as Loose;

  it('each body is malformed the way its name says', () => {
    expect(() => JSON.parse(byName('truncated JSON').body().toString('utf8'))).toThrow();
    expect(byName('10 MiB body').body().length).toBeGreaterThan(10 * 1024 * 1024);
    expect(parse('wrong apiVersion').apiVersion).toBe('admission.k8s.io/v1beta1');
    expect(parse('missing request.uid').request.uid).toBeUndefined();
    expect(parse('unknown kind').request.kind.kind).toBe('Frobnicator');
    const long = parse('image reference of 5,000').request.object!.spec.containers[0]!.image;
    expect(long).toHaveLength(5000);
    expect(Array.isArray(JSON.parse(byName('not an object').body().toString('utf8')))).toBe(true);
    expect(parse('request without object').request.object).toBeUndefined();
  });

  it('never lists "allow" as an acceptable answer, and names the uid a deny must echo', () => {
    for (const c of corpus) {
      expect(c.acceptable.length).toBeGreaterThan(0);
      expect(c.acceptable.every((a) => ['deny', 'http-4xx', 'connection-cut'].includes(a))).toBe(true);
      if (c.acceptable.includes('connection-cut')) expect(c.name).toBe('10 MiB body');
      if (c.acceptable.includes('deny')) expect(c.uid).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

const enabled = toolsAvailable(
  'admission world (docker-registry, skopeo, git, bwrap, strace)',
  admissionWorldProblems(),
);

describe.runIf(enabled)('admission world', () => {
  let w: AdmissionWorld;
  let policy: string;

  beforeAll(async () => {
    w = await buildAdmissionWorld({ cli: CLI });
    policy = join(w.dir, 'world.policy.yaml');
    writeFileSync(
      policy,
      `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.identities.runner}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.builderIds.runner}']
sbom: { authorities: [runner] }
`,
    );
  }, 240_000);

  afterAll(async () => {
    await w?.close();
  });

  const verify = (ref: string) =>
    runCliJson(['verify', 'image', ref, '--registry-plain-http', '--policy', policy, '--data', w.planeDir, '--json']);

  const manifestStatus = async (img: WorldImage, ref: string): Promise<number> =>
    (
      await fetch(`${w.registry.url}/v2/${img.path}/manifests/${ref}`, {
        method: 'HEAD',
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).status;

  it('every image is in the registry under its tag and its digest, and every digest differs', async () => {
    const { extraSigned: _, ...images } = w.images;
    for (const img of Object.values(images)) {
      expect(await manifestStatus(img, img.tag), img.reference).toBe(200);
      expect(await manifestStatus(img, img.digest), img.pinned).toBe(200);
    }
    const { signed, unsigned, wrongIdentity, badProvenance, fallbackOnly } = w.images;
    const digests = [signed, unsigned, wrongIdentity, badProvenance, fallbackOnly].map((i) => i.digest);
    expect(new Set(digests).size).toBe(5);
  });

  it('(a) the runner-signed image passes the policy', async () => {
    const r = await verify(w.images.signed.reference);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ result: 'PASS', image: w.images.signed.pinned });
  });

  it('(b) the unsigned image has no signature tags and fails', async () => {
    expect(await w.tags('acme/unsigned')).toEqual(['v1']);
    const r = await verify(w.images.unsigned.reference);
    expect(r.code, r.stdout + r.stderr).toBe(1);
  });

  it('(c) the wrong identity fails the policy', async () => {
    const r = await verify(w.images.wrongIdentity.reference);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(JSON.stringify(r.json)).toContain('provenance');
  });

  it('(d) the untrusted builder id fails provenance.builderId', async () => {
    const r = await verify(w.images.badProvenance.reference);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const rules = (r.json as { rules: { rule: string; passed: boolean }[] }).rules;
    expect(rules.filter((x) => !x.passed).map((x) => x.rule)).toContain('provenance.builderId');
  });

  it('(e) stable was moved off the signed digest: by tag it fails, by the signed digest it passes', async () => {
    const { retagged } = w.images;
    expect(retagged.digest).not.toBe(retagged.signedDigest);
    expect(retagged.digest).toBe(w.images.unsigned.digest);
    expect((await verify(retagged.reference)).code).toBe(1);
    const pinned = await verify(`${retagged.repository}@${retagged.signedDigest}`);
    expect(pinned.code, pinned.stdout + pinned.stderr).toBe(0);
  });

  it('(f) the fallback-only image has only the sha256-<hex> index, no .sig/.att, and passes', async () => {
    const { fallbackOnly } = w.images;
    const hex = fallbackOnly.digest.slice('sha256:'.length);
    expect((await w.tags('acme/fallback')).sort()).toEqual([fallbackOnly.tag, `sha256-${hex}`].sort());
    const r = await verify(fallbackOnly.reference);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});
