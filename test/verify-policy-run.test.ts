/**
 * `airlock verify artifact` and `airlock report` on what a real run wrote: runBuild (runner/src) builds the runner's
 * `good` fixture in the bubblewrap sandbox with the rebuild check and signs provenance and SBOM through a real trust
 * plane as the runner, writing the bundles beside the output under the runner's names. The CLI finds them there (no
 * --bundle), verifies them and passes a branch policy at SLSA Build L3 with a sync-signed snapshot; a tag-only
 * policy refuses the branch build naming provenance.source.ref. Skips (printing why) without bwrap/strace/git unless
 * AIRLOCK_REQUIRE_TOOLS=1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type RunResult } from '@airlock/runner';
import {
  bwrapProblem,
  gitProblem,
  makeGitFixtureRepo,
  rmrf,
  sandboxTempDir as tempDir,
  straceProblem,
  toolsAvailable,
} from '@airlock/testkit';
import { startWorld, type World } from './helpers/policy-world.js';
import { REPO_ROOT, runCli } from './helpers/cli.js';

const enabled = toolsAvailable('verify artifact on a real run (bwrap sandbox, strace, git)', [
  bwrapProblem(),
  straceProblem(),
  gitProblem(),
]);

let w: World;
let dir: string;
let result: RunResult;
let snapDir: string;

const policy = (refs: string): string => {
  const path = join(dir, `policy-${refs.length}.yaml`);
  writeFileSync(
    path,
    `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  buildTypes: [https://airlock.dev/buildtypes/hermetic/v1]
  source: { uris: ['file:///**/good.git'], refs: ${refs} }
  reproducible: true
  maxAge: 1h
  externalParameters: { builder.type: [command], outputs: [hello.txt] }
dependencies: { syncAuthorities: [sync] }
sbom: { authorities: [runner] }
`,
  );
  return path;
};

describe.runIf(enabled)('verify artifact on a real runBuild', () => {
  beforeAll(async () => {
    w = await startWorld(3);
    dir = tempDir('verify-run');
    const fx = makeGitFixtureRepo(join(REPO_ROOT, 'fixtures/runner/good'), dir);
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
    snapDir = join(dir, 'snapshot');
    mkdirSync(join(snapDir, 'attestations'), { recursive: true });
    writeFileSync(join(snapDir, 'manifest.json'), w.snapshot.manifestBytes);
    writeFileSync(join(snapDir, 'attestations', 'manifest.sigstore.json'), JSON.stringify(w.snapshot.bundle));
  }, 180_000);

  afterAll(async () => {
    await w?.close();
    if (dir) rmrf(dir);
  });

  const verify = (policyPath: string) =>
    runCli([
      'verify',
      'artifact',
      result.artifacts[0]!.path,
      '--policy',
      policyPath,
      '--data',
      join(w.dir, 'plane'),
      '--snapshot',
      snapDir,
      '--json',
    ]);

  it('finds the run’s bundles beside the output and passes a branch policy at SLSA Build L3', async () => {
    const r = await verify(policy('{ branches: [main] }'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as {
      result: string;
      verifiedLevels: string[];
      inputAttestations: { uri: string }[];
      facts: { ref: string; reproducibility: string };
    };
    expect(v.result).toBe('PASS');
    expect(v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    expect(v.facts).toMatchObject({ ref: 'refs/heads/main', reproducibility: 'reproduced' });
    const a = result.artifacts[0]!;
    expect(v.inputAttestations.map((x) => x.uri).sort()).toEqual([a.provenanceBundlePath, a.sbomBundlePath].sort());
  });

  it('a tag-only policy refuses the branch build, naming provenance.source.ref (exit 1)', async () => {
    const r = await verify(policy("{ tags: ['v*'] }"));
    expect(r.code).toBe(1);
    const v = JSON.parse(r.stdout) as { rules: { rule: string; passed: boolean; seen: unknown }[] };
    expect(v.rules.filter((x) => !x.passed).map((x) => [x.rule, x.seen])).toEqual([
      ['provenance.source.ref', 'refs/heads/main'],
    ]);
  });

  it('`airlock report` on the real run writes a PASS page naming the commit', async () => {
    const html = join(dir, 'report.html');
    const r = await runCli([
      'report',
      result.artifacts[0]!.path,
      '--policy',
      policy('{ branches: [main] }'),
      '--data',
      join(w.dir, 'plane'),
      '--snapshot',
      snapDir,
      '--html',
      html,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('>PASS<');
    expect(page).toContain(result.source.commit);
  });
});
