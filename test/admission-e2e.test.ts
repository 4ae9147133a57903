/**
 * Issue 9 §3 acceptance: the admission webhook end to end. A real trust plane, a real docker-registry holding the
 * admission world's images (@airlock/testkit buildAdmissionWorld: runner-signed, unsigned, wrong identity, bad
 * provenance, re-tagged, fallback-index-only), and `airlock admission serve` over HTTPS on loopback, fed
 * AdmissionReviews built from schema-validated Kubernetes objects. Proves:
 *   - every kind (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController,
 *     PodTemplate) with signed images in containers, initContainers and image volumes is allowed, and denied as soon
 *     as one image is unsigned, naming that image;
 *   - a wrong signer identity, an untrusted builder id, a tag moved off its signed digest and an image no policy
 *     matches are denied; the fallback-index-only image and the moved tag's signed digest are allowed;
 *   - a pods/ephemeralcontainers UPDATE adding an unsigned debug container is denied, a signed one allowed;
 *   - /mutate pins every image to repo@sha256 with a JSONPatch; a tag moved after admission does not change what
 *     the pinned object names (it is still allowed, the tag no longer is);
 *   - a warn-mode policy (namespace sandbox) admits the unsigned image with a warning; DELETE is never blocked and
 *     a dryRun gets the verdict without being refused;
 *   - the malformed corpus is answered (4xx or a deny echoing the uid; the 10 MiB body gets its 413, drained
 *     rather than cut off), never allowed, and /healthz works after;
 *   - with the registry stopped, every tag and every unverified digest is denied, never allowed.
 * Skips (printing why) without docker-registry, skopeo, git, bwrap, strace or openssl unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admissionWorldProblems,
  buildAdmissionWorld,
  ephemeralContainersReview,
  imagePointers,
  makePki,
  malformedCorpus,
  opensslProblem,
  reviewOf,
  startCliProcess,
  toolsAvailable,
  WORKLOAD_KINDS,
  workloadReview,
  type AdmissionWorld,
  type TestAdmissionReview,
  type WorkloadKind,
} from '@airlock/testkit';
import { CLI } from './helpers/cli.js';

const enabled = toolsAvailable('admission webhook e2e (docker-registry, skopeo, git, bwrap, strace, openssl)', [
  ...admissionWorldProblems(),
  opensslProblem(),
]);

interface ReviewResponse {
  uid: string;
  allowed: boolean;
  status?: { code?: number; message?: string };
  warnings?: string[];
  patchType?: string;
  patch?: string;
  auditAnnotations?: Record<string, string>;
}

interface Answer {
  status: number;
  text: string;
  response?: ReviewResponse;
}

let w: AdmissionWorld;
let ca: Buffer;
let webhook: { url: string; stop: () => Promise<void> };

function releasePolicy(): string {
  return `
        apiVersion: airlock.dev/policy/v1
        authorities:
          runner: { keyless: { subject: '${w.identities.runner}', issuer: '${w.issuer}' } }
        provenance:
          authorities: [runner]
          builderIds: ['${w.builderIds.runner}']
        sbom: { authorities: [runner] }`;
}

/** enforce everywhere but namespace sandbox, where the same rules only warn. */
function writeConfig(dir: string): { policy: string; registries: string; certFile: string; keyFile: string } {
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, 'admission.policy.yaml');
  writeFileSync(
    policy,
    `apiVersion: airlock.dev/admission-policy/v1
policies:
  - name: runner-built
    images: ['${w.registry.host}/acme/**']
    namespaces: ['default', 'prod*']
    release:
      inline:${releasePolicy()}
  - name: sandbox-observe
    images: ['${w.registry.host}/acme/**']
    namespaces: ['sandbox']
    mode: warn
    release:
      inline:${releasePolicy()}
`,
  );
  const registries = join(dir, 'registries.yaml');
  writeFileSync(registries, `registries:\n  '${w.registry.host}': { plainHttp: true }\n`);
  const pki = makePki(dir);
  ca = readFileSync(pki.caFile);
  return { policy, registries, certFile: pki.certFile, keyFile: pki.keyFile };
}

/** `airlock admission serve` over HTTPS on an ephemeral loopback port, configured as an operator would. */
async function startWebhook(conf: ReturnType<typeof writeConfig>): Promise<typeof webhook> {
  const args = ['admission', 'serve', '--policy', conf.policy, '--trusted-root', w.trustedRootPath];
  args.push('--registry-config', conf.registries, '--tls-cert', conf.certFile, '--tls-key', conf.keyFile);
  args.push('--listen', '127.0.0.1:0', '--json');
  const p = await startCliProcess(CLI, args, (o) => o.trim().endsWith('}'));
  const started = JSON.parse(p.stdout()) as { ok: boolean; url: string };
  expect(started).toMatchObject({ ok: true, url: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+$/) });
  return { url: started.url, stop: p.stop };
}

