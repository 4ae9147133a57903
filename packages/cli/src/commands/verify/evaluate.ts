import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { sha256Hex } from '@airlock/core';
import { evaluatePolicy, type LoadedPolicy, type Verdict } from '@airlock/policy';
import type { BundleVerifier } from '@airlock/verify';
import { UsageError } from '../../output.js';
import {
  advisoriesFor,
  bundlePaths,
  checkBundles,
  loadPolicy,
  snapshotSources,
  verifiersFor,
  type CheckedBundles,
  type PolicyInputFlags,
  type SnapshotInfoForReport,
} from './inputs.js';

export interface ArtifactVerifyFlags extends PolicyInputFlags {
  trustedRoot?: string;
}

/** Everything a policy verification of a file used and decided: the verdict plus what the report shows. */
export interface PolicyRun {
  file: string;
  artifact: { name: string; digest: { sha256: string } };
  policy: LoadedPolicy;
  verdict: Verdict;
  bundles: CheckedBundles;
  snapshots: SnapshotInfoForReport[];
}

/**
 * Loads the policy, verifies every bundle (signature, chain, log, subject), gathers snapshots and advisories, and
 * evaluates. A bundle that does not verify is a failed `attestations.signature` rule, not an abort: the verdict
 * names it next to every other rule.
 */
export async function verifyArtifactByPolicy(file: string, flags: ArtifactVerifyFlags): Promise<PolicyRun> {
  const policy = loadPolicy(flags);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
  }
  const artifact = { name: basename(file), digest: { sha256: sha256Hex(bytes) } };
  const verifiers = verifiersFor(policy, flags);
  const bundles = checkBundles(bundlePaths(file, flags.bundle), artifact.digest, verifiers);
  return evaluateChecked({ file, artifact, policy, bundles, verifiers }, flags);
}

/** The bundles' verdict under the policy (shared by files and images); unverified bundles fail the verdict. */
export async function evaluateChecked(
  input: Omit<PolicyRun, 'verdict' | 'snapshots'> & { verifiers: readonly BundleVerifier[] },
  flags: ArtifactVerifyFlags,
): Promise<PolicyRun> {
  const { file, artifact, policy, bundles } = input;
  const snaps = snapshotSources(flags, input.verifiers);
  const advisories = advisoriesFor(policy, flags);
  const verdict = await evaluatePolicy(
    policy,
    {
      artifact: { ...artifact, uri: file },
      attestations: bundles.attestations,
      ...(snaps.source ? { snapshots: snaps.source } : {}),
      ...(advisories ? { advisories } : {}),
    },
    { now: new Date() },
  );
  if (bundles.failures.length > 0) {
    verdict.rules.unshift(...bundles.failures);
    verdict.result = 'FAIL';
    verdict.verifiedLevels = ['FAILED'];
    verdict.levelReason = 'a bundle did not verify';
    // The VSA names every bundle it was given, verified or not.
    for (const f of bundles.failures) {
      const seen = f.seen as { uri: string; bundleSha256?: string };
      if (seen.bundleSha256 !== undefined)
        verdict.inputAttestations.push({ uri: seen.uri, digest: { sha256: seen.bundleSha256 } });
    }
  }
  return { file, artifact, policy, verdict, bundles, snapshots: snaps.ids };
}

/** One line per rule: ✓/✗, its name, what was seen and what was expected. */
export function humanVerdict(run: PolicyRun): string {
  const v = run.verdict;
  const lines = [
    `${v.result} ${run.file} (sha256:${run.artifact.digest.sha256})`,
    `  policy: ${v.policy.uri} (sha256:${v.policy.digest.sha256})`,
    `  level:  ${v.verifiedLevels.join(', ')} (${v.levelReason})`,
  ];
  for (const r of v.rules) {
    lines.push(`  ${r.passed ? '✓' : '✗'} ${r.rule}: ${r.message}`);
    if (!r.passed) lines.push(`      seen:     ${brief(r.seen)}`, `      expected: ${brief(r.expected)}`);
  }
  return lines.join('\n');
}

export function brief(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 300 ? `${s.slice(0, 297)}...` : s;
}
