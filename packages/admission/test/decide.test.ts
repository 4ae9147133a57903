/**
 * The decision without a registry (runs everywhere): what is skipped (DELETE, CONNECT, status, scale), what is
 * refused for its shape (no uid, unknown kind, the pre-1.22 EphemeralContainers object, a malformed pod spec, a
 * 5,000-character reference), unmatched images denied by default and allowed (unpinned, no registry contacted)
 * with `unmatched: allow`, an unconfigured registry denied without a connection, audit annotations on every
 * response, and dryRun never blocked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAdmissionController } from '../src/controller.js';
import type { AdmissionRequest, AdmissionResponse } from '../src/types.js';
import { admissionRequest } from './k8s.js';

const dir = mkdtempSync(join(tmpdir(), 'airlock-adm-decide-'));
const root = join(dir, 'trusted_root.json');
writeFileSync(root, '{}');
const release = `{ inline: { apiVersion: airlock.dev/policy/v1, authorities: { k: { keyless: { subject: s, issuer: i } } }, attestations: [ { predicateType: 'https://slsa.dev/provenance/v1', authorities: [k] } ] } }`;

function controller(unmatched: 'deny' | 'allow') {
  const file = join(dir, `${unmatched}.yaml`);
  writeFileSync(
    file,
    `apiVersion: airlock.dev/admission-policy/v1\nunmatched: ${unmatched}\npolicies:\n  - { name: corp, images: ['reg.corp/**'], release: ${release} }\n`,
  );
  return createAdmissionController({
    policyFile: file,
    trustedRoots: [root],
    registries: { file: registries },
    watch: false,
  });
}
const registries = join(dir, 'registries.yaml');
writeFileSync(registries, 'registries: {}\n');

const deny = controller('deny');
const allow = controller('allow');
afterAll(async () => {
  await deny.close();
  await allow.close();
  rmSync(dir, { recursive: true, force: true });
});

const decide = (c: typeof deny, r: AdmissionRequest, mutate = false): Promise<AdmissionResponse> =>
  c.decide(r, { mutate, signal: new AbortController().signal });

describe('decide without a registry', () => {
  it('skips DELETE, CONNECT, status and scale with an audit annotation saying why', async () => {
    const unsigned = { containers: ['reg.corp/acme/app:v1'] };
    for (const extra of [
      { operation: 'DELETE' as const },
      { operation: 'CONNECT' as const },
      { operation: 'UPDATE' as const, subResource: 'status' },
    ]) {
      const r = await decide(deny, admissionRequest('Pod', unsigned, extra));
      expect(r.allowed).toBe(true);
      expect(r.auditAnnotations?.['verdict']).toBe('skip');
      expect(r.auditAnnotations?.['reason']).toBeTruthy();
    }
    const scale = await decide(
      deny,
      admissionRequest('StatefulSet', unsigned, { operation: 'UPDATE', subResource: 'scale' }),
    );
    expect(scale).toMatchObject({ allowed: true, auditAnnotations: { verdict: 'skip' } });
  });

  it('refuses what it cannot read, with a 400 naming the problem', async () => {
    const base = admissionRequest('Pod', { containers: ['reg.corp/acme/app:v1'] });
    expect(await decide(deny, { ...base, uid: '' })).toMatchObject({
      allowed: false,
      status: { code: 400, message: 'request.uid is missing' },
    });
    expect(await decide(deny, { ...base, kind: { group: '', version: 'v1', kind: 'ConfigMap' } })).toMatchObject({
      allowed: false,
      status: { code: 400, message: 'airlock does not read images from core/v1/ConfigMap' },
    });
    const old = await decide(deny, {
      ...base,
      operation: 'UPDATE',
      subResource: 'ephemeralcontainers',
      kind: { group: '', version: 'v1', kind: 'EphemeralContainers' },
      object: { ephemeralContainers: [{ name: 'd', image: 'evil/x' }] },
    });
    expect(old).toMatchObject({ allowed: false, status: { code: 400 } });
    expect(await decide(deny, { ...base, kind: { group: 'apps', version: 'v1', kind: 'Pod' } })).toMatchObject({
      allowed: false,
    });
    const { object: _, ...noObject } = base;
    expect(await decide(deny, noObject)).toMatchObject({
      allowed: false,
      status: { code: 400, message: 'request.object is missing (CREATE)' },
    });
    const bad = await decide(deny, { ...base, object: { spec: { initContainers: [{ name: 'x', image: null }] } } });
    expect(bad.status?.message).toBe(
      'Pod team-a/app: /spec/initContainers/0/image must be a non-empty image reference',
    );
    expect(bad.auditAnnotations?.['verdict']).toBe('deny');
    const long = await decide(deny, admissionRequest('Pod', { containers: [`reg.corp/${'x'.repeat(5000)}`] }));
    expect(long.allowed).toBe(false);
    expect(long.status?.message).toMatch(/…\(5009 characters\) is not a valid image reference$/);
  });

  it('unmatched images: denied by default, allowed unpinned with unmatched: allow (no registry contacted)', async () => {
    const req = admissionRequest('Deployment', { containers: ['nginx:1.27'], initContainers: ['quay.io/x/y:1'] });
    const d = await decide(deny, req);
    expect(d.allowed).toBe(false);
    expect(d.status?.message).toBe(
      'quay.io/x/y:1: no admission policy matches quay.io/x/y (unmatched: deny)\nnginx:1.27: no admission policy matches docker.io/library/nginx (unmatched: deny)',
    );
    const a = await decide(allow, req, true);
    expect(a).toMatchObject({
      allowed: true,
      auditAnnotations: { verdict: 'allow', policy: '(none)', digest: '(none)' },
    });
    expect(a.patch).toBeUndefined();
  });

  it('a matched image on a registry that is not configured is denied, never fetched', async () => {
    const r = await decide(allow, admissionRequest('Job', { containers: ['reg.corp/acme/app:v1'] }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toBe(
      'reg.corp/acme/app:v1: registry reg.corp is not one the admission controller is configured to use',
    );
  });

  it('dryRun is never blocked; the verdict is in warnings and the audit annotation', async () => {
    const r = await decide(deny, admissionRequest('Pod', { containers: ['nginx:1.27'] }, { dryRun: true }));
    expect(r.allowed).toBe(true);
    expect(r.warnings).toEqual([
      'dry run, would deny: nginx:1.27: no admission policy matches docker.io/library/nginx (unmatched: deny)',
    ]);
    expect(r.auditAnnotations?.['verdict']).toBe('dry-run');
  });

  it('an aborted request is denied naming the deadline, not allowed', async () => {
    const ac = new AbortController();
    ac.abort(new Error('deadline'));
    const r = await deny.decide(
      admissionRequest('Pod', { containers: ['reg.corp/acme/app@sha256:' + 'c'.repeat(64)] }),
      { mutate: false, signal: ac.signal },
    );
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toMatch(
      /^reg\.corp\/acme\/app@sha256:c+ denied by policy corp: .*the admission deadline passed/,
    );
  });
});

describe('workspace verdicts without a registry', () => {
  // Nothing listens on port 1 of loopback: every registry call is refused at once (ECONNREFUSED).
  const down = '127.0.0.1:1';
  const downController = (() => {
    const file = join(dir, 'down.yaml');
    writeFileSync(
      file,
      `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: corp, images: ['reg.corp/**', '${down}/**'], release: ${release} }\n`,
    );
    const regs = join(dir, 'down-registries.yaml');
    writeFileSync(regs, `registries:\n  '${down}': { plainHttp: true }\n`);
    return createAdmissionController({
      policyFile: file,
      trustedRoots: [root],
      registries: { file: regs },
      watch: false,
    });
  })();
  afterAll(() => downController.close());
  const check = (image: string) => downController.checkWorkspace({ image }, { signal: new AbortController().signal });

  it('an image on a registry the operator did not configure is a policy refusal (FAIL), not unreachable (ERROR)', async () => {
    const v = await check('reg.corp/acme/app:v1');
    expect(v.allowed).toBe(false);
    expect(v.image.verdict).toBe('FAIL');
    expect(v.reason).toBe(
      'reg.corp/acme/app:v1: registry reg.corp is not one the admission controller is configured to use',
    );
  });

  it('a configured registry that is down is ERROR (unreachable), naming the image once', async () => {
    const image = `${down}/acme/app:v1`;
    const v = await check(image);
    expect(v).toMatchObject({ allowed: false, image: { verdict: 'ERROR' } });
    expect(v.reason).toMatch(/^127\.0\.0\.1:1\/acme\/app:v1: tag v1: registry error: .*ECONNREFUSED/);
    expect(v.reason.split(image).length - 1, v.reason).toBe(1);
  });

  it('a verification that fails after the digest is known names the image once (no `ref: ref:`)', async () => {
    const image = `${down}/acme/app@sha256:${'d'.repeat(64)}`;
    // This test's trusted root is `{}`: verification itself fails (FAIL); an aborted check is the deadline (ERROR).
    const failed = await check(image);
    expect(failed).toMatchObject({ allowed: false, image: { verdict: 'FAIL' } });
    expect(failed.reason).toMatch(/denied by policy corp: cannot verify: trusted root/);
    const ac = new AbortController();
    ac.abort(new Error('deadline'));
    const late = await downController.checkWorkspace({ image }, { signal: ac.signal });
    expect(late).toMatchObject({ allowed: false, image: { verdict: 'ERROR' } });
    expect(late.reason).toMatch(/denied by policy corp: the admission deadline passed/);
    for (const v of [failed, late]) expect(v.reason.split(image).length - 1, v.reason).toBe(1);
  });
});
