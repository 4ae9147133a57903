import { SLSA_PROVENANCE_V1, isCycloneDxPredicateType } from './constants.js';
import { authoritiesNamed, selectAttestations, subjectRule } from './attestations.js';
import { advisoryRule, lookupAll, mirroredDependencies, sbomCoverageRule, snapshotRule } from './dependencies.js';
import type { Accepted, Evidence, RuleResult, Verdict } from './evidence.js';
import { verifiedLevels } from './levels.js';
import type { LoadedPolicy } from './load.js';
import {
  factsOf,
  provenanceRuleNames,
  provenanceRules,
  sameProvenance,
  viewProvenance,
  type ProvenanceView,
} from './provenance.js';

export interface EvaluateOptions {
  /** The evaluation time (max age is measured against it): the engine reads no clock. */
  now: Date;
}

/**
 * Evaluates a loaded policy against evidence whose signatures the caller has already verified. Every rule the policy
 * asks for yields a result with the value seen and the value expected; the verdict is PASS only if every rule
 * passed. Deterministic given `now` and the snapshot source's answers; no I/O of its own.
 */
export async function evaluatePolicy(
  policy: LoadedPolicy,
  evidence: Evidence,
  options: EvaluateOptions,
): Promise<Verdict> {
  const doc = policy.document;
  const rules: RuleResult[] = [subjectRule(evidence)];
  for (const req of doc.attestations ?? []) {
    const t = req.predicateType;
    rules.push(
      selectAttestations(
        `attestations.required[${t}]`,
        `a ${t} attestation`,
        evidence,
        (x) => x === t,
        authoritiesNamed(policy, req.authorities),
      ).rule,
    );
  }
  let view: ProvenanceView | undefined;
  if (doc.provenance) {
    const sel = selectAttestations(
      'provenance.signed',
      'SLSA provenance',
      evidence,
      (x) => x === SLSA_PROVENANCE_V1,
      authoritiesNamed(policy, doc.provenance.authorities),
    );
    if (sel.accepted.length > 1 && !sameProvenance(sel.accepted)) {
      sel.rule.passed = false;
      sel.rule.message = `${sel.accepted.length} accepted provenance statements disagree; refusing to pick one`;
    }
    rules.push(sel.rule);
    if (sel.rule.passed) {
      view = viewProvenance(sel.accepted[0]!);
      rules.push(...provenanceRules(policy, view, options.now));
    } else {
      rules.push(...provenanceRuleNames(policy).map((r) => unchecked(r, 'no accepted provenance')));
    }
  }
  rules.push(...(await dependencyAndSbomRules(policy, evidence, view)));

  const passed = rules.every((r) => r.passed);
  const signer = view
    ? authoritiesNamed(policy, doc.provenance!.authorities).find((a) =>
        a.matches(view!.accepted.evidence.verification.signer),
      )
    : undefined;
  const levels = verifiedLevels({
    policy,
    passed,
    rules,
    ...(view ? { provenance: view } : {}),
    ...(signer ? { signer } : {}),
  });
  return {
    result: passed ? 'PASS' : 'FAIL',
    rules,
    policy: { uri: policy.uri, digest: { ...policy.digest } },
    artifact: evidence.artifact,
    inputAttestations: evidence.attestations.map((a) => ({ uri: a.uri, digest: { sha256: a.bundleDigest.sha256 } })),
    verifiedLevels: levels.levels,
    levelReason: levels.reason,
    facts: view ? factsOf(view) : {},
    evaluatedAt: options.now.toISOString(),
  };
}

function unchecked(rule: string, why: string): RuleResult {
  return { rule, passed: false, seen: null, expected: 'a checkable value', message: `not checked: ${why}` };
}

async function dependencyAndSbomRules(
  policy: LoadedPolicy,
  evidence: Evidence,
  view: ProvenanceView | undefined,
): Promise<RuleResult[]> {
  const doc = policy.document;
  const out: RuleResult[] = [];
  const deps = view ? mirroredDependencies(view) : [];
  const needHits = view && (doc.dependencies || doc.advisories);
  const hits = needHits ? await lookupAll(deps, evidence) : undefined;
  if (doc.dependencies)
    out.push(
      view
        ? snapshotRule(deps, hits, authoritiesNamed(policy, doc.dependencies.syncAuthorities))
        : unchecked('dependencies.snapshot', 'no accepted provenance'),
    );
  if (doc.sbom) {
    const sel = selectAttestations(
      'sbom.signed',
      'CycloneDX SBOM',
      evidence,
      isCycloneDxPredicateType,
      authoritiesNamed(policy, doc.sbom.authorities),
    );
    out.push(sel.rule);
    if (doc.sbom.coverDependencies !== false)
      out.push(
        view
          ? sbomCoverageRule(view, sel.accepted as Accepted[])
          : unchecked('sbom.coverage', 'no accepted provenance'),
      );
  }
  if (doc.advisories)
    out.push(
      view
        ? advisoryRule(deps, hits, evidence.advisories, doc.advisories.ignore ?? [])
        : unchecked('advisories.osv', 'no accepted provenance'),
    );
  return out;
}
