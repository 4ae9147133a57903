import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createAdmissionController, startAdmissionServer, type AdmissionResponse } from '@airlock/admission';
import { createTlsServerPair } from '@airlock/ca';
import { buildImageLayout, RegistryClient } from '@airlock/oci';
import type { DemoContext, DemoStepSpec } from './demo.js';

/**
 * The demo's last steps (issue 9): the image the hermetic build pushed and signed is admitted by the admission
 * webhook, and an image built outside airlock (pushed to the same registry, never signed) is denied. Both go
 * through the real HTTPS endpoint as Kubernetes API-server AdmissionReviews; no cluster is needed.
 */
export const ADMISSION_STEPS: DemoStepSpec[] = [
  {
    name: 'unsigned: push an image built outside airlock (an OCI layout, nothing signed) to the same registry',
    run: pushUnsigned,
  },
  {
    name: 'admission: the webhook (HTTPS, AdmissionReview v1) admits a Deployment of the signed image and denies one of the unsigned image',
    run: admitAndDeny,
  },
];

const DEMO_REPOSITORY = 'airlock-demo/greeting';
const UNSIGNED_REPOSITORY = 'elsewhere/greeting';

/** The build spec's `image` for the demo's registry: the build output as a one-layer OCI image. */
export function demoImageSpec(registryHost: string): { type: 'oci'; repository: string; tag: string } {
  return { type: 'oci', repository: `${registryHost}/${DEMO_REPOSITORY}`, tag: 'v1' };
}

async function pushUnsigned(ctx: DemoContext): Promise<Record<string, unknown>> {
  const registry = ctx.registry!;
  const layout = join(ctx.dataDir, 'unsigned-layout');
  await buildImageLayout(
    {
      files: [{ path: '/app/greeting.txt', bytes: 'hello from a laptop, never built by airlock\n' }],
      cmd: ['/bin/cat', '/app/greeting.txt'],
    },
    layout,
  );
  const pushed = await new RegistryClient({ url: registry.url }).pushLayout(
    layout,
    `${registry.host}/${UNSIGNED_REPOSITORY}:v1`,
  );
  ctx.unsignedImage = `${registry.host}/${UNSIGNED_REPOSITORY}:v1`;
  return { image: ctx.unsignedImage, digest: pushed.digest, signatures: 'none' };
}

/** The admission policy: every image of the demo registry must be the runner's build of this commit. */
function admissionPolicy(ctx: DemoContext, registryHost: string): string {
  const { issuer, runner } = ctx.identities;
  return `# Written by airlock demo: what the admission webhook lets run.
apiVersion: airlock.dev/admission-policy/v1
policies:
  - name: built-by-airlock
    images: ['${registryHost}/**']
    mode: enforce
    release:
      inline:
        apiVersion: airlock.dev/policy/v1
        authorities:
          runner: { keyless: { subject: '${runner}', issuer: '${issuer}' } }
        provenance:
          authorities: [runner]
          builderIds: ['${runner}']
          source:
            uris: ['${pathToFileURL(resolve(ctx.source.repo)).href}']
            commit: '${ctx.source.commit}'
          reproducible: true
        sbom: { authorities: [runner] }
`;
}

async function admitAndDeny(ctx: DemoContext): Promise<Record<string, unknown>> {
  const registry = ctx.registry!;
  const signedImage = ctx.build.image!.tags[0]
    ? `${ctx.build.image!.repository}:${ctx.build.image!.tags[0]}`
    : ctx.build.image!.reference;
  const dir = join(ctx.dataDir, 'admission');
  mkdirSync(dir, { recursive: true });
  const files = {
    policy: join(dir, 'admission.policy.yaml'),
    registries: join(dir, 'registries.yaml'),
    cert: join(dir, 'tls.crt'),
    key: join(dir, 'tls.key'),
  };
  writeFileSync(files.policy, admissionPolicy(ctx, registry.host));
  writeFileSync(files.registries, `registries:\n  '${registry.host}': { plainHttp: true }\n`);
  const tls = await createTlsServerPair(['127.0.0.1']);
  writeFileSync(files.cert, tls.certPem);
  writeFileSync(files.key, tls.keyPem, { mode: 0o600 });

  const controller = createAdmissionController({
    policyFile: files.policy,
    trustedRoots: [join(ctx.dataDir, 'plane', 'trusted_root.json')],
    registries: { file: files.registries },
    watch: false,
  });
  try {
    const server = await startAdmissionServer({
      controller,
      tls: { certFile: files.cert, keyFile: files.key },
      log: () => undefined,
    });
    try {
      const allowed = await validate(server.url, tls.certPem, deploymentReview('greeting', signedImage));
      const denied = await validate(server.url, tls.certPem, deploymentReview('laptop-build', ctx.unsignedImage!));
      if (!allowed.allowed)
        throw new Error(`the webhook denied the demo's signed image ${signedImage}: ${allowed.status?.message}`);
      if (denied.allowed) throw new Error(`the webhook admitted the unsigned image ${ctx.unsignedImage}`);
      return {
        webhook: `${server.url}/validate`,
        policy: files.policy,
        allowed: `Deployment default/greeting (${signedImage}) → ALLOWED (${pinnedDigest(allowed) ?? 'no digest'})`,
        denied: `Deployment default/laptop-build (${ctx.unsignedImage}) → DENIED: ${denied.status?.message ?? ''}`,
      };
    } finally {
      await server.close();
    }
  } finally {
    await controller.close();
  }
}

/** The digest the webhook resolved the tag to (its `digest` audit annotation is `ref=sha256:…`). */
function pinnedDigest(r: AdmissionResponse): string | undefined {
  return r.auditAnnotations?.['digest']?.split('=').pop();
}

/** What the API server sends for `kubectl create deployment NAME --image IMAGE` in namespace default. */
function deploymentReview(name: string, image: string): Record<string, unknown> {
  const gvk = { group: 'apps', version: 'v1', kind: 'Deployment' };
  const gvr = { group: 'apps', version: 'v1', resource: 'deployments' };
  const labels = { app: name };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: gvk,
      resource: gvr,
      requestKind: gvk,
      requestResource: gvr,
      name,
      namespace: 'default',
      operation: 'CREATE',
      userInfo: { username: 'airlock-demo', groups: ['system:authenticated'] },
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: 'default', labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name, image }] } },
        },
      },
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/** POST /validate as the API server does (HTTPS, trusting only the webhook's CA bundle). */
function validate(url: string, ca: string, review: Record<string, unknown>): Promise<AdmissionResponse> {
  return new Promise((done, reject) => {
    const req = request(
      `${url}/validate`,
      { method: 'POST', ca, headers: { 'content-type': 'application/json' }, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const body = JSON.parse(text) as { response?: AdmissionResponse };
            if (res.statusCode !== 200 || !body.response) throw new Error(`HTTP ${res.statusCode}`);
            done(body.response);
          } catch (err) {
            reject(new Error(`the webhook answered ${(err as Error).message}: ${text.slice(0, 500)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('the webhook did not answer within 15 s')));
    req.on('error', reject);
    req.end(JSON.stringify(review));
  });
}