/** Sends raw bytes; resolves with the answer (a response that arrives before the body is fully sent counts). */
function send(path: string, body: Buffer | string, method = 'POST'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      `${webhook.url}${path}`,
      { method, ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          answered = true;
          const text = Buffer.concat(chunks).toString('utf8');
          let response: ReviewResponse | undefined;
          try {
            response = (JSON.parse(text) as { response?: ReviewResponse }).response;
          } catch {
            response = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, ...(response ? { response } : {}) });
        });
      },
    );
    // The server may refuse an oversized body and close before it is all written: only an unanswered error fails.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(body);
  });
}

async function review(r: TestAdmissionReview, path = '/validate'): Promise<ReviewResponse> {
  const a = await send(path, JSON.stringify(r));
  expect(a.status, a.text).toBe(200);
  expect(a.response, a.text).toBeDefined();
  expect(a.response!.uid).toBe(r.request.uid);
  return a.response!;
}

function expectDenied(res: ReviewResponse, naming: string): void {
  expect(res.allowed, JSON.stringify(res)).toBe(false);
  expect(res.status?.message ?? '').toContain(naming);
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Applies the `replace` operations of a JSONPatch (all a digest pin needs) to a copy of `object`. */
function applyPins(object: Record<string, unknown>, patchB64: string): Record<string, unknown> {
  const ops = JSON.parse(Buffer.from(patchB64, 'base64').toString('utf8')) as {
    op: string;
    path: string;
    value: unknown;
  }[];
  const out = JSON.parse(JSON.stringify(object)) as Record<string, unknown>;
  for (const op of ops) {
    expect(op.op).toBe('replace');
    const keys = op.path.split('/').slice(1);
    const last = keys.pop()!;
    const parent = keys.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, out);
    expect(parent[last], op.path).toBeDefined();
    parent[last] = op.value;
  }
  return out;
}

