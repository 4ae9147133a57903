import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  AIRLOCK_BUILD_TYPE,
  bundleVerifiers,
  checkVsaBundle,
  loadPolicyFile,
  parsePolicy,
  readBundleFiles,
  verifyArtifactByPolicy,
  type LoadedPolicy,
  type PolicyRun,
} from '@airlock/policy';
import { BundleVerifier } from '@airlock/verify';
import type { DemoContext, DemoStepSpec } from './demo.js';
import { fromMirrorStore } from './verify/inputs.js';
import { renderHtml, renderMarkdown } from './verify/report-html.js';
import { reportModel } from './verify/report-model.js';
import { writeSignedVsa } from './verify/vsa.js';

/**
 * The demo's steps after the hermetic build, in order; each is a library call a release engineer's `airlock verify
 * artifact --policy … --vsa …` and `airlock report …` make. Append to this list to extend the demo.
 */
export const AFTER_BUILD_STEPS: DemoStepSpec[] = [
  {
    name: 'verify: the release policy (builder, source repo and commit, reproducible, dependencies in the imported mirror store, SBOM)',
    run: verifyByPolicy,
  },
  { name: 'reject: the same build under a policy naming another builder identity', run: rejectOtherIdentity },
  { name: 'vsa: sign a SLSA verification summary as the verifier, and check it as a consumer', run: signAndCheckVsa },
  { name: 'report: write the HTML and Markdown report of the chain', run: writeReport },
];

/** The demo's release policy: every rule kind the engine has except advisories, pinned to this build. */
function releasePolicy(ctx: DemoContext, builder: { name: string; subject: string }): string {
  const { issuer, sync } = ctx.identities;
  return `# Written by airlock demo: the policy the demo build is verified against.
apiVersion: airlock.dev/policy/v1
name: airlock demo release
trustedRoots: [plane/trusted_root.json]
authorities:
  ${builder.name}: { keyless: { subject: '${builder.subject}', issuer: '${issuer}' } }
  mirror-sync: { keyless: { subject: '${sync}', issuer: '${issuer}' } }
provenance:
  authorities: [${builder.name}]
  builderIds: ['${ctx.identities.runner}']
  buildTypes: ['${AIRLOCK_BUILD_TYPE}']
  source:
    uris: ['${pathToFileURL(resolve(ctx.source.repo)).href}']
    refs: { branches: [main] }
    commit: '${ctx.source.commit}'
  reproducible: true
  maxAge: 1h
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [${builder.name}] }
`;
}

async function verifyWith(ctx: DemoContext, policy: LoadedPolicy): Promise<PolicyRun> {
  const verifiers = bundleVerifiers(policy, [ctx.plane.trustedRoot]);
  const snapshots = fromMirrorStore(ctx.storeDir, verifiers);
  const a = ctx.build.artifacts[0]!;
  return verifyArtifactByPolicy({
    policy,
    verifiers,
    artifact: { name: a.name, bytes: readFileSync(a.path) },
    resourceUri: a.path,
    bundles: readBundleFiles([a.provenanceBundlePath!, a.sbomBundlePath!]),
    snapshotSource: snapshots.source,
    snapshotInfo: snapshots.infos,
  });
}

const failedRules = (run: PolicyRun): string =>
  run.verdict.rules
    .filter((r) => !r.passed)
    .map((r) => `${r.rule}: ${r.message}`)
    .join('; ');

async function verifyByPolicy(ctx: DemoContext): Promise<Record<string, unknown>> {
  const path = join(ctx.dataDir, 'release.policy.yaml');
  writeFileSync(path, releasePolicy(ctx, { name: 'runner', subject: ctx.identities.runner }));
  const run = await verifyWith(ctx, loadPolicyFile(path));
  if (run.verdict.result !== 'PASS') throw new Error(`the build fails the release policy: ${failedRules(run)}`);
  ctx.policyPath = path;
  ctx.run = run;
  return {
    policy: path,
    result: run.verdict.result,
    levels: run.verdict.verifiedLevels.join(', '),
    rules: run.verdict.rules.map((r) => r.rule).join(', '),
    snapshot: run.verdict.facts.mirrorSnapshot ?? ctx.snapshotId,
    commit: run.verdict.facts.commit,
    byHand: `airlock verify artifact ${run.resourceUri} --policy ${path} --mirror-store ${ctx.storeDir}`,
  };
}

async function rejectOtherIdentity(ctx: DemoContext): Promise<Record<string, unknown>> {
  const policy = parsePolicy(
    releasePolicy(ctx, { name: 'builder-as-sync-job', subject: ctx.identities.sync }),
    'airlock:demo-wrong-identity',
  );
  const run = await verifyWith(ctx, policy);
  const rule = run.verdict.rules.find((r) => r.rule === 'provenance.signed');
  if (run.verdict.result !== 'FAIL' || rule?.passed !== false)
    throw new Error('the build passed a policy naming another builder identity: the demo failed');
  return { rejected: `${rule.rule}: ${rule.message}` };
}

async function signAndCheckVsa(ctx: DemoContext): Promise<Record<string, unknown>> {
  const run = ctx.run!;
  const out = join(ctx.dataDir, `${run.artifact.name}.vsa.sigstore.json`);
  const { verifier, issuer } = ctx.identities;
  const signed = await writeSignedVsa(run, { signer: ctx.signerFor(verifier), verifierId: verifier, out });
  const checked = checkVsaBundle(JSON.parse(readFileSync(out, 'utf8')), out, {
    verifiers: [new BundleVerifier(ctx.plane.trustedRoot)],
    identity: { subject: verifier, issuer },
    expect: { subjectDigest: run.artifact.digest, policyDigest: run.policy.digest.sha256 },
  });
  ctx.vsaPath = out;
  return {
    vsa: out,
    logIndex: signed.logIndex ?? '-',
    verifier,
    result: `${checked.predicate.verificationResult} ${checked.predicate.verifiedLevels.join(', ')}`,
    policyDigest: `sha256:${run.policy.digest.sha256}`,
  };
}

async function writeReport(ctx: DemoContext): Promise<Record<string, unknown>> {
  const model = reportModel(ctx.run!);
  const html = join(ctx.dataDir, 'report.html');
  const md = join(ctx.dataDir, 'report.md');
  writeFileSync(html, renderHtml(model));
  writeFileSync(md, renderMarkdown(model));
  ctx.reportPath = html;
  return { report: html, markdown: md };
}
