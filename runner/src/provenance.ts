import { canonicalize, makeStatement, type ResourceDescriptor, type Statement, type Subject } from '@airlock/core';
import {
  AIRLOCK_BUILD_TYPE,
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_PROVENANCE_V1,
  type AirlockBuildDefinition,
  type Assignable,
} from '@airlock/schemas';
import { purlDisplayName, sbomForBuild, type BuildInput, type CycloneDxBom } from '@airlock/sbom';
import { RunnerError } from './errors.js';
import type { NetworkMonitorMode } from './network-monitor.js';
import type { ReproducibilityResult } from './reproducibility.js';
import type { SourceCheckout } from './git-source.js';
import type { BuildSpec, BuilderSpec } from './spec.js';
import type { ToolchainEntry } from './toolchain.js';

/**
 * The build type this runner documents (AIRLOCK_BUILD_TYPE): how to read externalParameters and
 * internalParameters is fixed by schemas/slsa-buildtype-airlock-v1.schema.json (verifiers should reject unknown
 * externalParameters fields). Re-exported: @airlock/schemas defines the URIs once.
 */
export { AIRLOCK_BUILD_TYPE, SLSA_PROVENANCE_V1 };

/** A mirror blob the build consumed, as the caller knows it (from the transfer manifest). */
export interface MirrorDependency {
  /** Package URL, e.g. pkg:npm/left-pad@1.3.0. */
  purl?: string;
  /** Where it came from (upstream URL or mirror URL). */
  uri?: string;
  name?: string;
  version?: string;
  digest: { sha256: string } & Partial<Record<'sha1' | 'sha384' | 'sha512', string>>;
}

export interface ExternalParameters {
  source: { repo: string; commit: string; ref?: string };
  spec: { digest: { sha256: string } };
  builder: BuilderSpec;
  outputs: string[];
  reproducible: boolean;
  env: string[];
  timeoutSeconds: number;
  mirror?: { url: string } | { name: string };
}

/** What the runner records stays within the documented build type (slsa-buildtype-airlock-v1.schema.json). */
export type ExternalParametersMatchBuildType = Assignable<
  ExternalParameters,
  AirlockBuildDefinition['externalParameters']
>;

export interface SandboxParameters {
  tool: 'bubblewrap';
  version: string;
  namespaces: string[];
  uid: number;
  gid: number;
  hostname: string;
  readOnlyHostPaths: string[];
  paths: { source: string; output: string; home: string; tmp: string };
  environment: Record<string, string>;
  passthroughEnv: string[];
  umask: string;
  timeoutSeconds: number;
  network: { mode: 'none' | 'mirror-bridge'; bridge?: string };
  monitor: NetworkMonitorMode;
}

export interface InternalParameters {
  runner: { name: string; version: string };
  sandbox: SandboxParameters;
  nodeAttestation?: NodeAttestationParameters;
}

/** internalParameters.nodeAttestation (slsa-buildtype-airlock-v1): the build quote and the reference values. */
export interface NodeAttestationParameters {
  quoteDigest: string;
  nonce: string;
  akName: string;
  referenceValues: { id: string; name?: string; bank: string; pcrs: Record<string, string> };
  /** The AK's TPM2B_PUBLIC and the quote (base64), so a verifier can re-check the signature and nonce. */
  akPublic: string;
  quote: { attest: string; signature: string };
  pcrs: { bank: string; values: Record<string, string> };
}

export interface ProvenanceInput {
  spec: BuildSpec;
  specDigest: string;
  source: SourceCheckout;
  runnerVersion: string;
  sandbox: SandboxParameters;
  mirrorSnapshotId?: string;
  mirrorDependencies: readonly MirrorDependency[];
  toolchain: readonly ToolchainEntry[];
  builderId: string;
  builderVersion: Record<string, string>;
  builderDependencies: readonly ToolchainEntry[];
  invocationId: string;
  startedOn: string;
  finishedOn: string;
  reproducibility: ReproducibilityResult;
  hermeticity: { monitor: NetworkMonitorMode; violations: number };
  logs: { name: string; sha256: string; size: number; truncated: boolean }[];
  /** A TPM quote by the attested node's AK over buildQuoteNonce(invocationId, specDigest) (run given an attestor). */
  nodeAttestation?: NodeAttestationParameters;
}

export const RUNNER_NAME = '@airlock/runner';

