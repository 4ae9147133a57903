import { canonicalize } from '@airlock/core';
import { semver } from './lazy-deps.js';
import { ATTESTED_BUILDER_RULE, attestedBuilderRule } from './attested-builder.js';
import { AIRLOCK_BUILD_TYPE } from './constants.js';
import type { Accepted, BuildFacts, Dependency, ProvenancePredicate, RuleResult } from './evidence.js';
import type { LoadedPolicy } from './load.js';
import { matchesAny } from './match.js';
import { problemsAgainst } from './schemas.js';
import type { ProvenanceRules } from './types.js';

/** What the rules read from one provenance predicate, extracted once with every access checked. */
export interface ProvenanceView {
  accepted: Accepted;
  predicate: ProvenancePredicate;
  buildType?: string;
  builderId?: string;
  externalParameters: Record<string, unknown>;
  dependencies: Dependency[];
  source?: Dependency;
  sourceUri?: string;
  commit?: string;
  commitConflict?: { externalParameters: string; resolvedDependency: string };
  ref?: string;
  mirrorSnapshot?: string;
  reproducibility?: string;
  /** When the provenance was made: the earliest verified log time, else runDetails.metadata.finishedOn. */
  time?: { iso: string; from: 'transparency log' | 'runDetails.metadata.finishedOn' };
  toolchain: { name: string; sha256?: string }[];
}

const obj = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function viewProvenance(accepted: Accepted): ProvenanceView {
  const predicate = obj(accepted.statement.predicate) as ProvenancePredicate;
  const def = obj(predicate.buildDefinition);
  const run = obj(predicate.runDetails);
  const external = obj(def.externalParameters);
  const deps = (Array.isArray(def.resolvedDependencies) ? def.resolvedDependencies : []).map(
    (d) => obj(d) as Dependency,
  );
  const source = deps.find((d) => d.name === 'source') ?? deps.find((d) => typeof d.digest?.gitCommit === 'string');
  const extSource = obj(external.source);
  const extCommit = str(extSource.commit);
  const depCommit = str(source?.digest?.gitCommit);
  const view: ProvenanceView = {
    accepted,
    predicate,
    externalParameters: external,
    dependencies: deps,
    toolchain: toolchainOf(deps, obj(run.builder)),
  };
  const set = <K extends keyof ProvenanceView>(k: K, v: ProvenanceView[K] | undefined): void => {
    if (v !== undefined) view[k] = v;
  };
  set('buildType', str(def.buildType));
  set('builderId', str(obj(run.builder).id));
  set('source', source);
  set('sourceUri', source?.uri ? repoOf(source.uri, depCommit) : undefined);
  set('commit', extCommit ?? depCommit);
  if (extCommit && depCommit && extCommit !== depCommit)
    view.commitConflict = { externalParameters: extCommit, resolvedDependency: depCommit };
  set('ref', str(extSource.ref) ?? str(obj(source?.annotations).ref));
  set('mirrorSnapshot', str(obj(deps.find((d) => d.name === 'mirror-snapshot')?.annotations).snapshotId));
  set('reproducibility', reproducibilityOf(run.byproducts));
  set('time', timeOf(accepted, obj(run.metadata)));
  return view;
}

/** `git+https://host/repo@<commit>` → `https://host/repo`. */
function repoOf(uri: string, commit: string | undefined): string {
  const noCommit = commit && uri.endsWith(`@${commit}`) ? uri.slice(0, -commit.length - 1) : uri;
  return stripGit(noCommit);
}

export function stripGit(uri: string): string {
  return uri.replace(/^git\+/, '');
}

function toolchainOf(deps: Dependency[], builder: Record<string, unknown>): { name: string; sha256?: string }[] {
  const tools = deps.filter((d) => obj(d.annotations).role === 'toolchain');
  const builderDeps = (Array.isArray(builder.builderDependencies) ? builder.builderDependencies : []).map(
    (d) => obj(d) as Dependency,
  );
  return [...tools, ...builderDeps].map((d) => ({
    name: d.name ?? d.uri ?? '(unnamed)',
    ...(typeof d.digest?.sha256 === 'string' ? { sha256: d.digest.sha256 } : {}),
  }));
}

