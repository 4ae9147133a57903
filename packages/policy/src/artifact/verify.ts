import { sha256Hex } from '@airlock/core';
import type { BundleVerifier } from '@airlock/verify';
import { evaluatePolicy } from '../engine.js';
import type { RuleResult, Verdict } from '../evidence.js';
import type { LoadedPolicy } from '../load.js';
import type { AdvisoryIndex } from '../osv.js';
import type { SnapshotSource } from '../snapshots.js';
import { bundleVerifiers, checkBundleInputs, type BundleInput, type CheckedBundles } from './bundles.js';
import type { SnapshotInfo } from './snapshots.js';

/** The evidence beyond the bundles: where dependencies are looked up, advisories, the clock. */
export interface PolicyContext {
  policy: LoadedPolicy;
  /** Verifiers (one per trusted root); see bundleVerifiers. Give this or trustedRoots. */
  verifiers?: readonly BundleVerifier[];
  /** Parsed trusted_root.json documents, when no verifiers are given. */
  trustedRoots?: readonly unknown[];
  /** Mirror snapshots for policy.dependencies (e.g. VerifiedSnapshots.source, a mirror lookup client). */
  snapshotSource?: SnapshotSource;
  /** What the report shows of those snapshots (VerifiedSnapshots.infos). */
  snapshotInfo?: readonly SnapshotInfo[];
  /** OSV advisories for policy.advisories (indexAdvisories(loadOsvDirectory(dir))). */
  advisories?: AdvisoryIndex;
  /** The evaluation time (max age is measured against it); default: now. */
  now?: Date;
}

/** Everything a policy verification used and decided: the verdict plus what the report and the VSA show. */
export interface PolicyRun {
  /** What was verified, as the VSA's resourceUri names it (a file path, `host/repo@sha256:…`). */
  resourceUri: string;
  artifact: { name: string; digest: { sha256: string } };
  policy: LoadedPolicy;
  verdict: Verdict;
  bundles: CheckedBundles;
  snapshots: SnapshotInfo[];
  /** Every bundle given, by digest (the VSA's inputAttestations). */
  bundlesUsed: { uri: string; digest: { sha256: string } }[];
}

export interface VerifyArtifactInput extends PolicyContext {
  /** The artifact's bytes, or its sha256 when the caller hashed it already. */
  artifact: { name: string; bytes: Uint8Array } | { name: string; sha256: string };
  /** The resourceUri of the verdict (e.g. the file path); default: the artifact's name. */
  resourceUri?: string;
  /** The attestation bundles (readBundleFiles for files on disk). */
  bundles: readonly BundleInput[];
}

/**
 * Verifies every bundle (signature, chain, log, subject = the artifact) and evaluates the policy on the verified
 * ones. A bundle that does not verify is a failed `attestations.signature` rule, not an abort: the verdict names it
 * next to every other rule. Throws PolicyError only for unusable input (a bundle that is not JSON, no trusted root).
 */
export async function verifyArtifactByPolicy(input: VerifyArtifactInput): Promise<PolicyRun> {
  const a = input.artifact;
  const artifact = {
    name: a.name,
    digest: { sha256: 'bytes' in a ? sha256Hex(a.bytes) : a.sha256 },
  };
  const verifiers = verifiersOf(input);
  const bundles = checkBundleInputs(input.bundles, artifact.digest, verifiers);
  return evaluateBundles({ ...input, resourceUri: input.resourceUri ?? a.name, artifact, bundles });
}

export function verifiersOf(ctx: PolicyContext): readonly BundleVerifier[] {
  return ctx.verifiers ?? bundleVerifiers(ctx.policy, ctx.trustedRoots ?? []);
}

/** The verdict on bundles already checked (files and images alike); unverified bundles and extra failures fail it. */
export async function evaluateBundles(
  input: PolicyContext & {
    resourceUri: string;
    artifact: PolicyRun['artifact'];
    bundles: CheckedBundles;
    /** Further checks made by the caller (e.g. cosign layers): listed in the verdict; a failed one fails it. */
    extraRules?: readonly RuleResult[];
  },
): Promise<PolicyRun> {
  const { resourceUri, artifact, policy, bundles } = input;
  const verdict = await evaluatePolicy(
    policy,
    {
      artifact: { ...artifact, uri: resourceUri },
      attestations: bundles.attestations,
      ...(input.snapshotSource ? { snapshots: input.snapshotSource } : {}),
      ...(input.advisories ? { advisories: input.advisories } : {}),
    },
    { now: input.now ?? new Date() },
  );
  const extra = input.extraRules ?? [];
  verdict.rules.push(...extra.filter((r) => r.passed));
  const failures = [...bundles.failures, ...extra.filter((r) => !r.passed)];
  if (failures.length > 0) failVerdict(verdict, failures);
  return {
    resourceUri,
    artifact,
    policy,
    verdict,
    bundles,
    snapshots: [...(input.snapshotInfo ?? [])],
    bundlesUsed: verdict.inputAttestations,
  };
}

/** Puts failures first and makes the verdict FAILED; the VSA still names every bundle it was given. */
function failVerdict(verdict: Verdict, failures: readonly RuleResult[]): void {
  verdict.rules.unshift(...failures);
  verdict.result = 'FAIL';
  verdict.verifiedLevels = ['FAILED'];
  verdict.levelReason = failures.some((f) => f.rule === 'attestations.signature')
    ? 'a bundle did not verify'
    : `${failures[0]!.rule} failed`;
  for (const f of failures) {
    const seen = f.seen as { uri?: string; bundleSha256?: string } | null;
    if (seen?.uri !== undefined && seen.bundleSha256 !== undefined)
      verdict.inputAttestations.push({ uri: seen.uri, digest: { sha256: seen.bundleSha256 } });
  }
}
