/**
 * The engine on what a real run writes: runBuild (runner/src) builds the runner's `good` fixture in the bubblewrap
 * sandbox with the rebuild check, signs provenance and SBOM through the test trust plane as the runner identity, and
 * declares mirror blobs that a sync-signed snapshot holds. The bundles the run wrote are verified with
 * BundleVerifier and evaluated: a branch policy passes at SLSA Build L3 (real sandbox parameters, real toolchain
 * entries, the real build-type schema), a tag-only policy refuses the branch build. Skips (printing why) without
 * bwrap/strace/git unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type RunResult } from '@airlock/runner';
import {
  bwrapProblem,
  gitProblem,
  makeGitFixtureRepo,
  rmrf,
  sandboxTempDir,
  straceProblem,
  toolsAvailable,
} from '@airlock/testkit';
import { evaluatePolicy, parsePolicy, type AttestationEvidence } from '@airlock/policy';
import { sha256, snapshotSource, startWorld, type World } from './helpers/policy-world.js';

const RUNNER_GOOD_FIXTURE = fileURLToPath(new URL('../fixtures/runner/good', import.meta.url));

const enabled = toolsAvailable('policy on a real run (bwrap sandbox, strace, git)', [
  bwrapProblem(),
  straceProblem(),
  gitProblem(),
]);

describe.runIf(enabled)('policy over a real runBuild', () => {
  let w: World;
  let dir: string;
  let result: RunResult;

  beforeAll(async () => {
    w = await startWorld(3);
    dir = sandboxTempDir('policy');
    const fx = makeGitFixtureRepo(RUNNER_GOOD_FIXTURE, dir);
    const specPath = join(dir, 'good.spec.json');
    writeFileSync(
      specPath,
      JSON.stringify({
        source: { repo: fx.repo, commit: fx.commit, ref: 'refs/heads/main' },
        builder: { type: 'command', argv: ['sh', 'build.sh'] },
        outputs: ['hello.txt'],
        reproducible: true,
        timeoutSeconds: 120,
      }),
    );
    result = await runBuild(specPath, {
      outDir: join(dir, 'out'),
      workRoot: join(dir, 'work'),
      builderId: w.ids.runner,
      signer: w.signers.runner,
      mirrorSnapshotId: w.snapshot.manifest.snapshot.id,
      resolvedMirrorDependencies: w.packages.map((p) => ({
        purl: p.purl,
        uri: p.entry.urls[0]!,
        digest: { ...p.entry.digests },
      })),
    });
  }, 180_000);

  afterAll(async () => {
    await w?.close();
    if (dir) rmrf(dir);
  });

  const policyText = (refs: string): string => `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  buildTypes: [https://airlock.dev/buildtypes/hermetic/v1]
  source:
    uris: ['file:///**/good.git']
    refs: ${refs}
  reproducible: true
  maxAge: 1h
  externalParameters: { builder.type: [command], outputs: [hello.txt] }
dependencies: { syncAuthorities: [sync] }
sbom: { authorities: [runner] }
`;

  function evidenceOfRun(): AttestationEvidence[] {
    const a = result.artifacts[0]!;
    return [a.provenanceBundlePath!, a.sbomBundlePath!].map((path) => {
      const bytes = readFileSync(path);
      return {
        uri: path,
        bundleDigest: { sha256: sha256(bytes) },
        verification: w.verifier.verify(JSON.parse(bytes.toString('utf8')), {
          artifact: readFileSync(a.path),
          allowAnyIdentity: true,
        }),
      };
    });
  }

  it('a branch policy passes the real run at SLSA Build L3', async () => {
    const a = result.artifacts[0]!;
    const v = await evaluatePolicy(
      parsePolicy(policyText('{ branches: [main] }')),
      {
        artifact: { name: a.name, digest: { sha256: a.sha256 } },
        attestations: evidenceOfRun(),
        snapshots: snapshotSource(w, w.snapshot),
      },
      { now: new Date() },
    );
    expect(v.rules.filter((r) => !r.passed)).toEqual([]);
    expect(v.result).toBe('PASS');
    expect(v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    expect(v.facts).toMatchObject({ ref: 'refs/heads/main', reproducibility: 'reproduced' });
    expect(v.facts.sourceUri).toMatch(/^file:\/\/\/.*\/good\.git$/);
  });

  it('a tag-only policy refuses the real branch build, naming the ref rule', async () => {
    const a = result.artifacts[0]!;
    const v = await evaluatePolicy(
      parsePolicy(policyText("{ tags: ['v*'] }")),
      {
        artifact: { name: a.name, digest: { sha256: a.sha256 } },
        attestations: evidenceOfRun(),
        snapshots: snapshotSource(w, w.snapshot),
      },
      { now: new Date() },
    );
    expect(v.result).toBe('FAIL');
    expect(v.rules.filter((r) => !r.passed).map((r) => [r.rule, r.seen])).toEqual([
      ['provenance.source.ref', 'refs/heads/main'],
    ]);
  });
});
