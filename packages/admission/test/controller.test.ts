/**
 * The admission controller end to end, without its HTTP server: AdmissionRequests built from schema-validated
 * Kubernetes objects (test/k8s.ts) about real images in a real docker-registry, made and signed by `airlock run`
 * through a real trust plane (@airlock/testkit's admission world), verified offline by @airlock/policy. The registry
 * is reached through a counting proxy so the tests can count round trips, hold requests past a deadline and take
 * the registry down. Skips (printing why) without docker-registry, skopeo, git, bwrap or strace unless
 * AIRLOCK_REQUIRE_TOOLS=1.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  admissionWorldProblems,
  buildAdmissionWorld,
  startAnswerGate,
  startCountingProxy,
  toolsAvailable,
  type AdmissionWorld,
  type CountingProxy,
  type WorldImage,
} from '@airlock/testkit';
import { attachSigstoreBundle, RegistryClient } from '@airlock/oci';
import { createAdmissionController, type AdmissionControllerConfig } from '../src/controller.js';
import { loadRegistries } from '../src/registry/config.js';
import type { AdmissionRequest, AdmissionResponse } from '../src/types.js';
import { ALL_KINDS, admissionRequest, ephemeralUpdate, type Images } from './k8s.js';

const CLI = new URL('../../cli/dist/bin.js', import.meta.url).pathname;
const enabled = toolsAvailable('admission controller against the admission world', admissionWorldProblems());

let w: AdmissionWorld;
let proxy: CountingProxy;
let dir: string;
const events = { hits: 0, misses: 0, registryErrors: [] as string[] };

type Controller = ReturnType<typeof createAdmissionController>;
const controllers: Controller[] = [];

function controller(extra: Partial<AdmissionControllerConfig> = {}): Controller {
  const c = createAdmissionController({
    policyFile: join(dir, 'admission.yaml'),
    trustedRoots: [w.trustedRootPath],
    registries: { file: join(dir, 'registries.yaml') },
    events: {
      cache: (hit) => (hit ? events.hits++ : events.misses++),
      registryError: (host) => events.registryErrors.push(host),
    },
    watch: false,
    ...extra,
  });
  controllers.push(c);
  return c;
}

/** The image as the cluster names it: through the proxy. */
const ref = (img: WorldImage, by: 'tag' | 'digest' = 'tag'): string =>
  `${proxy.host}/${img.path}${by === 'tag' ? `:${img.tag}` : `@${img.digest}`}`;

const never = () => new AbortController().signal;

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function validate(c: Controller, req: AdmissionRequest): Promise<AdmissionResponse> {
  return c.decide(req, { mutate: false, signal: never() });
}

function pod(images: Images, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return admissionRequest('Pod', images, extra);
}

function releasePolicy(builderId: string): string {
  return `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.identities.runner}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${builderId}']
sbom: { authorities: [runner] }
`;
}

beforeAll(async () => {
  if (!enabled) return;
  w = await buildAdmissionWorld({ cli: CLI });
  proxy = await startCountingProxy(w.registry.url);
  dir = w.dir;
  writeFileSync(join(dir, 'release.yaml'), releasePolicy(w.builderIds.runner));
  writeFileSync(join(dir, 'strict.yaml'), releasePolicy('https://builder.example/nobody'));
  writeFileSync(
    join(dir, 'admission.yaml'),
    `apiVersion: airlock.dev/admission-policy/v1
policies:
  - { name: runner-built, images: ['${proxy.host}/acme/**'], namespaces: ['team-*'], release: { file: release.yaml } }
  - { name: strict, images: ['${proxy.host}/acme/**'], namespaces: ['team-strict'], release: { file: strict.yaml } }
  - { name: sandbox, images: ['${proxy.host}/acme/**'], namespaces: ['sandbox'], mode: warn, release: { file: release.yaml } }
`,
  );
  writeFileSync(join(dir, 'registries.yaml'), `registries:\n  '${proxy.host}': { plainHttp: true }\n`);
}, 300_000);

afterAll(async () => {
  for (const c of controllers) await c.close();
  await proxy?.close();
  await w?.close();
});