function reproducibilityOf(byproducts: unknown): string | undefined {
  const list = Array.isArray(byproducts) ? byproducts.map(obj) : [];
  const r = list.find((b) => b.name === 'reproducibility');
  return r ? str(obj(r.annotations).status) : undefined;
}

function timeOf(accepted: Accepted, metadata: Record<string, unknown>): ProvenanceView['time'] {
  const logged = accepted.evidence.verification.tlogEntries.map((e) => e.integratedTime).filter((t) => t > 0);
  if (logged.length > 0) return { iso: new Date(Math.min(...logged) * 1000).toISOString(), from: 'transparency log' };
  const finished = str(metadata.finishedOn);
  if (finished && !Number.isNaN(Date.parse(finished)))
    return { iso: new Date(Date.parse(finished)).toISOString(), from: 'runDetails.metadata.finishedOn' };
  return undefined;
}

export function factsOf(v: ProvenanceView): BuildFacts {
  const f: BuildFacts = { dependencies: v.dependencies.length };
  if (v.builderId) f.builderId = v.builderId;
  if (v.buildType) f.buildType = v.buildType;
  if (v.sourceUri) f.sourceUri = v.sourceUri;
  if (v.commit) f.commit = v.commit;
  if (v.ref) f.ref = v.ref;
  if (v.mirrorSnapshot) f.mirrorSnapshot = v.mirrorSnapshot;
  if (v.reproducibility) f.reproducibility = v.reproducibility;
  if (v.time) f.provenanceTime = v.time.iso;
  return f;
}

const result = (rule: string, passed: boolean, seen: unknown, expected: unknown, message: string): RuleResult => ({
  rule,
  passed,
  seen: seen ?? null,
  expected,
  message,
});

/** Every provenance rule the policy asks for, in a fixed order. */
export function provenanceRules(policy: LoadedPolicy, v: ProvenanceView, now: Date): RuleResult[] {
  const p = policy.document.provenance!;
  const out: RuleResult[] = [];
  if (p.buildTypes) out.push(oneOf('provenance.buildType', 'buildDefinition.buildType', v.buildType, p.buildTypes));
  if (v.buildType === AIRLOCK_BUILD_TYPE) out.push(buildDefinitionRule(v));
  if (p.builderIds) out.push(oneOf('provenance.builderId', 'runDetails.builder.id', v.builderId, p.builderIds));
  if (p.source?.uris) out.push(sourceUriRule(v, p.source.uris));
  if (p.source?.refs) out.push(refRule(v, p.source.refs));
  out.push(commitRule(v, p));
  if (p.reproducible) out.push(reproducibleRule(v));
  if (policy.maxAgeSeconds !== undefined) out.push(maxAgeRule(v, p.maxAge!, policy.maxAgeSeconds, now));
  if (p.externalParameters) out.push(externalParametersRule(v, p.externalParameters));
  if (p.toolchainDigests) out.push(toolchainRule(v, p.toolchainDigests));
  if (p.requireAttestedBuilder) out.push(attestedBuilderRule(v, p.requireAttestedBuilder.referenceValues));
  return out;
}

/** The names of the rules provenanceRules would emit (for a FAIL result each when there is no provenance). */
export function provenanceRuleNames(policy: LoadedPolicy): string[] {
  const p = policy.document.provenance!;
  return [
    ...(p.buildTypes ? ['provenance.buildType'] : []),
    ...(p.builderIds ? ['provenance.builderId'] : []),
    ...(p.source?.uris ? ['provenance.source.uri'] : []),
    ...(p.source?.refs ? ['provenance.source.ref'] : []),
    'provenance.source.commit',
    ...(p.reproducible ? ['provenance.reproducible'] : []),
    ...(p.maxAge !== undefined ? ['provenance.maxAge'] : []),
    ...(p.externalParameters ? ['provenance.externalParameters'] : []),
    ...(p.toolchainDigests ? ['provenance.toolchain'] : []),
    ...(p.requireAttestedBuilder ? [ATTESTED_BUILDER_RULE] : []),
  ];
}