export function externalParameters(spec: BuildSpec, specDigest: string, timeoutSeconds: number): ExternalParameters {
  return {
    source: {
      repo: spec.source.repo,
      commit: spec.source.commit,
      ...(spec.source.ref ? { ref: spec.source.ref } : {}),
    },
    spec: { digest: { sha256: specDigest } },
    builder: spec.builder,
    outputs: [...spec.outputs],
    reproducible: spec.reproducible ?? false,
    env: [...(spec.env ?? [])],
    timeoutSeconds,
    ...(spec.mirror
      ? { mirror: spec.mirror.name !== undefined ? { name: spec.mirror.name } : { url: spec.mirror.url } }
      : {}),
  };
}

/** The source commit, the mirror snapshot, every mirror blob and every tool, each once. */
export function resolvedDependencies(
  input: Pick<ProvenanceInput, 'source' | 'mirrorSnapshotId' | 'mirrorDependencies' | 'toolchain' | 'spec'>,
): ResourceDescriptor[] {
  const deps: ResourceDescriptor[] = [];
  const s = input.source;
  deps.push({
    name: 'source',
    uri: `${s.repoUri}@${s.commit}`,
    digest: { gitCommit: s.commit },
    annotations: {
      gitTree: s.gitTree,
      treeDigest: { algorithm: 'airlock-tree-v1', sha256: s.treeSha256 },
      commitTime: s.commitTime,
      ...(s.ref ? { ref: s.ref } : {}),
    },
  });
  if (input.mirrorSnapshotId) {
    deps.push({
      name: 'mirror-snapshot',
      uri: input.spec.mirror?.url ?? 'airlock:mirror',
      digest: { sha256: input.mirrorSnapshotId.slice('sha256:'.length) },
      annotations: { snapshotId: input.mirrorSnapshotId },
    });
  }
  const seen = new Set<string>();
  for (const d of input.mirrorDependencies) {
    const uri = d.purl ?? d.uri!;
    const key = `${uri}#${d.digest.sha256}`;
    if (seen.has(key)) continue;
    seen.add(key);
    deps.push({
      ...(d.name ? { name: d.name } : {}),
      uri,
      digest: { ...d.digest },
      ...(d.purl && d.uri ? { downloadLocation: d.uri } : {}),
      annotations: { role: 'mirror-blob' },
    });
  }
  for (const t of input.toolchain) {
    deps.push({
      name: t.path,
      uri: `file://${t.resolvedPath}`,
      digest: { sha256: t.sha256 },
      annotations: { role: 'toolchain', size: t.size },
    });
  }
  return deps;
}

function base64Json(value: unknown): string {
  return Buffer.from(canonicalize(value), 'utf8').toString('base64');
}

/** The SLSA v1 provenance predicate (shared by every output of one run). */
export function provenancePredicate(input: ProvenanceInput, timeoutSeconds: number): Record<string, unknown> {
  const reproducibility = input.reproducibility;
  const byproducts: ResourceDescriptor[] = [
    ...input.logs.map((l) => ({
      name: l.name,
      digest: { sha256: l.sha256 },
      mediaType: 'text/plain',
      annotations: { size: l.size, truncated: l.truncated },
    })),
    {
      name: 'reproducibility',
      mediaType: 'application/json',
      content: base64Json(reproducibility),
      annotations: { ...reproducibility },
    },
    {
      name: 'hermeticity',
      mediaType: 'application/json',
      content: base64Json(input.hermeticity),
      annotations: { ...input.hermeticity },
    },
  ];
  return {
    buildDefinition: {
      buildType: AIRLOCK_BUILD_TYPE,
      externalParameters: externalParameters(input.spec, input.specDigest, timeoutSeconds),
      internalParameters: {
        runner: { name: RUNNER_NAME, version: input.runnerVersion },
        sandbox: input.sandbox,
        ...(input.nodeAttestation ? { nodeAttestation: input.nodeAttestation } : {}),
      } satisfies InternalParameters,
      resolvedDependencies: resolvedDependencies(input),
    },
    runDetails: {
      builder: {
        id: input.builderId,
        version: input.builderVersion,
        builderDependencies: input.builderDependencies.map((t) => ({
          name: t.path,
          uri: `file://${t.resolvedPath}`,
          digest: { sha256: t.sha256 },
        })),
      },
      metadata: { invocationId: input.invocationId, startedOn: input.startedOn, finishedOn: input.finishedOn },
      byproducts,
    },
  };
}

