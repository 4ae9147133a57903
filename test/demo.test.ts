/**
 * `airlock demo` (the quick start's first command) runs the whole chain on embedded defaults and says so: trust
 * plane, sync, verified import, mirror, hermetic build with the rebuild check, signed provenance + SBOM, and the
 * verifications. The test re-verifies the demo's outputs itself rather than trusting its report.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
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
    };
    expect(report.ok).toBe(true);
    expect(report.skipped).toBeUndefined();
    const names = report.steps.map((s) => s.step.split(':')[0]);
    expect(names).toEqual(expect.arrayContaining(['sync', 'import', 'run', 'verify', 'reject']));
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
  }, 180_000);
});