function oneOf(rule: string, field: string, seen: string | undefined, allowed: string[]): RuleResult {
  const ok = seen !== undefined && allowed.includes(seen);
  return result(
    rule,
    ok,
    seen,
    { oneOf: allowed },
    ok ? `${field} is allowed` : `${field} '${seen ?? '(none)'}' is not allowed`,
  );
}

/** The airlock build type's schema: unknown externalParameters fields are refused (SLSA: verifiers SHOULD). */
function buildDefinitionRule(v: ProvenanceView): RuleResult {
  const problems = problemsAgainst('slsa-buildtype-airlock-v1', v.predicate.buildDefinition, 'buildDefinition');
  const ok = problems.length === 0;
  return result(
    'provenance.buildDefinition',
    ok,
    ok ? 'valid' : problems,
    'schemas/slsa-buildtype-airlock-v1.schema.json',
    ok
      ? 'buildDefinition matches the airlock build type'
      : `buildDefinition does not match its build type: ${problems.join('; ')}`,
  );
}

function sourceUriRule(v: ProvenanceView, uris: string[]): RuleResult {
  const allowed = uris.map(stripGit);
  const ok = v.sourceUri !== undefined && matchesAny(v.sourceUri, allowed);
  return result(
    'provenance.source.uri',
    ok,
    v.sourceUri,
    { oneOf: allowed },
    ok ? 'source repository is allowed' : `source repository '${v.sourceUri ?? '(none)'}' is not allowed`,
  );
}

function refRule(v: ProvenanceView, refs: NonNullable<NonNullable<ProvenanceRules['source']>['refs']>): RuleResult {
  const branch = v.ref?.startsWith('refs/heads/') ? v.ref.slice('refs/heads/'.length) : undefined;
  const tag = v.ref?.startsWith('refs/tags/') ? v.ref.slice('refs/tags/'.length) : undefined;
  const semverOk = (t: string): boolean => {
    const version = semver().valid(t.replace(/^v/, ''));
    return version !== null && semver().satisfies(version, refs.semverTags!);
  };
  const ok =
    (branch !== undefined && refs.branches !== undefined && matchesAny(branch, refs.branches)) ||
    (tag !== undefined && refs.tags !== undefined && matchesAny(tag, refs.tags)) ||
    (tag !== undefined && refs.semverTags !== undefined && semverOk(tag));
  const kind =
    branch !== undefined ? `branch '${branch}'` : tag !== undefined ? `tag '${tag}'` : `ref '${v.ref ?? '(none)'}'`;
  return result('provenance.source.ref', ok, v.ref, refs, ok ? `${kind} is allowed` : `${kind} is not allowed`);
}

function commitRule(v: ProvenanceView, p: ProvenanceRules): RuleResult {
  const rule = 'provenance.source.commit';
  const expected = p.source?.commit ?? (p.source?.requireCommit === false ? 'any' : 'a full commit id');
  if (v.commitConflict)
    return result(
      rule,
      false,
      v.commitConflict,
      expected,
      'externalParameters and the source dependency name different commits',
    );
  if (p.source?.commit !== undefined) {
    const ok = v.commit === p.source.commit;
    return result(
      rule,
      ok,
      v.commit,
      expected,
      ok ? 'built from the expected commit' : `built from commit ${v.commit ?? '(none)'}, not ${p.source.commit}`,
    );
  }
  if (p.source?.requireCommit === false) return result(rule, true, v.commit, expected, 'no commit required');
  const ok = v.commit !== undefined && /^([0-9a-f]{40}|[0-9a-f]{64})$/.test(v.commit);
  return result(
    rule,
    ok,
    v.commit,
    expected,
    ok ? 'the provenance names a full commit' : 'the provenance names no full commit id',
  );
}

