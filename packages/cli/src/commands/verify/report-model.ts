import { SLSA_PROVENANCE_V1, type RuleResult } from '@airlock/policy';
import type { PolicyRun } from './evaluate.js';

/** What the report shows, read from a policy run (every string in it may come from attacker-written provenance). */
export interface ReportModel {
  result: 'PASS' | 'FAIL';
  artifact: { name: string; sha256: string };
  policy: { uri: string; sha256: string; name?: string };
  levels: string[];
  levelReason: string;
  evaluatedAt: string;
  source: { uri?: string; ref?: string; commit?: string };
  snapshot: { id?: string; signer?: string; issuer?: string; where?: string; dependencies?: number };
  build: {
    builderId?: string;
    buildType?: string;
    reproducibility?: string;
    finishedOn?: string;
    sandbox?: string;
    hermeticity?: string;
    toolchain: { name: string; sha256: string }[];
  };
  signatures: {
    uri: string;
    predicateType: string;
    signer: string;
    issuer: string;
    bundleSha256: string;
    logEntries: { index: number; integratedTime: string; proof: string }[];
  }[];
  rules: RuleResult[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function reportModel(run: PolicyRun): ReportModel {
  const v = run.verdict;
  const f = v.facts;
  const snap = run.snapshots.find((s) => s.id === f.mirrorSnapshot);
  const prov = run.bundles.attestations.find((a) => a.verification.statement?.predicateType === SLSA_PROVENANCE_V1);
  const predicate = obj(prov?.verification.statement?.predicate);
  return {
    result: v.result,
    artifact: { name: run.artifact.name, sha256: run.artifact.digest.sha256 },
    policy: {
      uri: v.policy.uri,
      sha256: v.policy.digest.sha256,
      ...(run.policy.document.name ? { name: run.policy.document.name } : {}),
    },
    levels: v.verifiedLevels,
    levelReason: v.levelReason,
    evaluatedAt: v.evaluatedAt,
    source: { uri: f.sourceUri, ref: f.ref, commit: f.commit },
    snapshot: {
      id: f.mirrorSnapshot,
      signer: snap?.signer,
      issuer: snap?.issuer,
      where: snap?.where,
      dependencies: f.dependencies,
    },
    build: {
      builderId: f.builderId,
      buildType: f.buildType,
      reproducibility: f.reproducibility,
      finishedOn: f.provenanceTime,
      sandbox: sandboxOf(predicate),
      hermeticity: hermeticityOf(predicate),
      toolchain: toolchainOf(predicate),
    },
    signatures: run.bundles.attestations.map((a) => ({
      uri: a.uri,
      predicateType: a.verification.statement?.predicateType ?? '(message signature)',
      signer: a.verification.signer.subjectAlternativeName ?? `key ${a.verification.signer.keyHint ?? ''}`,
      issuer: a.verification.signer.issuer ?? '',
      bundleSha256: a.bundleDigest.sha256,
      logEntries: a.verification.tlogEntries.map((e, i) => ({
        index: e.logIndex,
        integratedTime: new Date(e.integratedTime * 1000).toISOString(),
        proof: proofOf(run.bundles.raw.get(a.uri), i),
      })),
    })),
    rules: v.rules,
  };
}

function sandboxOf(p: Json): string | undefined {
  const s = obj(obj(obj(p.buildDefinition).internalParameters).sandbox);
  const tool = str(s.tool);
  if (!tool) return undefined;
  const ns = Array.isArray(s.namespaces) ? s.namespaces.filter((x) => typeof x === 'string').join(', ') : '';
  return `${tool} ${str(s.version) ?? ''} (namespaces: ${ns}; network: ${str(obj(s.network).mode) ?? '?'})`;
}

function hermeticityOf(p: Json): string | undefined {
  const by = obj(p.runDetails).byproducts;
  const h = Array.isArray(by) ? by.map(obj).find((b) => b.name === 'hermeticity') : undefined;
  const a = obj(h?.annotations);
  return h ? `monitor ${String(a.monitor ?? '?')}, ${String(a.violations ?? '?')} violation(s)` : undefined;
}

function toolchainOf(p: Json): { name: string; sha256: string }[] {
  const deps = obj(p.buildDefinition).resolvedDependencies;
  if (!Array.isArray(deps)) return [];
  return deps
    .map(obj)
    .filter((d) => obj(d.annotations).role === 'toolchain')
    .map((d) => ({ name: str(d.name) ?? str(d.uri) ?? '?', sha256: str(obj(d.digest).sha256) ?? '?' }));
}

/** How the log entry's inclusion was checked: BundleVerifier verified the proof (or the promise) the bundle carries. */
function proofOf(bundle: unknown, i: number): string {
  const entries = obj(obj(bundle).verificationMaterial).tlogEntries;
  const e = Array.isArray(entries) ? obj(entries[i]) : {};
  const proof = obj(e.inclusionProof);
  if (proof.treeSize !== undefined) return `inclusion proof verified (tree size ${String(proof.treeSize)})`;
  if (e.inclusionPromise !== undefined) return 'inclusion promise (signed entry timestamp) verified';
  return 'verified';
}
