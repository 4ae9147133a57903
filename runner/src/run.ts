import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { attestOutputs, type ArtifactResult, type AttestationResult } from './attestation.js';
import {
  executeAttempt,
  failOnBuildError,
  failOnViolations,
  prepareAttempt,
  type Attempt,
  type RunContext,
} from './attempt.js';
import { builderFor } from './builders.js';
import { removeTree } from './cleanup.js';
import { selectBuildEnv } from './env-policy.js';
import { RunnerError } from './errors.js';
import type { SourceResolver } from './git-source.js';
import { findHostTools, type HostTools } from './host-tools.js';
import { checkImageRequest, publishImage, type ImageResult, type RegistryOptions } from './image.js';
import { openMirrorEndpoint, type MirrorClientTls, type MirrorEndpoint } from './mirror-endpoint.js';
import { approvedMirrors, selectMirror, type MirrorConfig } from './mirror-selection.js';
import type { NetworkMonitorMode } from './network-monitor.js';
import { collectOutputs } from './outputs.js';
import { validateMirrorDependencies, type MirrorDependency, type NodeAttestationParameters } from './provenance.js';
import { rebuildCheck, type RebuildCheckResult } from './rebuild-check.js';
import type { ReproducibilityResult } from './reproducibility.js';
import { DEFAULT_BRIDGE_PORT } from './sandbox.js';
import type { AttestationSigner } from './signer.js';
import { loadSpec, loadSpecFile, specTimeoutSeconds, type BuildSpec, type LoadedSpec } from './spec.js';
import type { ToolchainEntry } from './toolchain.js';
import { confinementConfig, resolveLimits, type ResourceLimitOptions } from './limits/index.js';

export { BUILD_LOG_NAME, REBUILD_LOG_NAME, SANDBOX_PATH } from './attempt.js';
export type { ArtifactResult } from './attestation.js';
export type { AttestationSigner } from './signer.js';
export type { MirrorConfig } from './mirror-selection.js';

export type RunPhase =
  'spec' | 'node' | 'checkout' | 'build' | 'rebuild' | 'compare' | 'outputs' | 'attest' | 'sign' | 'image' | 'done';

/**
 * Binds a build to the attested node before dispatch (issue 10 §4, SLSA BuildEnv L2): get a quote by the node's
 * attested AK over buildQuoteNonce(invocationId, specDigest), verify it, and return the provenance record. Throwing
 * stops the run before checkout (RUNNER_NODE_ATTESTATION_FAILED, or RUNNER_ATTESTOR_UNAVAILABLE for a code ending
 * in _UNAVAILABLE).
 */
export interface NodeBinding {
  bind(build: { invocationId: string; specDigest: string }): Promise<NodeAttestationParameters>;
}

export interface ProgressEvent {
  phase: RunPhase;
  message: string;
  /** Milliseconds since runBuild started. */
  elapsedMs: number;
}

export interface RunOptions {
  /** Where outputs, their attestations and the logs go; created if missing, must be empty. */
  outDir: string;
  /** Parent of the per-run scratch directory (default: the OS temp dir). */
  workRoot?: string;
  /** Signs provenance and SBOM statements; without one only the unsigned statements are written. */
  signer?: AttestationSigner;
  /** The runner's identity URI: SLSA runDetails.builder.id. */
  builderId: string;
  /** The mirror as a UNIX socket (preferred: no TCP port on the host)… */
  mirrorUnixSocket?: string;
  /** …or as http://host:port[/path] (the runner bridges it). */
  mirrorUrl?: string;
  /**
   * More operator-approved mirrors (after the mirrorUrl/mirrorUnixSocket one). A spec's `mirror` may only select
   * one of these (by name or exact URL); without a selection the first approved mirror is used.
   */
  mirrors?: MirrorConfig[];
  /** Client certificate (the runner's X509-SVID) the bridge presents to an https:// mirror: operator config only. */
  mirrorClientTls?: MirrorClientTls;
  /** The mirror snapshot the build used (`sha256:<hex>`), recorded in provenance. */
  mirrorSnapshotId?: string;
  /** Mirror blobs the build used, as the caller knows them (purl/uri + digests). */
  resolvedMirrorDependencies?: MirrorDependency[];
  onProgress?: (event: ProgressEvent) => void;
  /** Environment the spec's `env` allow-list reads from (default: process.env). */
  hostEnv?: NodeJS.ProcessEnv;
  /** Credential-like variable names (…TOKEN…, AWS_…, see env-policy.ts) the spec may pass (`--pass-env`). */
  passEnv?: string[];
  /** Values that never reach a build, whatever variable holds them (the runner's identity token). */
  withheldValues?: string[];
  /** How network attempts are detected (default 'auto': seccomp (netmon) when usable, else strace, else the log). */
  networkMonitor?: 'auto' | NetworkMonitorMode;
  /** Maps remote source URLs to local repositories. */
  sourceResolver?: SourceResolver;
  /** Shift the rebuild's clock with faketime (default: when installed). */
  faketime?: boolean;
  /** Loopback port of the mirror inside the sandbox (default 18080). */
  bridgePort?: number;
  /** Base directory for a relative `source.repo` of an in-memory spec (default: cwd). */
  baseDir?: string;
  /** Keep the scratch directory (debugging); its path is in the result. */
  keepWorkDir?: boolean;
  signal?: AbortSignal;
  /** How to reach the registry of the spec's `image.repository` (runner/src/image.ts). */
  registry?: RegistryOptions;
  /** Memory, pids, CPU and disk limits of every sandbox (runner/src/limits; defaults 8 GiB, 4096, all cores, 20 GiB). */
  limits?: ResourceLimitOptions;
  /** Bind the build to the attested node before dispatch; its record goes to internalParameters.nodeAttestation. */
  nodeBinding?: NodeBinding;
}