function reproducibleRule(v: ProvenanceView): RuleResult {
  const ok = v.reproducibility === 'reproduced';
  return result(
    'provenance.reproducible',
    ok,
    v.reproducibility,
    'reproduced',
    ok
      ? 'the rebuild reproduced every output'
      : `reproducibility is '${v.reproducibility ?? '(not recorded)'}', a reproduced build is required`,
  );
}

/** Clock skew tolerated for a provenance time slightly in the future. */
const FUTURE_SKEW_SECONDS = 300;

function maxAgeRule(v: ProvenanceView, text: string, maxAgeSeconds: number, now: Date): RuleResult {
  const expected = { maxAge: text, notBefore: new Date(now.getTime() - maxAgeSeconds * 1000).toISOString() };
  if (!v.time)
    return result('provenance.maxAge', false, null, expected, 'the provenance has no time (log entry or finishedOn)');
  const ageSeconds = Math.floor((now.getTime() - Date.parse(v.time.iso)) / 1000);
  const ok = ageSeconds <= maxAgeSeconds && ageSeconds >= -FUTURE_SKEW_SECONDS;
  return result(
    'provenance.maxAge',
    ok,
    { time: v.time.iso, from: v.time.from, ageSeconds },
    expected,
    ok
      ? `made ${ageSeconds} s ago`
      : ageSeconds < 0
        ? 'the provenance time is in the future'
        : `made ${ageSeconds} s ago, older than ${text}`,
  );
}

function valueAt(root: Record<string, unknown>, path: string): unknown {
  let cur: unknown = root;
  for (const k of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function externalParametersRule(v: ProvenanceView, allowed: Record<string, string[]>): RuleResult {
  const bad: Record<string, unknown> = {};
  for (const [path, patterns] of Object.entries(allowed)) {
    const value = valueAt(v.externalParameters, path);
    const items = Array.isArray(value) ? value : [value];
    const ok =
      value !== undefined &&
      items.every(
        (x) =>
          (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') && matchesAny(String(x), patterns),
      );
    if (!ok) bad[path] = value === undefined ? '(absent)' : value;
  }
  const seen = Object.fromEntries(Object.keys(allowed).map((k) => [k, valueAt(v.externalParameters, k) ?? '(absent)']));
  const ok = Object.keys(bad).length === 0;
  return result(
    'provenance.externalParameters',
    ok,
    seen,
    allowed,
    ok
      ? 'external parameters are allowed'
      : `external parameters not allowed: ${Object.entries(bad)
          .map(([k, x]) => `${k}=${canonicalize(x)}`)
          .join(', ')}`,
  );
}

function toolchainRule(v: ProvenanceView, digests: string[]): RuleResult {
  const allowed = new Set(digests);
  const bad = v.toolchain.filter((t) => t.sha256 === undefined || !allowed.has(t.sha256));
  return result(
    'provenance.toolchain',
    bad.length === 0,
    bad.length === 0 ? `${v.toolchain.length} tool(s), all allowed` : { notAllowed: bad },
    { sha256OneOf: digests },
    bad.length === 0
      ? 'every tool is on the allow-list'
      : `${bad.length} tool(s) not on the allow-list: ${bad.map((t) => t.name).join(', ')}`,
  );
}

/** Two accepted provenance statements must say the same thing (else which one was checked would be arbitrary). */
export function sameProvenance(accepted: readonly Accepted[]): boolean {
  const first = canonicalize(accepted[0]!.statement.predicate ?? null);
  return accepted.every((a) => canonicalize(a.statement.predicate ?? null) === first);
}
