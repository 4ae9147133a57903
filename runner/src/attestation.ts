import { existsSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { digestFile } from '@airlock/core';
import { BUILD_LOG_NAME, REBUILD_LOG_NAME, SANDBOX_PATH, type Attempt, type RunContext } from './attempt.js';
import { RunnerError } from './errors.js';
import { which } from './exec.js';
import { builderDependencies } from './host-tools.js';
import { mergeDependencies, resolveMirrorFetches, type ResolvedMirrorFetches } from './mirror-dependencies.js';
import { copyOutputs, type OutputFile } from './outputs.js';
import {
  buildSbom,
  provenancePredicate,
  provenanceStatement,
  RUNNER_NAME,
  sbomStatement,
  type MirrorDependency,
  type NodeAttestationParameters,
  type ProvenanceInput,
  type SandboxParameters,
} from './provenance.js';
import type { ReproducibilityResult } from './reproducibility.js';
import { HOST_ETC_READONLY, SANDBOX_GID, SANDBOX_UID } from './sandbox.js';
import { signStatement, type AttestationSigner } from './signer.js';
import { resolveToolchain, type ToolchainEntry } from './toolchain.js';

/**
 * The attestation phase of `runBuild`: copy the outputs, resolve the toolchain and what the build fetched from the
 * mirror, then write (and with a signer, sign) SLSA provenance and a CycloneDX SBOM per output.
 */

const PROVENANCE_SUFFIX = '.provenance.json';
const SBOM_SUFFIX = '.cdx.json';
const PROVENANCE_BUNDLE_SUFFIX = '.provenance.sigstore.json';
const SBOM_BUNDLE_SUFFIX = '.sbom.sigstore.json';

export interface ArtifactResult {
  /** Path relative to outDir ('/'-separated): the provenance subject name. */
  name: string;
  path: string;
  sha256: string;
  size: number;
  provenancePath: string;
  sbomPath: string;
  provenanceBundlePath?: string;
  sbomBundlePath?: string;
}

export interface AttestationInput {
  ctx: RunContext;
  first: Attempt;
  outputs: readonly OutputFile[];
  rebuildLogPath?: string;
  reproducibility: ReproducibilityResult;
  specDigest: string;
  runnerVersion: string;
  builderId: string;
  invocationId: string;
  startedOn: string;
  finishedOn: string;
  /** Mirror blobs the caller says the build used; merged with the recorded ones. */
  givenDependencies: readonly MirrorDependency[];
  mirrorSnapshotId?: string;
  signer?: AttestationSigner;
  /** The build quote verified before dispatch (runner/src/run.ts bindToNode). */
  nodeAttestation?: NodeAttestationParameters;
  progress: (phase: 'outputs' | 'attest' | 'sign', message: string) => void;
}

export interface AttestationResult {
  provenance: ProvenanceInput;
  predicate: Record<string, unknown>;
  artifacts: ArtifactResult[];
  toolchain: ToolchainEntry[];
  logs: LogDigest[];
  recorded: ResolvedMirrorFetches;
  mirrorSnapshotId?: string;
}

interface LogDigest {
  name: string;
  sha256: string;
  size: number;
  truncated: boolean;
}

export async function attestOutputs(i: AttestationInput): Promise<AttestationResult> {
  const { ctx, first, outputs } = i;
  const plural = outputs.length === 1 ? '' : 's';
  i.progress('outputs', `copying ${outputs.length} output${plural}`);
  checkNameCollisions(outputs, i.rebuildLogPath !== undefined);
  copyOutputs(first.layout.out.host, outputs, ctx.outDir);
  const toolchain = await resolveToolchain(
    [...executedPrograms(ctx, first), ...(first.plan.toolchainFiles ?? [])],
    toolchainContext(first),
  );
  const logs = [await logDigest(BUILD_LOG_NAME, first.logPath, first.result.logTruncated)];
  if (i.rebuildLogPath !== undefined) logs.push(await logDigest(REBUILD_LOG_NAME, i.rebuildLogPath, false));
  const recorded = await recordedFetches(i);
  const mirrorSnapshotId = i.mirrorSnapshotId ?? recorded.snapshotId;
  const provenance: ProvenanceInput = {
    spec: ctx.spec,
    specDigest: i.specDigest,
    source: first.source,
    runnerVersion: i.runnerVersion,
    sandbox: sandboxParameters(ctx, first),
    ...(mirrorSnapshotId ? { mirrorSnapshotId } : {}),
    mirrorDependencies: mergeDependencies(i.givenDependencies, recorded.dependencies),
    toolchain,
    builderId: i.builderId,
    builderVersion: { [RUNNER_NAME]: i.runnerVersion, bubblewrap: ctx.tools.bwrapVersion, node: process.version },
    builderDependencies: await builderDependencies(
      ctx.tools,
      which('git'),
      ctx.mirror !== undefined || first.plan.needsNode === true,
    ),
    invocationId: i.invocationId,
    startedOn: i.startedOn,
    finishedOn: i.finishedOn,
    reproducibility: i.reproducibility,
    hermeticity: { monitor: ctx.monitor, violations: 0 },
    logs,
    ...(i.nodeAttestation ? { nodeAttestation: i.nodeAttestation } : {}),
  };
  i.progress('attest', 'writing provenance and SBOMs');
  const predicate = provenancePredicate(provenance, ctx.timeoutSeconds);
  const artifacts: ArtifactResult[] = [];
  for (const f of outputs) artifacts.push(await attestOne(i, f, provenance, predicate));
  return {
    provenance,
    predicate,
    artifacts,
    toolchain,
    logs,
    recorded,
    ...(mirrorSnapshotId ? { mirrorSnapshotId } : {}),
  };
}

/** What the build actually received from the mirror (hashed by the bridge), resolved to mirror entries. */
async function recordedFetches(i: AttestationInput): Promise<ResolvedMirrorFetches> {
  const mirror = i.ctx.mirror;
  if (!mirror) return { dependencies: [], metadataResponses: 0 };
  const recorded = await resolveMirrorFetches(mirror);
  const n = recorded.dependencies.length;
  const m = recorded.metadataResponses;
  i.progress(
    'attest',
    `the build fetched ${n} mirror blob${n === 1 ? '' : 's'} (${m} metadata response${m === 1 ? '' : 's'})`,
  );
  return recorded;
}

/** Writes one output's provenance and SBOM statements and, with a signer, their bundles. */
async function attestOne(
  i: AttestationInput,
  f: OutputFile,
  provenance: ProvenanceInput,
  predicate: Record<string, unknown>,
): Promise<ArtifactResult> {
  const subject = { name: f.name, digest: { sha256: f.sha256 } };
  const path = join(i.ctx.outDir, f.name);
  const statement = provenanceStatement(subject, predicate);
  const bom = buildSbom(subject, provenance);
  const artifact: ArtifactResult = {
    name: f.name,
    path,
    sha256: f.sha256,
    size: f.size,
    provenancePath: `${path}${PROVENANCE_SUFFIX}`,
    sbomPath: `${path}${SBOM_SUFFIX}`,
  };
  writeJson(artifact.provenancePath, statement);
  writeJson(artifact.sbomPath, bom);
  if (i.signer) {
    i.progress('sign', `signing the attestations of ${f.name}`);
    artifact.provenanceBundlePath = `${path}${PROVENANCE_BUNDLE_SUFFIX}`;
    artifact.sbomBundlePath = `${path}${SBOM_BUNDLE_SUFFIX}`;
    writeJson(artifact.provenanceBundlePath, await signStatement(i.signer, statement, `provenance of ${f.name}`));
    writeJson(artifact.sbomBundlePath, await signStatement(i.signer, sbomStatement(subject, bom), `SBOM of ${f.name}`));
  }
  return artifact;
}

/** Programs the build ran: from the monitor (seccomp or strace), or (log mode) argv[0] as the sandbox would resolve it. */
function executedPrograms(ctx: RunContext, a: Attempt): string[] {
  if (ctx.monitor !== 'log') return a.executed;
  const argv0 = a.plan.argv[0]!;
  if (argv0.includes('/')) return [isAbsolute(argv0) ? argv0 : `${a.plan.cwd}/${argv0.replace(/^\.\//, '')}`];
  const found = lookupOnSandboxPath(argv0);
  return found ? [found] : [];
}

function lookupOnSandboxPath(cmd: string): string | undefined {
  for (const dir of SANDBOX_PATH.split(':')) {
    const p = `${dir}/${cmd}`;
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Sandbox path → host file, for the read-only host binds and the source checkout only. */
function toolchainContext(a: Attempt) {
  const readOnlyRoots = [
    '/usr/',
    '/bin/',
    '/sbin/',
    '/lib/',
    '/lib32/',
    '/lib64/',
    '/libx32/',
    ...[...HOST_ETC_READONLY, ...a.plan.profile.extraReadOnly].map((p) => `${p}/`),
  ];
  const src = `${a.layout.src.path}/`;
  const absolute = (p: string) => (isAbsolute(p) ? p : `${a.plan.cwd}/${p.replace(/^\.\//, '')}`);
  return {
    hostPathOf(p: string) {
      const abs = absolute(p);
      return !abs.includes('/../') && readOnlyRoots.some((r) => abs.startsWith(r)) ? abs : undefined;
    },
    sourcePathOf(p: string) {
      const abs = absolute(p);
      if (!abs.startsWith(src) || abs.includes('/../')) return undefined;
      // The build could have swapped the script for a symlink to a host file: only read real files inside the checkout.
      try {
        const real = realpathSync(join(a.layout.src.host, abs.slice(src.length)));
        return real.startsWith(`${realpathSync(a.layout.src.host)}/`) ? real : undefined;
      } catch {
        return undefined;
      }
    },
    lookup: lookupOnSandboxPath,
  };
}

function sandboxParameters(ctx: RunContext, a: Attempt): SandboxParameters {
  const fixed: Record<string, string> = {};
  const passthrough = new Set(ctx.spec.env ?? []);
  for (const [k, v] of Object.entries(a.env)) if (!passthrough.has(k)) fixed[k] = v;
  const namespaces = ['user', 'network', 'ipc', 'uts', 'cgroup', ...(a.plan.profile.unsharePid ? ['pid'] : [])];
  return {
    tool: 'bubblewrap',
    version: ctx.tools.bwrapVersion,
    namespaces,
    uid: SANDBOX_UID,
    gid: SANDBOX_GID,
    hostname: a.hostname,
    readOnlyHostPaths: [
      '/usr',
      ...['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'].filter((p) => existsSync(p)),
      ...[...HOST_ETC_READONLY, ...a.plan.profile.extraReadOnly].filter((p) => existsSync(p)),
    ],
    paths: { source: a.layout.src.path, output: a.layout.out.path, home: a.layout.home.path, tmp: a.layout.tmp.path },
    environment: fixed,
    passthroughEnv: [...passthrough].filter((k) => a.env[k] !== undefined),
    umask: '022',
    timeoutSeconds: ctx.timeoutSeconds,
    network: ctx.mirror ? { mode: 'mirror-bridge', bridge: `127.0.0.1:${ctx.bridgePort}` } : { mode: 'none' },
    monitor: ctx.monitor,
  };
}

async function logDigest(name: string, path: string, truncated: boolean): Promise<LogDigest> {
  const { digests, size } = await digestFile(path, ['sha256']);
  return { name, sha256: digests.sha256!, size, truncated };
}

/** Output names must not collide with the logs or with each other's attestation files. */
function checkNameCollisions(files: readonly OutputFile[], hasRebuildLog: boolean): void {
  const reserved = new Set<string>([BUILD_LOG_NAME, ...(hasRebuildLog ? [REBUILD_LOG_NAME] : [])]);
  for (const f of files)
    for (const s of [PROVENANCE_SUFFIX, SBOM_SUFFIX, PROVENANCE_BUNDLE_SUFFIX, SBOM_BUNDLE_SUFFIX])
      reserved.add(`${f.name}${s}`);
  const clash = files.filter((f) => reserved.has(f.name)).map((f) => f.name);
  if (clash.length > 0) {
    throw new RunnerError(
      'RUNNER_OUTPUT_INVALID',
      `output name${clash.length > 1 ? 's' : ''} ${clash.map((c) => `'${c}'`).join(', ')} collide with the runner's log or attestation files`,
    );
  }
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
}