export interface RunResult {
  invocationId: string;
  builderId: string;
  startedOn: string;
  finishedOn: string;
  spec: { path?: string; digest: { sha256: string } };
  source: {
    repo: string;
    repoUri: string;
    commit: string;
    ref?: string;
    gitTree: string;
    treeSha256: string;
    sourceDateEpoch: number;
  };
  artifacts: ArtifactResult[];
  logPath: string;
  logSha256: string;
  rebuildLogPath?: string;
  reproducibility: ReproducibilityResult;
  hermeticity: { monitor: NetworkMonitorMode; violations: number };
  toolchain: ToolchainEntry[];
  /** The mirror snapshot and the blobs recorded in resolvedDependencies (given + fetched through the bridge). */
  mirror?: { snapshotId?: string; dependencies: MirrorDependency[]; metadataResponses: number };
  durations: { checkoutMs: number; buildMs: number; rebuildMs?: number; attestMs: number; totalMs: number };
  workDir?: string;
  /** The pushed OCI image, when the spec has `image`. */
  image?: ImageResult;
  /** The build quote verified before dispatch (options.nodeBinding), as recorded in provenance. */
  nodeAttestation?: NodeAttestationParameters;
}

const RUNNER_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

export function runnerVersion(): string {
  return RUNNER_VERSION;
}

/**
 * Runs one hermetic build: validate the spec, check out the exact commit, build in the bubblewrap sandbox
 * (network: the mirror only), classify network attempts, rebuild and compare when `reproducible`, then write
 * the outputs with SLSA v1 provenance and a CycloneDX SBOM each, signed when a signer is given.
 * Throws a RunnerError whose code maps to an exit code (`exitCodeFor`).
 */