describe.runIf(enabled)('admission webhook e2e (airlock admission serve, real registry and signed images)', () => {
  beforeAll(async () => {
    w = await buildAdmissionWorld({ cli: CLI });
    webhook = await startWebhook(writeConfig(join(w.dir, 'webhook')));
  }, 300_000);

  afterAll(async () => {
    await webhook?.stop();
    await w?.close();
  });

  const signedImages = () => ({
    containers: [w.images.signed.reference],
    initContainers: [w.images.fallbackOnly.reference],
    imageVolumes: [w.images.signed.pinned],
  });

  it.each(WORKLOAD_KINDS)('%s with signed images is allowed', async (kind: WorkloadKind) => {
    const res = await review(workloadReview(kind, signedImages()));
    expect(res.allowed, JSON.stringify(res)).toBe(true);
    expect(res.auditAnnotations?.verdict).toBe('allow');
  });

  it.each(WORKLOAD_KINDS)('%s with one unsigned image is denied, naming it', async (kind: WorkloadKind) => {
    const images = { ...signedImages(), containers: [w.images.signed.reference, w.images.unsigned.reference] };
    const res = await review(workloadReview(kind, images));
    expectDenied(res, w.images.unsigned.path);
    expect(res.auditAnnotations?.verdict).toBe('deny');
  });

  it('denies the wrong identity, the untrusted builder, the moved tag and an unmatched image', async () => {
    const cases = [
      [w.images.wrongIdentity.reference, w.images.wrongIdentity.path],
      [w.images.badProvenance.reference, w.images.badProvenance.path],
      [w.images.retagged.reference, w.images.retagged.path],
      [`${w.registry.host}/other/thing:v1`, 'other/thing'],
    ] as const;
    for (const [image, naming] of cases)
      expectDenied(await review(workloadReview('Pod', { containers: [image] })), naming);
  });

  it('allows the fallback-index-only image and the digest the moved tag was signed under', async () => {
    const pinned = `${w.images.retagged.repository}@${w.images.retagged.signedDigest}`;
    for (const image of [w.images.fallbackOnly.reference, pinned]) {
      const res = await review(workloadReview('Pod', { containers: [image] }));
      expect(res.allowed, `${image}: ${JSON.stringify(res)}`).toBe(true);
    }
  });

  it('pods/ephemeralcontainers UPDATE: an unsigned debug container is denied, a signed one allowed', async () => {
    const pod = { containers: [w.images.signed.reference] };
    expectDenied(await review(ephemeralContainersReview(pod, w.images.unsigned.reference)), w.images.unsigned.path);
    const ok = await review(ephemeralContainersReview(pod, w.images.fallbackOnly.reference));
    expect(ok.allowed, JSON.stringify(ok)).toBe(true);
  });

  it('/mutate pins every image to repo@sha256; a tag moved afterwards does not change the pinned object', async () => {
    await w.moveTag('acme/app', 'release', w.images.signed.digest);
    const tagged = `${w.images.signed.repository}:release`;
    const r = workloadReview('Deployment', { containers: [tagged], initContainers: [w.images.fallbackOnly.reference] });
    const res = await review(r, '/mutate');
    expect(res.allowed, JSON.stringify(res)).toBe(true);
    expect(res.patchType).toBe('JSONPatch');
    const pinned = applyPins(r.request.object!, res.patch!);
    const images = [...imagePointers('Deployment', pinned).values()];
    expect(images).toHaveLength(2);
    const { signed, fallbackOnly } = w.images;
    expect(images[0]).toMatch(new RegExp(`^${esc(signed.repository)}(:release)?@${signed.digest}$`));
    expect(images[1]).toMatch(
      new RegExp(`^${esc(fallbackOnly.repository)}(:${fallbackOnly.tag})?@${fallbackOnly.digest}$`),
    );

    // The tag moves to an unsigned image after admission: the pinned object still names what was verified.
    await w.moveTag('acme/app', 'release', w.images.retagged.digest);
    const after = await review(reviewOf('Deployment', pinned));
    expect(after.allowed, JSON.stringify(after)).toBe(true);
    expectDenied(await review(workloadReview('Deployment', { containers: [tagged] })), 'acme/app');
  });

  it('warn mode (namespace sandbox) admits the unsigned image with a warning; enforce (default) denies it', async () => {
    const images = { containers: [w.images.unsigned.reference] };
    const warned = await review(workloadReview('Deployment', images, { namespace: 'sandbox' }));
    expect(warned.allowed, JSON.stringify(warned)).toBe(true);
    expect((warned.warnings ?? []).join('\n')).toContain(w.images.unsigned.path);
    for (const warning of warned.warnings ?? []) expect(warning.length).toBeLessThanOrEqual(120);
    expectDenied(await review(workloadReview('Deployment', images, { namespace: 'prod-eu' })), w.images.unsigned.path);
  });

  it('DELETE is never blocked; a dryRun gets the verdict without being refused', async () => {
    const images = { containers: [w.images.unsigned.reference] };
    const del = await review(workloadReview('Deployment', images, { operation: 'DELETE' }));
    expect(del.allowed).toBe(true);
    const dry = await review(workloadReview('Deployment', images, { dryRun: true }));
    expect(dry.allowed).toBe(true);
    expect((dry.warnings ?? []).join('\n')).toContain(w.images.unsigned.path);
  });

  it('answers every malformed input (4xx or a deny), never allows, and /healthz works after', async () => {
    for (const c of malformedCorpus(w.images.signed.reference, w.registry.host)) {
      let a: Answer;
      try {
        a = await send('/validate', c.body());
      } catch (err) {
        // A cut connection (EPIPE/ECONNRESET): no corpus entry accepts it (see MalformedAnswer).
        const code = (err as NodeJS.ErrnoException).code ?? '';
        expect(['EPIPE', 'ECONNRESET'], `${c.name}: ${String(err)}`).toContain(code);
        expect(c.acceptable, `${c.name}: connection cut (${code})`).toContain('connection-cut');
        expect((await send('/healthz', '', 'GET')).status, `after ${c.name}`).toBe(200);
        continue;
      }
      const answer = a.status >= 400 && a.status < 500 ? 'http-4xx' : a.response?.allowed === false ? 'deny' : 'other';
      expect(c.acceptable, `${c.name}: HTTP ${a.status} ${a.text.slice(0, 300)}`).toContain(answer);
      if (answer === 'deny' && c.uid) expect(a.response!.uid, c.name).toBe(c.uid);
      const health = await send('/healthz', '', 'GET');
      expect(health.status, `after ${c.name}`).toBe(200);
    }
  });

  // Last: stops the registry.
  it('with the registry stopped, every tag and every unverified digest is denied, never allowed', async () => {
    await w.registry.stop();
    const { signed, fallbackOnly, unsigned, wrongIdentity, badProvenance } = w.images;
    const cases = [
      [signed.reference, signed.path],
      [fallbackOnly.reference, fallbackOnly.path],
      [unsigned.reference, unsigned.path],
      [wrongIdentity.pinned, wrongIdentity.path],
      [badProvenance.pinned, badProvenance.path],
    ] as const;
    for (const [image, path] of cases) {
      const res = await review(workloadReview('Deployment', { containers: [image] }));
      expect(res.allowed, `${image}: ${JSON.stringify(res)}`).toBe(false);
      expect(res.status?.message ?? '').toContain(path);
    }
    const refs = cases.map(([image]) => image);
    const all = await review(workloadReview('CronJob', { containers: refs }));
    expect(all.allowed).toBe(false);
    expect((await send('/healthz', '', 'GET')).status).toBe(200);
  });
});
