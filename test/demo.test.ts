/**
 * `airlock demo` (the quick start's first command) runs the whole chain on embedded defaults and says so: trust
 * plane, sync, verified import, mirror, hermetic build with the rebuild check, signed provenance + SBOM, then a
 * release-policy verification against the imported mirror store, a signed VSA and the HTML report, whose paths it
 * prints last. The test re-verifies the demo's outputs itself rather than trusting its report: the provenance with
 * BundleVerifier, the VSA with stock @sigstore/verify and checkVsa (about the artifact, under the policy file the
 * demo wrote), and the report's text. With Debian's docker-registry installed (required under AIRLOCK_REQUIRE_TOOLS=1)
 * the demo then ends with admission: the build pushed its output as a signed OCI image to a loopback registry, and
 * the admission webhook, sent AdmissionReviews over HTTPS, admitted a Deployment of that image (at the digest the
 * build pushed) and denied one of an unsigned image naming it and the failed rule; without a working
 * docker-registry the demo still exits 0 and says it skipped the admission stage and why.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { checkVsa } from '@airlock/policy';
import { registryProblem } from '@airlock/testkit';
import { BundleVerifier } from '@airlock/verify';
import { runCli } from './helpers/cli.js';
import { toolsAvailable, which } from './helpers/netns.js';

const enabled = toolsAvailable('airlock demo (hermetic build stage)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('git') ? undefined : 'git is not installed',
]);

const withRegistry = enabled && toolsAvailable('airlock demo (admission stage: docker-registry)', [registryProblem()]);

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const dir = mkdtempSync(join(tmpdir(), 'airlock-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!enabled)('airlock demo', () => {
  it('runs sync → import → serve → run → sign → verify and leaves verifiable outputs', async () => {
    const data = join(dir, 'data');
    const r = await runCli(['demo', '--data', data, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      skipped?: string;
      steps: { step: string; detail: Record<string, unknown> }[];
      policy: string;
      vsa: string;
      report: string;
      admission?: { allowed: string; denied: string };
      admissionSkipped?: string;
    };
    expect(report.ok).toBe(true);
    expect(report.skipped).toBeUndefined();
    const names = report.steps.map((s) => s.step.split(':')[0]);
    expect(names).toEqual(expect.arrayContaining(['sync', 'import', 'run', 'verify', 'reject']));
    // After the build: the policy verification, the VSA and the report, in that order, then admission.
    const tail = ['verify', 'reject', 'vsa', 'report'];
    expect(names.slice(withRegistry ? -6 : -4)).toEqual(withRegistry ? [...tail, 'unsigned', 'admission'] : tail);
    const detail = (name: string): Record<string, unknown> => report.steps.find((s) => s.step.startsWith(name))!.detail;
    expect(detail('verify')).toMatchObject({ result: 'PASS', policy: join(data, 'release.policy.yaml') });
    for (const rule of [
      'provenance.builderId',
      'provenance.source.uri',
      'provenance.source.commit',
      'provenance.reproducible',
      'dependencies.snapshot',
      'sbom.signed',
    ])
      expect(detail('verify').rules).toContain(rule);
    expect(detail('reject').rejected).toMatch(/^provenance\.signed: /);
    expect(detail('vsa').vsa).toBe(report.vsa);
    expect(detail('report').report).toBe(report.report);
    expect(report.vsa).toBe(join(data, 'greeting.txt.vsa.sigstore.json'));
    expect(report.report).toBe(join(data, 'report.html'));
    const run = report.steps.find((s) => s.step.startsWith('run'))!;
    expect(run.detail).toMatchObject({ reproducibility: 'reproduced', mirrorBlobsUsed: 2 });

    const artifact = readFileSync(join(data, 'out', 'greeting.txt'));
    expect(artifact.toString()).toContain('hello, release engineer');
    expect(run.detail.artifact).toBe(`greeting.txt sha256:${createHash('sha256').update(artifact).digest('hex')}`);
    const root = JSON.parse(readFileSync(join(data, 'plane', 'trusted_root.json'), 'utf8')) as unknown;
    const endpoints = JSON.parse(readFileSync(join(data, 'plane', 'endpoints.json'), 'utf8')) as {
      trustDomain: string;
      identityIssuerUrl: string;
    };
    const verifier = new BundleVerifier(root);
    const policy = { subject: `spiffe://${endpoints.trustDomain}/airlock/runner`, issuer: endpoints.identityIssuerUrl };
    const bundle = JSON.parse(
      readFileSync(join(data, 'out', 'greeting.txt.provenance.sigstore.json'), 'utf8'),
    ) as unknown;
    expect(verifier.verify(bundle, { artifact, policy }).statement?.predicateType).toBe(
      'https://slsa.dev/provenance/v1',
    );
    // And not for different bytes.
    expect(() => verifier.verify(bundle, { artifact: Buffer.concat([artifact, Buffer.from('x')]), policy })).toThrow();

    // The VSA: stock @sigstore/verify against the plane's trusted root, signed as the verifier identity; its
    // statement is a PASSED VSA about the artifact, issued under the policy file the demo wrote.
    const verifierId = `spiffe://${endpoints.trustDomain}/airlock/verifier`;
    const vsa = bundleFromJSON(JSON.parse(readFileSync(report.vsa, 'utf8')));
    const signer = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(root)), {
      ctlogThreshold: 0,
      tlogThreshold: 1,
      timestampThreshold: 1,
    }).verify(toSignedEntity(vsa), {
      subjectAlternativeName: `^${verifierId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
      extensions: { issuer: endpoints.identityIssuerUrl },
    });
    expect(signer.identity?.subjectAlternativeName).toBe(verifierId);
    if (vsa.content.$case !== 'dsseEnvelope') throw new Error('the VSA is not a DSSE bundle');
    const statement = JSON.parse(vsa.content.dsseEnvelope.payload.toString('utf8')) as unknown;
    const sha256 = createHash('sha256').update(artifact).digest('hex');
    const policyDigest = createHash('sha256').update(readFileSync(report.policy)).digest('hex');
    const predicate = checkVsa(statement, { subjectDigest: { sha256 }, policyDigest, verifierId });
    expect(predicate.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    expect(() => checkVsa(statement, { subjectDigest: { sha256: 'f'.repeat(64) }, policyDigest })).toThrow(/not about/);

    // The report: self-contained HTML naming the verdict, the commit, the snapshot and the rules.
    const html = readFileSync(report.report, 'utf8');
    expect(html).toContain('PASS');
    expect(html).toContain(String(detail('verify').commit));
    expect(html).toContain(String(detail('verify').snapshot));
    expect(html).toContain('dependencies.snapshot');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']https?:/);

    if (!withRegistry) {
      expect(report.admissionSkipped).toMatch(/docker-registry/);
      return;
    }
    // Admission: the image the build pushed (its digest as image.json in the output directory records it) was
    // signed, admitted at that digest, and the unsigned image was denied, naming the image and the failed rule.
    expect(report.admissionSkipped).toBeUndefined();
    const image = JSON.parse(readFileSync(join(data, 'out', 'image.json'), 'utf8')) as {
      digest: string;
      repository: string;
      signed: boolean;
    };
    expect(image.signed).toBe(true);
    expect(run.detail).toMatchObject({ image: `${image.repository}@${image.digest}`, imageSigned: true });
    const unsigned = detail('unsigned');
    expect(unsigned).toMatchObject({ signatures: 'none' });
    expect(unsigned.digest).not.toBe(image.digest);
    const admission = detail('admission');
    expect(admission.webhook).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/validate$/);
    expect(admission.allowed).toBe(`Deployment default/greeting (${image.repository}:v1) → ALLOWED (${image.digest})`);
    expect(admission.denied).toMatch(
      new RegExp(
        `^Deployment default/laptop-build \\(${esc(String(unsigned.image))}\\) → DENIED: ${esc(String(unsigned.image))} .*${esc(String(unsigned.digest))}.*denied by policy built-by-airlock: provenance\\.signed: `,
      ),
    );
    expect(report.admission).toEqual({ allowed: admission.allowed, denied: admission.denied });
    // The policy the webhook enforced is on disk for the operator to read.
    expect(readFileSync(String(admission.policy), 'utf8')).toContain(`commit: '${String(detail('verify').commit)}'`);
  }, 180_000);

  it.runIf(withRegistry)(
    'says it skipped admission, and why, when docker-registry does not work',
    async () => {
      // A docker-registry that cannot even print its version shadows the real one.
      const bin = join(dir, 'broken-bin');
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, 'docker-registry'), '#!/bin/sh\necho "docker-registry: broken" >&2\nexit 1\n');
      chmodSync(join(bin, 'docker-registry'), 0o755);
      const r = await runCli(['demo', '--data', join(dir, 'data-no-registry'), '--json'], {
        env: { PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { ok: boolean; steps: { step: string }[]; admissionSkipped?: string };
      expect(report.ok).toBe(true);
      expect(report.admissionSkipped).toBe('docker-registry --version failed (exit 1)');
      expect(r.stderr).toContain('! admission stage skipped: docker-registry --version failed (exit 1)');
      // Everything else still ran; nothing about a registry or admission did.
      const names = report.steps.map((s) => s.step.split(':')[0]);
      expect(names.slice(-4)).toEqual(['verify', 'reject', 'vsa', 'report']);
      expect(names).not.toContain('registry');
      expect(names).not.toContain('admission');
    },
    180_000,
  );
});