export async function runBuild(spec: BuildSpec | string, options: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const startedOn = new Date(t0).toISOString();
  const invocationId = randomUUID();
  const progress = (phase: RunPhase, message: string) =>
    options.onProgress?.({ phase, message, elapsedMs: Date.now() - t0 });

  progress('spec', typeof spec === 'string' ? `validating ${spec}` : 'validating the build spec');
  const { loaded, builder, chosenMirror, buildEnv, givenDependencies } = checkInputs(spec, options);
  const outDir = prepareOutDir(options.outDir);
  const tools = await findHostTools(options.networkMonitor ?? 'auto', options.faketime);
  const nodeAttestation = await bindToNode(options.nodeBinding, { invocationId, specDigest: loaded.digest }, progress);

  const workRoot = options.workRoot ?? tmpdir();
  mkdirSync(workRoot, { recursive: true });
  const runDir = mkdtempSync(join(workRoot, 'airlock-run-'));
  let mirror: MirrorEndpoint | undefined;
  try {
    mirror = await openMirrorEndpoint({
      unixSocket: chosenMirror?.unixSocket,
      url: chosenMirror?.url,
      socketPath: join(runDir, 'mirror.sock'),
      ...(options.mirrorClientTls ? { clientTls: options.mirrorClientTls } : {}),
    });
    const ctx: RunContext = {
      spec: loaded.spec,
      baseDir: loaded.baseDir,
      builder,
      tools,
      monitor: tools.netmon ? 'seccomp' : tools.strace ? 'strace' : 'log',
      runDir,
      outDir,
      mirror,
      bridgePort: options.bridgePort ?? DEFAULT_BRIDGE_PORT,
      timeoutSeconds: specTimeoutSeconds(loaded.spec),
      specEnv: buildEnv,
      limits: confinementConfig(options.limits, (m) => progress('build', m)),
      ...(options.sourceResolver ? { sourceResolver: options.sourceResolver } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };

    // ---- build
    const tCheckout = Date.now();
    progress('checkout', `checking out ${loaded.spec.source.commit}`);
    const first = await prepareAttempt(ctx, 'build');
    const checkoutMs = Date.now() - tCheckout;
    progress('build', `building (${builder.type}) in the sandbox; ${monitorNote(tools)}`);
    await executeAttempt(ctx, first);
    failOnViolations(ctx, first);
    failOnBuildError(first, ctx.timeoutSeconds);
    const outputs = await collectOutputs(first.layout.out.host, loaded.spec.outputs);

    // ---- rebuild check
    const rebuilt = await rebuildCheck(ctx, first, outputs, progress);
    const finishedOn = new Date().toISOString();

    // ---- outputs, provenance, SBOM, signatures
    const tAttest = Date.now();
    const attested = await attestOutputs({
      ctx,
      first,
      outputs,
      ...(rebuilt.rebuildLogPath !== undefined ? { rebuildLogPath: rebuilt.rebuildLogPath } : {}),
      reproducibility: rebuilt.reproducibility,
      specDigest: loaded.digest,
      runnerVersion: RUNNER_VERSION,
      builderId: options.builderId,
      invocationId,
      startedOn,
      finishedOn,
      givenDependencies,
      ...(options.mirrorSnapshotId ? { mirrorSnapshotId: options.mirrorSnapshotId } : {}),
      ...(options.signer ? { signer: options.signer } : {}),
      ...(nodeAttestation ? { nodeAttestation } : {}),
      progress,
    });

    // ---- image
    const image = loaded.spec.image
      ? await publishImage({
          image: loaded.spec.image,
          outDir,
          workDir: join(runDir, 'image'),
          outputs,
          predicate: attested.predicate,
          provenance: attested.provenance,
          ...(options.signer ? { signer: options.signer } : {}),
          ...(options.registry ? { registry: options.registry } : {}),
          progress: (m) => progress('image', m),
        })
      : undefined;
    const attestMs = Date.now() - tAttest;
    const n = attested.artifacts.length;
    progress('done', `${n} artifact${n === 1 ? '' : 's'} built`);
    return runResult({
      options,
      loaded,
      ctx,
      first,
      rebuilt,
      attested,
      image,
      invocationId,
      startedOn,
      finishedOn,
      checkoutMs,
      attestMs,
      t0,
    });
  } finally {
    await mirror?.close();
    if (!options.keepWorkDir) removeTree(runDir);
  }
}

/** The build quote, verified before anything is checked out or run; a failure dispatches nothing. */
async function bindToNode(
  binding: NodeBinding | undefined,
  build: { invocationId: string; specDigest: string },
  progress: (phase: RunPhase, message: string) => void,
): Promise<NodeAttestationParameters | undefined> {
  if (!binding) return undefined;
  progress('node', `binding invocation ${build.invocationId} to the attested node (TPM quote)`);
  let record: NodeAttestationParameters;
  try {
    record = await binding.bind(build);
  } catch (cause) {
    const code = String((cause as { code?: unknown }).code ?? 'ERROR');
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new RunnerError(
      /_UNAVAILABLE$/.test(code) ? 'RUNNER_ATTESTOR_UNAVAILABLE' : 'RUNNER_NODE_ATTESTATION_FAILED',
      `the build was not dispatched: node attestation failed (${code}): ${message}`,
      { cause, details: { reason: code } },
    );
  }
  progress(
    'node',
    `quote ${record.quoteDigest} by AK ${record.akName.slice(0, 16)}… matches ${record.referenceValues.id}`,
  );
  return record;
}

/**
 * Everything decidable before any work: the spec, the options, and what the spec chose among what the operator
 * allowed (mirror, environment, registry). Throws RUNNER_SPEC_INVALID (exit 2) and friends.
 */
function checkInputs(spec: BuildSpec | string, options: RunOptions) {
  const loaded = typeof spec === 'string' ? loadSpecFile(spec) : loadSpec(spec, options.baseDir);
  checkOptions(options);
  if (loaded.spec.image) checkImageRequest(loaded.spec.image, loaded.spec.source.commit, options);
  const chosenMirror = selectMirror(loaded.spec, approvedMirrors(options));
  const buildEnv = selectBuildEnv(loaded.spec, {
    hostEnv: options.hostEnv ?? process.env,
    ...(options.passEnv ? { passEnv: options.passEnv } : {}),
    ...(options.withheldValues ? { withheldValues: options.withheldValues } : {}),
  });
  const givenDependencies = validateMirrorDependencies(options.resolvedMirrorDependencies);
  return { loaded, builder: builderFor(loaded.spec.builder), chosenMirror, buildEnv, givenDependencies };
}

function checkOptions(options: RunOptions): void {
  resolveLimits(options.limits);
  if (typeof options.builderId !== 'string' || !/^[a-z][a-z0-9+.-]*:[^\s]+$/i.test(options.builderId)) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `builderId must be a URI (the runner's identity), got '${String(options.builderId)}'`,
    );
  }
  if (options.mirrorSnapshotId !== undefined && !/^sha256:[0-9a-f]{64}$/.test(options.mirrorSnapshotId)) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `mirrorSnapshotId must look like sha256:<64 hex>, got '${options.mirrorSnapshotId}'`,
    );
  }
  if (
    options.bridgePort !== undefined &&
    !(Number.isInteger(options.bridgePort) && options.bridgePort > 0 && options.bridgePort < 65536)
  ) {
    throw new RunnerError('RUNNER_SPEC_INVALID', `bridgePort must be a TCP port, got ${options.bridgePort}`);
  }
  if (typeof options.outDir !== 'string' || options.outDir === '')
    throw new RunnerError('RUNNER_SPEC_INVALID', 'outDir is required');
}

