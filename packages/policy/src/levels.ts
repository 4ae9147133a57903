import { ISOLATED_BUILD_TYPES } from './constants.js';
import type { RuleResult } from './evidence.js';
import type { LoadedPolicy } from './load.js';
import type { CompiledAuthority } from './match.js';
import type { ProvenanceView } from './provenance.js';

export const SLSA_BUILD_LEVEL = (n: 0 | 1 | 2 | 3): string => `SLSA_BUILD_LEVEL_${n}`;

export interface LevelInput {
  policy: LoadedPolicy;
  passed: boolean;
  rules: readonly RuleResult[];
  provenance?: ProvenanceView;
  /** The authority that signed the accepted provenance. */
  signer?: CompiledAuthority;
}

/**
 * The SLSA Build level a VSA may claim, i.e. what this policy actually checked (VSA v1 `verifiedLevels`):
 *  - FAILED when any rule failed;
 *  - L0 when the policy does not require provenance;
 *  - L2 when it requires provenance signed by a named authority and the accepted provenance has a verified
 *    transparency-log entry (signed by the platform, authenticity checked);
 *  - L3 only when, in addition, (a) the signing authority is keyless (a short-lived certificate for the runner's
 *    workload identity: no long-lived key a build step could hold), (b) the policy pins builder.id (builderIds) and
 *    the build type to isolated build types only (buildTypes ⊆ ISOLATED_BUILD_TYPES, the airlock hermetic type),
 *    (c) the provenance's buildDefinition matched its build-type schema and (d) its internalParameters record the
 *    sandbox: bubblewrap with user, network and pid namespaces and network mode none or mirror-bridge.
 */
export function verifiedLevels(input: LevelInput): { levels: string[]; reason: string } {
  if (!input.passed) return { levels: ['FAILED'], reason: 'at least one rule failed' };
  const p = input.policy.document.provenance;
  if (!p || !input.provenance)
    return { levels: [SLSA_BUILD_LEVEL(0)], reason: 'the policy does not require provenance' };
  const logged = input.provenance.accepted.evidence.verification.tlogEntries.length > 0;
  if (!logged)
    return { levels: [SLSA_BUILD_LEVEL(1)], reason: 'the provenance has no verified transparency-log entry' };
  const missing = l3Gaps(input, p.builderIds, p.buildTypes);
  if (missing.length > 0)
    return { levels: [SLSA_BUILD_LEVEL(2)], reason: `signed, logged provenance; not L3: ${missing.join('; ')}` };
  return {
    levels: [SLSA_BUILD_LEVEL(3)],
    reason: 'keyless-signed provenance from a pinned builder with an isolated build type and recorded sandbox',
  };
}

function l3Gaps(input: LevelInput, builderIds?: string[], buildTypes?: string[]): string[] {
  const gaps: string[] = [];
  const passed = (rule: string): boolean => input.rules.some((r) => r.rule === rule && r.passed);
  if (input.signer?.kind !== 'keyless') gaps.push('provenance signed with a long-lived key, not a keyless identity');
  if (!builderIds) gaps.push('the policy does not pin builder.id');
  if (!buildTypes || !buildTypes.every((t) => ISOLATED_BUILD_TYPES.includes(t)))
    gaps.push('the policy allows build types not known to run isolated');
  if (!passed('provenance.buildDefinition')) gaps.push('buildDefinition not checked against its build-type schema');
  if (!sandboxed(input.provenance!)) gaps.push('the provenance records no isolated sandbox');
  return gaps;
}

function sandboxed(v: ProvenanceView): boolean {
  const internal = v.predicate.buildDefinition?.internalParameters as
    { sandbox?: { tool?: unknown; namespaces?: unknown; network?: { mode?: unknown } } } | undefined;
  const s = internal?.sandbox;
  const ns = Array.isArray(s?.namespaces) ? s.namespaces : [];
  return (
    s?.tool === 'bubblewrap' &&
    ['user', 'network', 'pid'].every((n) => ns.includes(n)) &&
    (s.network?.mode === 'none' || s.network?.mode === 'mirror-bridge')
  );
}
