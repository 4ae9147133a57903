/**
 * `airlock demo` (the quick start's first command) runs the whole chain on embedded defaults and says so: trust
 * plane, sync, verified import, mirror, hermetic build with the rebuild check, signed provenance + SBOM, then a
 * release-policy verification against the imported mirror store, a signed VSA and the HTML report, whose paths it
 * prints last. The test re-verifies the demo's outputs itself rather than trusting its report: the provenance with
 * BundleVerifier, the VSA with stock @sigstore/verify and checkVsa (about the artifact, under the policy file the
 * demo wrote), and the report's text.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { checkVsa } from '@airlock/policy';
import { BundleVerifier } from '@airlock/verify';
import { runCli } from './helpers/cli.js';
import { toolsAvailable, which } from './helpers/netns.js';

const enabled = toolsAvailable('airlock demo (hermetic build stage)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('git') ? undefined : 'git is not installed',
]);

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
    };
    expect(report.ok).toBe(true);
    expect(report.skipped).toBeUndefined();
    const names = report.steps.map((s) => s.step.split(':')[0]);
    expect(names).toEqual(expect.arrayContaining(['sync', 'import', 'run', 'verify', 'reject']));
    // The demo ends with the policy verification, the VSA and the report, in that order, and names their paths.
    expect(names.slice(-4)).toEqual(['verify', 'reject', 'vsa', 'report']);
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
  }, 180_000);
});
