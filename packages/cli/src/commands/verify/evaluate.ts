import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { readBundleFiles, verifyArtifactByPolicy as verifyByPolicy, type PolicyRun } from '@airlock/policy';
import { UsageError } from '../../output.js';
import { bundlePaths, policyContext, type PolicyInputFlags } from './inputs.js';

export type { PolicyRun } from '@airlock/policy';

export interface ArtifactVerifyFlags extends PolicyInputFlags {
  trustedRoot?: string;
}

/** `verify artifact FILE` / `report FILE`: the flags turned into a library call (@airlock/policy does the work). */
export async function verifyArtifactByPolicy(file: string, flags: ArtifactVerifyFlags): Promise<PolicyRun> {
  const ctx = policyContext(flags);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
  }
  return verifyByPolicy({
    ...ctx,
    artifact: { name: basename(file), bytes },
    resourceUri: file,
    bundles: readBundleFiles(bundlePaths(file, flags.bundle)),
  });
}

/** One line per rule: ✓/✗, its name, what was seen and what was expected. */
export function humanVerdict(run: PolicyRun): string {
  const v = run.verdict;
  const lines = [
    `${v.result} ${run.resourceUri} (sha256:${run.artifact.digest.sha256})`,
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