describe.runIf(enabled)('admission controller', () => {
  it('every kind with the runner-signed image by tag is allowed; audit annotations name verdict, policy, digest', async () => {
    const c = controller();
    for (const kind of ALL_KINDS) {
      const r = await validate(c, admissionRequest(kind, { containers: [ref(w.images.signed)] }));
      expect(r, kind).toMatchObject({ allowed: true });
      expect(r.auditAnnotations).toMatchObject({
        verdict: 'allow',
        policy: 'runner-built',
        digest: `${ref(w.images.signed)}=${w.images.signed.digest}`,
      });
      expect(r.warnings).toEqual([`app:${w.images.signed.tag} verified as ${w.images.signed.digest}`]);
    }
  });

  it('/mutate pins every image given by tag to repo@sha256 with a JSONPatch at its pointer', async () => {
    const c = controller();
    const req = admissionRequest('CronJob', {
      containers: [ref(w.images.signed)],
      initContainers: [ref(w.images.fallbackOnly, 'digest')],
      volumes: [ref(w.images.fallbackOnly)],
    });
    const r = await c.decide(req, { mutate: true, signal: never() });
    expect(r.allowed, r.status?.message).toBe(true);
    expect(r.patchType).toBe('JSONPatch');
    const patch = JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8')) as unknown[];
    const base = '/spec/jobTemplate/spec/template/spec';
    expect(patch).toEqual([
      { op: 'replace', path: `${base}/containers/0/image`, value: `${proxy.host}/acme/app@${w.images.signed.digest}` },
      { op: 'replace', path: `${base}/volumes/0/image/reference`, value: ref(w.images.fallbackOnly, 'digest') },
    ]);
  });

  it('denies the unsigned, wrong-identity and bad-provenance images, naming the image and the failed rule', async () => {
    const c = controller();
    const cases: [WorldImage, RegExp][] = [
      [w.images.unsigned, /provenance\.signed/],
      [w.images.wrongIdentity, /someone-else.*not an allowed authority/],
      [w.images.badProvenance, /provenance\.builderId/],
    ];
    for (const [img, rule] of cases) {
      const r = await validate(c, pod({ containers: [ref(w.images.signed)], initContainers: [ref(img)] }));
      expect(r.allowed, img.path).toBe(false);
      expect(r.status?.code).toBe(403);
      expect(r.status?.message).toContain(`${ref(img)} (tag ${img.tag} = ${img.digest}) denied by policy runner-built`);
      expect(r.status?.message).toMatch(rule);
      expect(r.status?.message).not.toContain(ref(w.images.signed));
      expect(r.auditAnnotations?.['verdict']).toBe('deny');
    }
  });

  it('a tag moved off the signed digest is denied; the digest it was signed under is allowed', async () => {
    const c = controller();
    const { retagged } = w.images;
    expect((await validate(c, pod({ containers: [ref(retagged)] }))).allowed).toBe(false);
    const pinned = `${proxy.host}/${retagged.path}@${retagged.signedDigest}`;
    expect((await validate(c, pod({ containers: [pinned] }))).allowed).toBe(true);
  });

  it('the image signed only behind the sha256-<hex> fallback index is allowed', async () => {
    const r = await validate(controller(), pod({ containers: [ref(w.images.fallbackOnly)] }));
    expect(r.allowed, r.status?.message).toBe(true);
  });

  it('pods/ephemeralcontainers UPDATE: a new unsigned debug container is denied; existing ones are not re-judged', async () => {
    const c = controller();
    const bad = ephemeralUpdate([ref(w.images.signed)], [], [ref(w.images.unsigned)]);
    const r = await validate(c, bad);
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain(ref(w.images.unsigned));
    const good = ephemeralUpdate([ref(w.images.signed)], [ref(w.images.unsigned)], [ref(w.images.fallbackOnly)]);
    expect((await validate(c, good)).allowed).toBe(true);
  });

  it('warn mode allows with a warning; dryRun gets the verdict in warnings but is not blocked', async () => {
    const c = controller();
    const warn = await validate(c, pod({ containers: [ref(w.images.unsigned)] }, { namespace: 'sandbox' }));
    expect(warn.allowed).toBe(true);
    expect(warn.auditAnnotations?.['verdict']).toBe('warn');
    expect(warn.warnings?.[0]).toMatch(/^127\.0\.0\.1:\d+\/acme\/unsigned:v1 \(tag v1 = sha256:[0-9a-f]+…?/);
    for (const w0 of warn.warnings!) expect(w0.length).toBeLessThanOrEqual(120);
    const dry = await validate(c, pod({ containers: [ref(w.images.unsigned)] }, { dryRun: true }));
    expect(dry.allowed).toBe(true);
    expect(dry.auditAnnotations?.['verdict']).toBe('dry-run');
    expect(dry.warnings?.[0]).toMatch(/^dry run, would deny: /);
  });

  it('DELETE, CONNECT, status and scale are admitted without a registry round trip', async () => {
    const c = controller();
    proxy.reset();
    const unsigned = { containers: [ref(w.images.unsigned)] };
    for (const extra of [
      { operation: 'DELETE' as const },
      { operation: 'CONNECT' as const },
      { operation: 'UPDATE' as const, subResource: 'status' },
    ]) {
      const r = await validate(c, pod(unsigned, extra));
      expect(r).toMatchObject({ allowed: true, auditAnnotations: { verdict: 'skip' } });
    }
    const scale = await validate(
      c,
      admissionRequest('Deployment', unsigned, { operation: 'UPDATE', subResource: 'scale' }),
    );
    expect(scale.allowed).toBe(true);
    expect(proxy.requests).toEqual([]);
  });

  it('unmatched images are denied by default; shapes airlock cannot read are denied, never admitted', async () => {
    const c = controller();
    const other = await validate(c, pod({ containers: ['nginx:1.27'] }));
    expect(other.allowed).toBe(false);
    expect(other.status?.message).toContain(
      'nginx:1.27: no admission policy matches docker.io/library/nginx (unmatched: deny)',
    );
    const outside = await validate(c, pod({ containers: [ref(w.images.signed)] }, { namespace: 'default' }));
    expect(outside.allowed).toBe(false);
    const long = `${proxy.host}/acme/${'a'.repeat(5000)}:v1`;
    const r = await validate(c, pod({ containers: [long] }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message?.length ?? 0).toBeLessThan(1000);
    expect(r.status?.message).toContain(`(${long.length} characters) is not a valid image reference`);
    const secret = await validate(c, {
      ...pod({ containers: [] }),
      kind: { group: '', version: 'v1', kind: 'Secret' },
    });
    expect(secret).toMatchObject({ allowed: false, status: { code: 400 } });
    const broken = await validate(c, { ...pod({ containers: [] }), object: { spec: { containers: 'x' } } });
    expect(broken.status?.message).toContain('/spec/containers must be an array');
    const noUid = await validate(c, { ...pod({ containers: [] }), uid: '' });
    expect(noUid).toMatchObject({ allowed: false, status: { message: 'request.uid is missing' } });
  });

  it('a cache hit re-evaluates what depends on the request: another namespace adds a policy that fails', async () => {
    const c = controller();
    const before = { ...events };
    const img = { containers: [ref(w.images.signed, 'digest')] };
    expect((await validate(c, pod(img, { namespace: 'team-a' }))).allowed).toBe(true);
    expect((await validate(c, pod(img, { namespace: 'team-a' }))).allowed).toBe(true);
    expect(events.hits - before.hits).toBe(1);
    const strict = await validate(c, pod(img, { namespace: 'team-strict' }));
    expect(strict.allowed).toBe(false);
    expect(strict.status?.message).toContain('denied by policy strict: provenance.builderId');
    expect(strict.auditAnnotations?.['policy']).toBe('runner-built,strict');
  });

  it('concurrent identical verifications are coalesced: 8 requests cost the registry what 1 does', async () => {
    const img = { containers: [ref(w.images.signed, 'digest')] };
    proxy.reset();
    await validate(controller(), pod(img));
    const one = [...proxy.requests];
    expect(one.length).toBeGreaterThan(0);
    proxy.reset();
    const c = controller();
    const all = await Promise.all(Array.from({ length: 8 }, () => validate(c, pod(img))));
    expect(all.every((r) => r.allowed)).toBe(true);
    expect([...proxy.requests].sort()).toEqual([...one].sort()); // reads are concurrent: any order
  });

  it('the deadline aborts the registry call and denies naming the image', async () => {
    // An idle timeout far beyond the test's: only the AbortSignal can end the held request.
    const registries = loadRegistries({ file: join(dir, 'registries.yaml') }).withTimeout(3_600_000);
    const c = controller({ registries });
    proxy.hold(true);
    try {
      const ac = new AbortController();
      const pending = c.decide(pod({ containers: [ref(w.images.signed)] }), { mutate: false, signal: ac.signal });
      const held = await proxy.nextHeld();
      ac.abort(new Error('deadline'));
      const r = await pending;
      expect(r.allowed).toBe(false);
      expect(r.status?.message).toContain(
        `${ref(w.images.signed)}: tag ${w.images.signed.tag}: the admission deadline passed`,
      );
      await held.closed; // the registry request was cut off, not left running
    } finally {
      proxy.hold(false);
    }
  });

  it('files changing drop the cache: policy (fs.watch) and trusted root', async () => {
    const c = controller({ watch: true });
    const img = { containers: [ref(w.images.signed, 'digest')] };
    expect((await validate(c, pod(img))).allowed).toBe(true);
    expect(c.cacheSize).toBe(1);
    const release = join(dir, 'release.yaml');
    const text = readFileSync(release, 'utf8');
    writeFileSync(release, `${text}# edited\n`);
    await vi.waitFor(() => expect(c.cacheSize).toBe(0), { timeout: 10_000 });
    expect((await validate(c, pod(img))).allowed).toBe(true);
    expect(c.cacheSize).toBe(1);
    const root = readFileSync(w.trustedRootPath, 'utf8');
    writeFileSync(w.trustedRootPath, `${root}\n`);
    expect(c.reload()).toBe(true);
    expect(c.cacheSize).toBe(0);
    writeFileSync(release, 'apiVersion: [broken');
    expect(c.reload()).toBe(false);
    expect(c.ready()).toMatchObject({ ok: false });
    expect((await validate(c, pod(img))).allowed).toBe(false);
    writeFileSync(release, text);
    c.reload();
    expect(c.ready()).toEqual({ ok: true });
  });

  it('VSA fast path: a VSA from the trusted verifier under the same policy admits; under another policy it is refused', async () => {
    const img = w.images.signed;
    const vsaFile = join(dir, 'signed.vsa.json');
    const verifier = `spiffe://${w.trustDomain}/airlock/verifier`;
    const cli = await run(process.execPath, [
      CLI,
      'verify',
      'image',
      `${w.registry.host}/${img.path}@${img.digest}`,
      '--registry-plain-http',
      '--policy',
      join(dir, 'release.yaml'),
      '--data',
      w.planeDir,
      '--vsa',
      vsaFile,
      '--verifier-subject',
      verifier,
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    await attachSigstoreBundle(new RegistryClient({ url: w.registry.url }), img.path, {
      subject: img.digest,
      bundle: readFileSync(vsaFile),
    });
    const vsa = `{ verifierIdentity: '${verifier}', issuer: '${w.issuer}', maxAge: 1h }`;
    writeFileSync(
      join(dir, 'vsa.yaml'),
      `apiVersion: airlock.dev/admission-policy/v1
policies:
  - { name: by-vsa, images: ['${proxy.host}/acme/app'], release: { file: release.yaml }, vsa: ${vsa} }
  - { name: strict-vsa, images: ['${proxy.host}/acme/app'], namespaces: [strict], release: { file: strict.yaml }, vsa: ${vsa} }
`,
    );
    const c = controller({ policyFile: join(dir, 'vsa.yaml') });
    const ok = await c.checkWorkspace({ image: ref(img, 'digest') }, { signal: never() });
    expect(ok.allowed, ok.reason).toBe(true);
    expect(ok.reason).toContain(`verified by policy by-vsa (accepted by VSA from ${verifier} (SLSA_BUILD_LEVEL_`);
    proxy.reset();
    const strict = await validate(c, pod({ containers: [ref(img, 'digest')] }, { namespace: 'strict' }));
    expect(strict.allowed).toBe(false);
    // The VSA lookup and the full verification after it share one referrers listing (API, then fallback index).
    const listings = proxy.requests.filter(
      (r) => r.includes(`/referrers/`) || r.endsWith(`/sha256-${img.digest.slice(7)}`),
    );
    expect(listings).toHaveLength(2);
    expect(strict.status?.message).toMatch(
      /denied by policy strict-vsa: provenance\.builderId: .*\(no usable VSA: .*the VSA was issued under policy sha256:[0-9a-f]+, not sha256:/,
    );
  });

  it('workspace: the signed image is allowed, the unsigned refused; toolchain files are verified by their provenance', async () => {
    // A workspace has no namespace: only policies without `namespaces` apply to it.
    const policy = (toolchains: boolean) =>
      `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: workspaces, images: ['${proxy.host}/acme/**'], release: { file: release.yaml } }\n${toolchains ? 'toolchains: { release: { file: release.yaml } }\n' : ''}`;
    writeFileSync(join(dir, 'workspace.yaml'), policy(false));
    const c = controller({ policyFile: join(dir, 'workspace.yaml') });
    const ok = await c.checkWorkspace({ image: ref(w.images.signed) }, { signal: never() });
    expect(ok).toMatchObject({ allowed: true, image: { verdict: 'PASS', digest: w.images.signed.digest } });
    const bad = await c.checkWorkspace({ image: ref(w.images.unsigned) }, { signal: never() });
    expect(bad).toMatchObject({ allowed: false, image: { verdict: 'FAIL' } });
    expect(bad.reason).toContain(ref(w.images.unsigned));
    // The runner's outputs, with their provenance and SBOM bundles beside them.
    const tool = join(dir, 'out-app', 'bin', 'hello');
    const rogueTool = join(dir, 'out-rogue', 'bin', 'hello');
    expect(existsSync(`${tool}.provenance.sigstore.json`), tool).toBe(true);
    const none = await c.checkWorkspace(
      { image: ref(w.images.signed), toolchains: [{ path: tool }] },
      { signal: never() },
    );
    expect(none.allowed).toBe(false);
    expect(none.reason).toBe(`toolchain ${tool}: the admission policy has no toolchains section`);
    writeFileSync(join(dir, 'workspace-tc.yaml'), policy(true));
    const t = controller({ policyFile: join(dir, 'workspace-tc.yaml') });
    const good = await t.checkWorkspace(
      { image: ref(w.images.signed), toolchains: [{ path: tool }] },
      { signal: never() },
    );
    expect(good.allowed, good.reason).toBe(true);
    expect(good.toolchains).toMatchObject([{ path: tool, verdict: 'PASS' }]);
    const tampered = join(dir, 'hello-tampered');
    writeFileSync(tampered, Buffer.concat([readFileSync(tool), Buffer.from('\n')]));
    const forged = await t.checkWorkspace(
      { image: ref(w.images.signed), toolchains: [{ path: tampered, bundles: [`${tool}.provenance.sigstore.json`] }] },
      { signal: never() },
    );
    expect(forged.allowed).toBe(false);
    expect(forged.reason).toMatch(new RegExp(`^toolchain ${tampered}: .*does not verify`));
    const rogue = await t.checkWorkspace(
      { image: ref(w.images.signed), toolchains: [{ path: rogueTool }] },
      { signal: never() },
    );
    expect(rogue.allowed).toBe(false);
    expect(rogue.toolchains[0]).toMatchObject({ verdict: 'FAIL' });
    expect(rogue.reason).toContain('someone-else');
  });

  it('tag lookups: requests arriving during one share the next; a tag moved meanwhile is seen by them', async () => {
    // The gate forwards every request at once but holds the answers to HEADs of tag `shared`: the registry has
    // read the tag when its answer is held, so moving the tag then makes that answer old.
    const gate = await startAnswerGate(w.registry.url);
    try {
      const { signed, retagged } = w.images;
      await w.moveTag(signed.path, 'shared', signed.digest);
      writeFileSync(join(dir, 'gate.yaml'), `registries:\n  '${gate.host}': { plainHttp: true }\n`);
      writeFileSync(
        join(dir, 'gate-admission.yaml'),
        `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: runner-built, images: ['${gate.host}/acme/**'], release: { file: release.yaml } }\n`,
      );
      const c = controller({
        policyFile: join(dir, 'gate-admission.yaml'),
        registries: { file: join(dir, 'gate.yaml') },
      });
      const image = { containers: [`${gate.host}/${signed.path}:shared`] };
      const head = `HEAD /v2/${signed.path}/manifests/shared`;
      gate.hold((r) => r === head);
      const first = validate(c, pod(image));
      await gate.nextHeld(); // A's lookup has read `shared` = the signed digest
      await w.moveTag(signed.path, 'shared', retagged.digest); // now an unsigned image
      const later = [validate(c, pod(image)), validate(c, pod(image))]; // arrive after the move
      await new Promise((r) => setImmediate(r));
      expect(gate.requests.filter((r) => r === head)).toHaveLength(1); // they wait; no lookup of their own yet
      gate.release();
      const a = await first;
      const [b1, b2] = await Promise.all(later);
      expect(a.allowed, a.status?.message).toBe(true); // A arrived before the move: the signed digest
      expect(a.auditAnnotations?.['digest']).toContain(signed.digest);
      for (const b of [b1!, b2!]) {
        // Never the answer A's lookup carried (sent before they arrived): the digest the tag names now.
        expect(b.allowed).toBe(false);
        expect(b.auditAnnotations?.['digest']).toContain(retagged.digest);
      }
      expect(gate.requests.filter((r) => r === head)).toHaveLength(2); // 3 requests, 2 registry lookups
      expect(c.tagLookupsSent).toBe(2);
    } finally {
      await gate.close();
    }
  });

  it('the digest a tag last had is verified early, but only the fresh lookup decides: a moved tag is judged by its new digest', async () => {
    const { signed, retagged } = w.images;
    const c = controller({ cache: false });
    const image = { containers: [`${proxy.host}/${signed.path}:early`] };
    const expectVerdict = async (allowed: boolean, digest: string): Promise<void> => {
      const r = await validate(c, pod(image));
      expect(r.allowed, r.status?.message).toBe(allowed);
      expect(r.auditAnnotations?.['digest']).toContain(digest);
    };
    await w.moveTag(signed.path, 'early', signed.digest);
    await expectVerdict(true, signed.digest); // no hint yet
    await expectVerdict(true, signed.digest); // hint = the fresh answer: the early verification is the verdict
    await w.moveTag(signed.path, 'early', retagged.digest);
    await expectVerdict(false, retagged.digest); // hint (signed) is stale: never admitted on it
    await w.moveTag(signed.path, 'early', signed.digest);
    await expectVerdict(true, signed.digest); // hint (unsigned) is stale: the signed digest is verified afresh
  });

  it('tag TTL: a digest is reused (and pinned) until the TTL passed, then the moved tag is seen; reload drops it; a registry down after it denies', async () => {
    const gate = await startAnswerGate(w.registry.url);
    let closed = false;
    try {
      const { signed, retagged } = w.images;
      await w.moveTag(signed.path, 'ttl', signed.digest);
      writeFileSync(join(dir, 'ttl.yaml'), `registries:\n  '${gate.host}': { plainHttp: true }\n`);
      const policyFile = join(dir, 'ttl-admission.yaml');
      const policy = `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: runner-built, images: ['${gate.host}/acme/**'], release: { file: release.yaml } }\n`;
      writeFileSync(policyFile, policy);
      let now = 1_000_000;
      const c = controller({
        policyFile,
        registries: { file: join(dir, 'ttl.yaml') },
        tags: { ttlMs: 5_000, now: () => now },
      });
      const image = { containers: [`${gate.host}/${signed.path}:ttl`] };
      const heads = () => gate.requests.filter((r) => r === `HEAD /v2/${signed.path}/manifests/ttl`).length;
      const mutate = (req: AdmissionRequest) => c.decide(req, { mutate: true, signal: never() });
      expect((await validate(c, pod(image))).allowed).toBe(true);
      expect(heads()).toBe(1);
      await w.moveTag(signed.path, 'ttl', retagged.digest); // now an unsigned image
      now += 4_999;
      const reused = await mutate(pod(image));
      expect(heads()).toBe(1); // answered from the remembered digest
      expect(reused.allowed, reused.status?.message).toBe(true);
      // What runs is what was verified: the pod is pinned to the digest the answer named, not to the tag.
      const patch = JSON.parse(Buffer.from(reused.patch!, 'base64').toString('utf8')) as { value: string }[];
      expect(patch.map((p) => p.value)).toEqual([`${gate.host}/${signed.path}@${signed.digest}`]);
      now += 1; // 5 s after the first lookup was sent
      const moved = await validate(c, pod(image));
      expect(heads()).toBe(2);
      expect(moved.allowed).toBe(false);
      expect(moved.auditAnnotations?.['digest']).toContain(retagged.digest);
      await w.moveTag(signed.path, 'ttl', signed.digest);
      writeFileSync(policyFile, `${policy}# edited\n`);
      expect(c.reload()).toBe(true); // the policy changed: remembered tags go with the verification cache
      const afterReload = await validate(c, pod(image));
      expect(heads()).toBe(3);
      expect(afterReload.allowed, afterReload.status?.message).toBe(true);
      await gate.close();
      closed = true;
      now += 5_000;
      const down = await validate(c, pod(image)); // the remembered digest is too old: never an allow from it
      expect(down.allowed).toBe(false);
      expect(down.status?.message).toContain('registry error: ');
    } finally {
      if (!closed) await gate.close();
    }
  });

  it('concurrent requests by tag share tag lookups: 8 requests, at most 2 HEADs of the tag', async () => {
    const counted = { tagLookups: 0, verifications: 0 };
    const c = controller({
      events: {
        cache: () => undefined,
        registryError: () => undefined,
        tagLookup: () => counted.tagLookups++,
        verification: () => counted.verifications++,
      },
    });
    const img = { containers: [ref(w.images.signed)] };
    await validate(c, pod(img)); // verification cached: only the tag lookups remain
    proxy.reset();
    const all = await Promise.all(Array.from({ length: 8 }, () => validate(c, pod(img))));
    expect(all.every((r) => r.allowed)).toBe(true);
    const heads = proxy.requests.filter(
      (r) => r === `HEAD /v2/${w.images.signed.path}/manifests/${w.images.signed.tag}`,
    );
    expect(heads.length).toBeGreaterThanOrEqual(1);
    expect(heads.length).toBeLessThanOrEqual(2);
    expect(counted).toEqual({ tagLookups: 1 + heads.length, verifications: 1 }); // the events count what was sent
  });

  it('immutable reads: re-verifying reads manifests and blobs by digest once; tags and referrers stay live', async () => {
    const c = controller({ cache: false, immutableReads: { maxBytes: 16 << 20 } });
    const img = { containers: [ref(w.images.signed)] };
    proxy.reset();
    expect((await validate(c, pod(img))).allowed).toBe(true);
    const first = [...proxy.requests];
    const byDigest = (rs: string[]) => rs.filter((r) => /^GET \/v2\/.+\/(blobs|manifests)\/sha256:/.test(r));
    expect(byDigest(first).length).toBeGreaterThan(0);
    proxy.reset();
    expect((await validate(c, pod(img))).allowed).toBe(true); // no verification cache: verified again
    expect(byDigest(proxy.requests)).toEqual([]);
    // Everything mutable was read again: the tag, the referrers (API or fallback index), the cosign tags (read
    // concurrently: compared as sets).
    expect([...proxy.requests].sort()).toEqual(first.filter((r) => !byDigest([r]).length).sort());
  });

  it('cache: false reads everything from the registry every time (nothing cached)', async () => {
    const c = controller({ cache: false });
    const img = { containers: [ref(w.images.signed, 'digest')] };
    proxy.reset();
    await validate(c, pod(img));
    const first = [...proxy.requests];
    proxy.reset();
    await validate(c, pod(img));
    expect([...proxy.requests].sort()).toEqual([...first].sort()); // concurrent reads: any order
  });

  it("cosignLayers 'when-needed': signed images pass without .sig/.att reads; failing ones are read and denied as before", async () => {
    const always = controller({ cache: false });
    const needed = controller({ cache: false, cosignLayers: 'when-needed' });
    const signed = pod({ containers: [ref(w.images.signed, 'digest')] });
    proxy.reset();
    expect((await validate(always, signed)).allowed).toBe(true);
    const readAlways = [...proxy.requests];
    proxy.reset();
    expect((await validate(needed, signed)).allowed).toBe(true);
    const cosignTag = (r: string) => /\/manifests\/sha256-[0-9a-f]{64}\.(sig|att)$/.test(r);
    expect(readAlways.filter(cosignTag)).toHaveLength(2);
    expect(proxy.requests.filter(cosignTag)).toEqual([]);
    expect(proxy.requests.length).toBeLessThan(readAlways.length);
    for (const img of [w.images.unsigned, w.images.wrongIdentity, w.images.badProvenance]) {
      const req = pod({ containers: [ref(img, 'digest')] });
      const before = (await validate(always, req)).status?.message;
      proxy.reset();
      const r = await validate(needed, req);
      expect(r.allowed, img.path).toBe(false);
      expect(r.status?.message).toBe(before);
      expect(proxy.requests.filter(cosignTag), img.path).toHaveLength(2); // read: the bundles failed
    }
  });

  it('a registry that goes down gives denials naming the registry error, never allows', async () => {
    const c = controller();
    await proxy.close();
    const r = await validate(c, pod({ containers: [ref(w.images.signed)] }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain(`${ref(w.images.signed)}: tag ${w.images.signed.tag}: registry error: `);
    expect(r.status?.message).toContain('ECONNREFUSED');
    expect(events.registryErrors).toContain(proxy.host);
  });
});