export function provenanceStatement(subject: Subject, predicate: Record<string, unknown>): Statement {
  return makeStatement([subject], SLSA_PROVENANCE_V1, predicate);
}

/** CycloneDX 1.6 SBOM of one output: the source, every mirror blob and every tool as components. */
export function buildSbom(subject: Subject, input: ProvenanceInput): CycloneDxBom {
  const s = input.source;
  const components: BuildInput[] = [
    { name: repoName(s.repo), version: s.commit, digests: { sha256: s.treeSha256 }, uri: `${s.repoUri}@${s.commit}` },
    ...input.mirrorDependencies.map((d) => ({
      name: d.name ?? nameFromPurl(d.purl) ?? lastSegment(d.uri ?? d.digest.sha256),
      ...(d.version ? { version: d.version } : {}),
      ...(d.purl ? { purl: d.purl } : {}),
      ...(d.uri ? { uri: d.uri } : {}),
      digests: { ...d.digest },
    })),
    ...input.toolchain.map((t) => ({ name: t.path, digests: { sha256: t.sha256 } })),
  ];
  try {
    return sbomForBuild({
      subject: { name: subject.name, digests: { sha256: subject.digest.sha256! } },
      components,
      properties: {
        'airlock:builder.id': input.builderId,
        'airlock:buildType': AIRLOCK_BUILD_TYPE,
        'airlock:source.commit': s.commit,
        'airlock:source.treeDigest': `sha256:${s.treeSha256}`,
        ...(input.mirrorSnapshotId ? { 'airlock:mirror.snapshot': input.mirrorSnapshotId } : {}),
      },
    });
  } catch (cause) {
    throw new RunnerError('RUNNER_INTERNAL', `cannot build the SBOM of ${subject.name}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

export function sbomStatement(subject: Subject, bom: CycloneDxBom): Statement {
  return makeStatement([subject], CYCLONEDX_PREDICATE_TYPE, bom);
}

function repoName(repo: string): string {
  return lastSegment(repo.replace(/\/+$/, '').replace(/\.git$/, '')) || 'source';
}

function lastSegment(s: string): string {
  return (
    s
      .split(/[/:]/)
      .filter((x) => x !== '')
      .pop() ?? s
  );
}

function nameFromPurl(purl: string | undefined): string | undefined {
  return purl ? purlDisplayName(purl) : undefined;
}

/** Checks caller-supplied mirror dependencies (untrusted): digest shape and an identifier. */
export function validateMirrorDependencies(deps: unknown): MirrorDependency[] {
  if (deps === undefined) return [];
  if (!Array.isArray(deps)) throw new RunnerError('RUNNER_SPEC_INVALID', 'resolvedMirrorDependencies must be an array');
  const problems: string[] = [];
  deps.forEach((d: unknown, i) => {
    const at = `resolvedMirrorDependencies[${i}]`;
    if (typeof d !== 'object' || d === null) return void problems.push(`${at}: must be an object`);
    const o = d as Record<string, unknown>;
    if (o.purl === undefined && o.uri === undefined) problems.push(`${at}: needs a purl or a uri`);
    for (const k of ['purl', 'uri', 'name', 'version'] as const) {
      if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '' || (o[k] as string).length > 4096))
        problems.push(`${at}.${k}: must be a non-empty string`);
    }
    if (typeof o.purl === 'string' && !o.purl.startsWith('pkg:')) problems.push(`${at}.purl: must start with pkg:`);
    const dg = o.digest as Record<string, unknown> | undefined;
    if (typeof dg !== 'object' || dg === null) return void problems.push(`${at}.digest: must be an object with sha256`);
    const len: Record<string, number> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128 };
    if (typeof dg.sha256 !== 'string') problems.push(`${at}.digest.sha256: required`);
    for (const [alg, hex] of Object.entries(dg)) {
      if (len[alg] === undefined) problems.push(`${at}.digest.${alg}: unsupported algorithm`);
      else if (typeof hex !== 'string' || !new RegExp(`^[0-9a-f]{${len[alg]}}$`).test(hex))
        problems.push(`${at}.digest.${alg}: must be ${len[alg]} lowercase hex characters`);
    }
  });
  if (problems.length > 0)
    throw new RunnerError('RUNNER_SPEC_INVALID', `resolvedMirrorDependencies:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  return deps as MirrorDependency[];
}