function prepareOutDir(dir: string): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory())
      throw new RunnerError('RUNNER_OUT_DIR_NOT_EMPTY', `output directory ${abs} is not a directory`);
    if (readdirSync(abs).length > 0)
      throw new RunnerError('RUNNER_OUT_DIR_NOT_EMPTY', `output directory ${abs} is not empty`);
  } else mkdirSync(abs, { recursive: true });
  return abs;
}

interface RunSummary {
  options: RunOptions;
  loaded: LoadedSpec;
  ctx: RunContext;
  first: Attempt;
  rebuilt: RebuildCheckResult;
  attested: AttestationResult;
  image: ImageResult | undefined;
  invocationId: string;
  startedOn: string;
  finishedOn: string;
  checkoutMs: number;
  attestMs: number;
  t0: number;
}

/** What runBuild reports, from what each phase produced. */
function runResult(r: RunSummary): RunResult {
  const { options, loaded, ctx, first, rebuilt, attested, image, invocationId, startedOn, finishedOn } = r;
  const { checkoutMs, attestMs, t0 } = r;
  const { artifacts } = attested;
  const mirror = ctx.mirror;
  const s = first.source;
  return {
    invocationId,
    builderId: options.builderId,
    startedOn,
    finishedOn,
    spec: { ...(loaded.path ? { path: loaded.path } : {}), digest: { sha256: loaded.digest } },
    source: {
      repo: s.repo,
      repoUri: s.repoUri,
      commit: s.commit,
      ...(s.ref ? { ref: s.ref } : {}),
      gitTree: s.gitTree,
      treeSha256: s.treeSha256,
      sourceDateEpoch: s.commitTime,
    },
    artifacts,
    logPath: first.logPath,
    logSha256: attested.logs[0]!.sha256,
    ...(rebuilt.rebuildLogPath ? { rebuildLogPath: rebuilt.rebuildLogPath } : {}),
    reproducibility: rebuilt.reproducibility,
    hermeticity: { monitor: ctx.monitor, violations: 0 },
    toolchain: attested.toolchain,
    ...(mirror
      ? {
          mirror: {
            ...(attested.mirrorSnapshotId ? { snapshotId: attested.mirrorSnapshotId } : {}),
            dependencies: attested.provenance.mirrorDependencies as MirrorDependency[],
            metadataResponses: attested.recorded.metadataResponses,
          },
        }
      : {}),
    durations: {
      checkoutMs,
      buildMs: first.result.durationMs,
      ...(rebuilt.rebuildMs !== undefined ? { rebuildMs: rebuilt.rebuildMs } : {}),
      attestMs,
      totalMs: Date.now() - t0,
    },
    ...(options.keepWorkDir ? { workDir: ctx.runDir } : {}),
    ...(image ? { image } : {}),
    ...(attested.provenance.nodeAttestation ? { nodeAttestation: attested.provenance.nodeAttestation } : {}),
  };
}

/** Which network monitor watches the build, and why a fallback when it is one. */
function monitorNote(tools: HostTools): string {
  if (tools.netmon) return 'network monitor: seccomp (netmon)';
  const why = tools.netmonProblem ? ` (${tools.netmonProblem})` : '';
  return tools.strace ? `network monitor: strace, fallback${why}` : `network monitor: build log only, fallback${why}`;
}
