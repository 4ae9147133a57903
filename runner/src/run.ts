import { randomBytes, randomUUID } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { digestFile, type Statement } from '@airlock/core';
import { builderFor, type Builder, type BuildPlan } from './builders.js';
import { RunnerError } from './errors.js';
import { which } from './exec.js';
import { checkoutSource, type SourceCheckout, type SourceResolver } from './git-source.js';
import { builderDependencies, findHostTools, type HostTools } from './host-tools.js';
import { openMirrorEndpoint, type MirrorEndpoint } from './mirror-endpoint.js';
import { mergeDependencies, resolveMirrorFetches } from './mirror-dependencies.js';
import {
  describeViolation,
  scanLogForViolations,
  TraceAnalyzer,
  type NetworkMonitorMode,
  type NetworkViolation,
} from './network-monitor.js';
import { collectOutputs, copyOutputs, type OutputFile } from './outputs.js';
import {
  buildSbom,
  provenancePredicate,
  provenanceStatement,
  RUNNER_NAME,
  sbomStatement,
  validateMirrorDependencies,
  type MirrorDependency,
  type ProvenanceInput,
  type SandboxParameters,
} from './provenance.js';
import {
  compareOutputs,
  describeDifferences,
  diffoscopeSummary,
  type RebuildVariations,
  type ReproducibilityResult,
} from './reproducibility.js';
import {
  DEFAULT_BRIDGE_PORT,
  HOST_ETC_READONLY,
  isPlumbingPath,
  runSandboxed,
  SANDBOX_GID,
  SANDBOX_UID,
  type SandboxLayout,
  type SandboxRunResult,
} from './sandbox.js';
import { loadSpec, loadSpecFile, specTimeoutSeconds, type BuildSpec, type LoadedSpec } from './spec.js';
import { resolveToolchain, type ToolchainEntry } from './toolchain.js';
import { checkImageRequest, publishImage, type ImageResult, type RegistryOptions } from './image.js';
import { removeTree } from './cleanup.js';
import {
  confinementConfig,
  limitError,
  resolveLimits,
  type ConfinementConfig,
  type ResourceLimitOptions,
} from './limits/index.js';

/** The signing port: anything that turns an in-toto statement into a Sigstore bundle (e.g. @airlock/sign's AirlockSigner). */
export interface AttestationSigner {
  attest(statement: Statement): Promise<unknown>;
  /** Signs raw bytes (a message-signature bundle); needed for the cosign signature of an OCI image output. */
  signBlob?(bytes: Buffer): Promise<unknown>;
}

export type RunPhase =
  'spec' | 'checkout' | 'build' | 'rebuild' | 'compare' | 'outputs' | 'attest' | 'sign' | 'image' | 'done';

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
  /** …or as http://host:port[/path] (the runner bridges it). Default: the spec's mirror.url. */
  mirrorUrl?: string;
  /** The mirror snapshot the build used (`sha256:<hex>`), recorded in provenance. */
  mirrorSnapshotId?: string;
  /** Mirror blobs the build used, as the caller knows them (purl/uri + digests). */
  resolvedMirrorDependencies?: MirrorDependency[];
  onProgress?: (event: ProgressEvent) => void;
  /** Environment the spec's `env` allow-list reads from (default: process.env). */
  hostEnv?: NodeJS.ProcessEnv;
  /** How network attempts are detected (default 'auto': strace when usable, else the log). */
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
}

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
}

/** PATH inside the sandbox: host /usr (read-only) and the merged-/usr links. */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const BUILD_LOG_NAME = 'airlock-build.log';
export const REBUILD_LOG_NAME = 'airlock-rebuild.log';
const PROVENANCE_SUFFIX = '.provenance.json';
const SBOM_SUFFIX = '.cdx.json';
const PROVENANCE_BUNDLE_SUFFIX = '.provenance.sigstore.json';
const SBOM_BUNDLE_SUFFIX = '.sbom.sigstore.json';

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

interface Attempt {
  kind: 'build' | 'rebuild';
  dir: string;
  layout: SandboxLayout;
  source: SourceCheckout;
  plan: BuildPlan;
  hostname: string;
  env: Record<string, string>;
  logPath: string;
  result: SandboxRunResult;
  violations: NetworkViolation[];
  violationCount: number;
  executed: string[];
}

interface RunContext {
  loaded: LoadedSpec;
  spec: BuildSpec;
  builder: Builder;
  options: RunOptions;
  tools: HostTools;
  monitor: NetworkMonitorMode;
  runDir: string;
  outDir: string;
  mirror: MirrorEndpoint | undefined;
  bridgePort: number;
  timeoutSeconds: number;
  limits: ConfinementConfig;
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
  const loaded = typeof spec === 'string' ? loadSpecFile(spec) : loadSpec(spec, options.baseDir);
  checkOptions(options);
  const builder = builderFor(loaded.spec.builder);
  if (loaded.spec.image) checkImageRequest(loaded.spec.image, loaded.spec.source.commit, options);
  const mirrorDependencies = validateMirrorDependencies(options.resolvedMirrorDependencies);
  const outDir = prepareOutDir(options.outDir);
  const tools = await findHostTools(options.networkMonitor ?? 'auto', options.faketime);
  const monitor: NetworkMonitorMode = tools.strace ? 'strace' : 'log';

  const workRoot = options.workRoot ?? tmpdir();
  mkdirSync(workRoot, { recursive: true });
  const runDir = mkdtempSync(join(workRoot, 'airlock-run-'));
  let mirror: MirrorEndpoint | undefined;
  try {
    mirror = await openMirrorEndpoint({
      unixSocket: options.mirrorUnixSocket,
      url: options.mirrorUrl ?? loaded.spec.mirror?.url,
      socketPath: join(runDir, 'mirror.sock'),
    });
    const ctx: RunContext = {
      loaded,
      spec: loaded.spec,
      builder,
      options,
      tools,
      monitor,
      runDir,
      outDir,
      mirror,
      bridgePort: options.bridgePort ?? DEFAULT_BRIDGE_PORT,
      timeoutSeconds: specTimeoutSeconds(loaded.spec),
      limits: confinementConfig(options.limits, (m) => progress('build', m)),
    };

    // ---- first build
    const tCheckout = Date.now();
    progress('checkout', `checking out ${loaded.spec.source.commit}`);
    const first = await prepareAttempt(ctx, 'build');
    const checkoutMs = Date.now() - tCheckout;
    progress('build', `building (${builder.type}) in the sandbox`);
    await executeAttempt(ctx, first);
    failOnViolations(ctx, first);
    failOnBuildError(first, ctx.timeoutSeconds);
    const firstOutputs = await collectOutputs(first.layout.out.host, loaded.spec.outputs);
    const buildMs = first.result.durationMs;

    // ---- rebuild check
    let reproducibility: ReproducibilityResult = { status: 'not-requested' };
    let rebuildMs: number | undefined;
    let rebuildLogPath: string | undefined;
    if (loaded.spec.reproducible) {
      progress('rebuild', 'rebuilding in a different path, hostname, environment and time');
      const second = await prepareAttempt(ctx, 'rebuild');
      if (second.source.treeSha256 !== first.source.treeSha256) {
        throw new RunnerError('RUNNER_SOURCE_FAILED', 'the rebuild checked out a different tree than the first build');
      }
      await executeAttempt(ctx, second);
      rebuildMs = second.result.durationMs;
      rebuildLogPath = second.logPath;
      failOnViolations(ctx, second);
      if (second.result.limitExceeded) throw limitError(second.result.limitExceeded, 'rebuild', second.logPath);
      const variations: RebuildVariations = {
        buildPath: true,
        hostname: true,
        home: true,
        environmentNoise: true,
        time: tools.faketime && builder.supportsFaketime !== false ? 'faketime' : 'wall-clock',
      };
      if (second.result.exitCode !== 0 || second.result.timedOut) {
        throw new RunnerError(
          'RUNNER_REPRODUCIBILITY_FAILED',
          `not reproducible: the rebuild failed (${exitDescription(second.result, ctx.timeoutSeconds)}) although the first build succeeded; log: ${second.logPath}`,
          { details: { logPath: first.logPath, rebuildLogPath: second.logPath } },
        );
      }
      progress('compare', 'comparing output digests');
      let secondOutputs: OutputFile[];
      try {
        secondOutputs = await collectOutputs(second.layout.out.host, loaded.spec.outputs);
      } catch (err) {
        if ((err as { code?: string }).code !== 'RUNNER_OUTPUT_MISSING') throw err;
        throw new RunnerError(
          'RUNNER_REPRODUCIBILITY_FAILED',
          `not reproducible: ${(err as Error).message} by the rebuild`,
          {
            details: { logPath: first.logPath, rebuildLogPath: second.logPath },
            cause: err,
          },
        );
      }
      const differences = compareOutputs(first.layout.out.host, firstOutputs, second.layout.out.host, secondOutputs);
      if (differences.length > 0) {
        const diffoscope = await diffoscopeSummary(first.layout.out.host, second.layout.out.host, differences);
        const result: ReproducibilityResult = {
          status: 'differs',
          differences,
          variations,
          ...(diffoscope ? { diffoscope } : {}),
        };
        throw new RunnerError(
          'RUNNER_REPRODUCIBILITY_FAILED',
          `not reproducible: ${differences.length} output${differences.length > 1 ? 's differ' : ' differs'} between two builds of ${loaded.spec.source.commit}: ${describeDifferences(differences)}${diffoscope ? `\ndiffoscope:\n${diffoscope}` : ''}`,
          { details: { differences, reproducibility: result, logPath: first.logPath, rebuildLogPath: second.logPath } },
        );
      }
      reproducibility = {
        status: 'reproduced',
        files: firstOutputs.length,
        variations,
        rebuildDurationMs: second.result.durationMs,
      };
    }
    const finishedOn = new Date().toISOString();

    // ---- outputs, provenance, SBOM, signatures
    const tAttest = Date.now();
    progress('outputs', `copying ${firstOutputs.length} output${firstOutputs.length === 1 ? '' : 's'}`);
    checkNameCollisions(firstOutputs, rebuildLogPath !== undefined);
    copyOutputs(first.layout.out.host, firstOutputs, outDir);
    const toolchain = await resolveToolchain(
      [...executedPrograms(ctx, first), ...(first.plan.toolchainFiles ?? [])],
      toolchainContext(first),
    );
    const logs = [await logDigest(BUILD_LOG_NAME, first)];
    if (rebuildLogPath !== undefined) logs.push(await logDigest(REBUILD_LOG_NAME, undefined, rebuildLogPath));
    const git = which('git');
    // What the build actually received from the mirror (hashed by the bridge), resolved to mirror entries.
    const recorded = mirror ? await resolveMirrorFetches(mirror) : { dependencies: [], metadataResponses: 0 };
    if (mirror)
      progress(
        'attest',
        `the build fetched ${recorded.dependencies.length} mirror blob${recorded.dependencies.length === 1 ? '' : 's'} (${recorded.metadataResponses} metadata response${recorded.metadataResponses === 1 ? '' : 's'})`,
      );
    const mirrorSnapshotId = options.mirrorSnapshotId ?? recorded.snapshotId;
    const input: ProvenanceInput = {
      spec: loaded.spec,
      specDigest: loaded.digest,
      source: first.source,
      runnerVersion: RUNNER_VERSION,
      sandbox: sandboxParameters(ctx, first),
      ...(mirrorSnapshotId ? { mirrorSnapshotId } : {}),
      mirrorDependencies: mergeDependencies(mirrorDependencies, recorded.dependencies),
      toolchain,
      builderId: options.builderId,
      builderVersion: { [RUNNER_NAME]: RUNNER_VERSION, bubblewrap: tools.bwrapVersion, node: process.version },
      builderDependencies: await builderDependencies(tools, git, mirror !== undefined || first.plan.needsNode === true),
      invocationId,
      startedOn,
      finishedOn,
      reproducibility,
      hermeticity: { monitor, violations: 0 },
      logs,
    };
    progress('attest', 'writing provenance and SBOMs');
    const predicate = provenancePredicate(input, ctx.timeoutSeconds);
    const artifacts: ArtifactResult[] = [];
    for (const f of firstOutputs) {
      const subject = { name: f.name, digest: { sha256: f.sha256 } };
      const path = join(outDir, f.name);
      const statement = provenanceStatement(subject, predicate);
      const bom = buildSbom(subject, input);
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
      if (options.signer) {
        progress('sign', `signing the attestations of ${f.name}`);
        artifact.provenanceBundlePath = `${path}${PROVENANCE_BUNDLE_SUFFIX}`;
        artifact.sbomBundlePath = `${path}${SBOM_BUNDLE_SUFFIX}`;
        writeJson(artifact.provenanceBundlePath, await sign(options.signer, statement, `provenance of ${f.name}`));
        writeJson(
          artifact.sbomBundlePath,
          await sign(options.signer, sbomStatement(subject, bom), `SBOM of ${f.name}`),
        );
      }
      artifacts.push(artifact);
    }
    const image = loaded.spec.image
      ? await publishImage({
          image: loaded.spec.image,
          outDir,
          workDir: join(runDir, 'image'),
          outputs: firstOutputs,
          predicate,
          provenance: input,
          ...(options.signer ? { signer: options.signer } : {}),
          ...(options.registry ? { registry: options.registry } : {}),
          progress: (m) => progress('image', m),
        })
      : undefined;
    const attestMs = Date.now() - tAttest;
    const s = first.source;
    progress('done', `${artifacts.length} artifact${artifacts.length === 1 ? '' : 's'} built`);
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
      logSha256: logs[0]!.sha256,
      ...(rebuildLogPath ? { rebuildLogPath } : {}),
      reproducibility,
      hermeticity: { monitor, violations: 0 },
      toolchain,
      ...(mirror
        ? {
            mirror: {
              ...(mirrorSnapshotId ? { snapshotId: mirrorSnapshotId } : {}),
              dependencies: input.mirrorDependencies as MirrorDependency[],
              metadataResponses: recorded.metadataResponses,
            },
          }
        : {}),
      durations: {
        checkoutMs,
        buildMs,
        ...(rebuildMs !== undefined ? { rebuildMs } : {}),
        attestMs,
        totalMs: Date.now() - t0,
      },
      ...(options.keepWorkDir ? { workDir: runDir } : {}),
      ...(image ? { image } : {}),
    };
  } finally {
    await mirror?.close();
    if (!options.keepWorkDir) removeTree(runDir);
  }
}

function checkOptions(options: RunOptions): void {
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
  resolveLimits(options.limits);
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

/** Fresh directories and a fresh checkout for one build; the rebuild varies paths, hostname, HOME and env. */
async function prepareAttempt(ctx: RunContext, kind: 'build' | 'rebuild'): Promise<Attempt> {
  const dir = join(ctx.runDir, kind);
  const hostDir = (name: string) => {
    const p = join(dir, name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const noise = randomBytes(4).toString('hex');
  const base = kind === 'build' ? '/build' : `/build/rebuild-${noise}`;
  const srcHost = join(dir, 'src');
  mkdirSync(dir, { recursive: true });
  const source = await checkoutSource(ctx.spec.source, srcHost, {
    baseDir: ctx.loaded.baseDir,
    scratchHome: join(ctx.runDir, 'git-home'),
    ...(ctx.options.sourceResolver ? { resolver: ctx.options.sourceResolver } : {}),
  });
  const layout: SandboxLayout = {
    plumbingDir: hostDir('sandbox'),
    src: { host: srcHost, path: `${base}/src` },
    out: { host: hostDir('out'), path: `${base}/out` },
    home: { host: hostDir('home'), path: `${base}/home` },
    tmp: { host: hostDir('tmp'), path: '/tmp' },
  };
  const mirrorUrl = ctx.mirror ? `http://127.0.0.1:${ctx.bridgePort}${ctx.mirror.pathPrefix}` : undefined;
  const plan = ctx.builder.plan({
    sourceDir: layout.src.path,
    outputDir: layout.out.path,
    ...(mirrorUrl ? { mirrorUrl } : {}),
  });
  // Builder hook: extra writable directories (e.g. a private /nix store), fresh per attempt.
  if (plan.profile.writableDirs?.length)
    layout.extra = plan.profile.writableDirs.map((path, i) => ({ host: hostDir(`extra-${i}`), path }));
  const hostname = kind === 'build' ? 'airlock-build' : `airlock-rebuild-${noise}`;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(plan.env ?? {})) env[k] = v;
  const hostEnv = ctx.options.hostEnv ?? process.env;
  for (const name of ctx.spec.env ?? []) {
    const v = hostEnv[name];
    if (v !== undefined) env[name] = v;
  }
  Object.assign(env, {
    PATH: SANDBOX_PATH,
    HOME: layout.home.path,
    USER: 'builder',
    LOGNAME: 'builder',
    TZ: 'UTC',
    LC_ALL: 'C',
    SOURCE_DATE_EPOCH: String(source.commitTime),
    TMPDIR: '/tmp',
    AIRLOCK_SOURCE_DIR: layout.src.path,
    AIRLOCK_OUTPUT_DIR: layout.out.path,
    ...(mirrorUrl ? { AIRLOCK_MIRROR_URL: mirrorUrl } : {}),
    ...(kind === 'rebuild' ? { AIRLOCK_REBUILD_NOISE: randomBytes(8).toString('hex') } : {}),
  });
  const logPath = join(ctx.outDir, kind === 'build' ? BUILD_LOG_NAME : REBUILD_LOG_NAME);
  return {
    kind,
    dir,
    layout,
    source,
    plan,
    hostname,
    env,
    logPath,
    result: {
      exitCode: null,
      signal: null,
      timedOut: false,
      aborted: false,
      durationMs: 0,
      logBytes: 0,
      logTruncated: false,
    },
    violations: [],
    violationCount: 0,
    executed: [],
  };
}

async function executeAttempt(ctx: RunContext, a: Attempt): Promise<void> {
  const tracePath = join(a.dir, 'trace.txt');
  const wrap =
    a.kind === 'rebuild' && ctx.tools.faketime && ctx.builder.supportsFaketime !== false
      ? [ctx.tools.faketime, '-m', '-f', '+397d']
      : undefined;
  a.result = await runSandboxed({
    tools: {
      bwrap: ctx.tools.bwrap,
      node: ctx.tools.node,
      ...(ctx.tools.strace ? { strace: ctx.tools.strace } : {}),
      ...(ctx.tools.setpriv ? { setpriv: ctx.tools.setpriv } : {}),
    },
    layout: a.layout,
    profile: a.plan.profile,
    argv: a.plan.argv,
    cwd: a.plan.cwd,
    env: a.env,
    hostname: a.hostname,
    ...(ctx.mirror ? { mirrorSocket: ctx.mirror.socketPath, bridgePort: ctx.bridgePort } : {}),
    ...(wrap ? { wrap } : {}),
    timeoutMs: ctx.timeoutSeconds * 1000,
    logPath: a.logPath,
    ...(ctx.tools.strace ? { tracePath } : {}),
    ...(ctx.options.signal ? { signal: ctx.options.signal } : {}),
    // Builder hooks: driver files and Node for Bazel/Nix, and the run directory for an unprivileged host user.
    ...(a.plan.files ? { files: a.plan.files } : {}),
    ...(a.plan.needsNode ? { bindNode: true } : {}),
    scratchRoot: ctx.runDir,
    limits: ctx.limits,
  });
  if (ctx.monitor === 'strace') {
    const analyzer = new TraceAnalyzer({
      ...(ctx.mirror ? { bridgePort: ctx.bridgePort } : {}),
      isPlumbing: isPlumbingPath,
    });
    if (existsSync(tracePath)) {
      const rl = createInterface({ input: createReadStream(tracePath, 'utf8'), crlfDelay: Infinity });
      for await (const line of rl) analyzer.line(line);
    }
    const r = analyzer.result();
    a.violations = r.violations;
    a.violationCount = r.violationCount;
    a.executed = r.executed;
  } else if (a.result.exitCode !== 0) {
    // log mode: only a failed build is classified, from the tail of its log
    a.violations = scanLogForViolations(readTail(a.logPath, 1 << 20));
    a.violationCount = a.violations.length;
  }
}

function readTail(path: string, max: number): string {
  try {
    const buf = readFileSync(path);
    return buf.subarray(Math.max(0, buf.length - max)).toString('utf8');
  } catch {
    return '';
  }
}

function failOnViolations(ctx: RunContext, a: Attempt): void {
  if (a.violationCount === 0) return;
  const lines = a.violations.slice(0, 10).map(describeViolation);
  const more =
    a.violations.length > lines.length ? `\n  … and ${a.violations.length - lines.length} more distinct attempts` : '';
  const attempts = a.violationCount > 1 ? ` (${a.violationCount} attempts)` : '';
  const allowed = ctx.mirror
    ? `only the mirror (${a.env.AIRLOCK_MIRROR_URL}) is reachable`
    : 'this build has no mirror, so nothing is reachable';
  throw new RunnerError(
    'RUNNER_HERMETICITY_VIOLATION',
    `hermeticity violation: the ${a.kind === 'rebuild' ? 'rebuild' : 'build'} tried to reach the network${attempts} (${allowed}; detected by ${ctx.monitor}):\n  - ${lines.join('\n  - ')}${more}\nbuild ${exitDescription(a.result, ctx.timeoutSeconds)}; log: ${a.logPath}`,
    {
      details: {
        violations: a.violations,
        violationCount: a.violationCount,
        monitor: ctx.monitor,
        exitCode: a.result.exitCode,
        logPath: a.logPath,
      },
    },
  );
}

function exitDescription(r: SandboxRunResult, timeoutSeconds: number): string {
  if (r.timedOut) return `timed out after ${timeoutSeconds}s and was killed`;
  if (r.aborted) return 'was aborted';
  if (r.signal) return `was killed by ${r.signal}`;
  return `exited with status ${r.exitCode}`;
}

function failOnBuildError(a: Attempt, timeoutSeconds: number): void {
  const r = a.result;
  if (r.limitExceeded) throw limitError(r.limitExceeded, a.kind, a.logPath);
  if (r.exitCode === 0 && !r.timedOut && !r.aborted) return;
  const tail = readTail(a.logPath, 4096).split('\n').slice(-20).join('\n').trimEnd();
  const details = { exitCode: r.exitCode, signal: r.signal, logPath: a.logPath, timedOut: r.timedOut };
  if (r.timedOut) {
    throw new RunnerError(
      'RUNNER_BUILD_TIMEOUT',
      `build timed out after ${timeoutSeconds}s (timeoutSeconds) and was killed; log: ${a.logPath}`,
      { details },
    );
  }
  throw new RunnerError(
    'RUNNER_BUILD_FAILED',
    `build failed: ${a.plan.describe ?? a.plan.argv[0]} ${exitDescription(r, timeoutSeconds)}; log: ${a.logPath}${tail ? `\n--- last lines of the log ---\n${tail}` : ''}`,
    {
      details,
    },
  );
}

/** Programs the build ran: from the trace, or (log mode) argv[0] as the sandbox would resolve it. */
function executedPrograms(ctx: RunContext, a: Attempt): string[] {
  if (ctx.monitor === 'strace') return a.executed;
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

async function logDigest(
  name: string,
  a: Attempt | undefined,
  path = a?.logPath,
): Promise<{ name: string; sha256: string; size: number; truncated: boolean }> {
  const { digests, size } = await digestFile(path!, ['sha256']);
  return { name, sha256: digests.sha256!, size, truncated: a?.result.logTruncated ?? false };
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

async function sign(signer: AttestationSigner, statement: Statement, what: string): Promise<unknown> {
  let bundle: unknown;
  try {
    bundle = await signer.attest(statement);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    throw new RunnerError(
      'RUNNER_SIGNING_FAILED',
      `signing the ${what} failed${typeof code === 'string' ? ` [${code}]` : ''}: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof bundle !== 'object' || bundle === null)
    throw new RunnerError('RUNNER_SIGNING_FAILED', `signing the ${what} returned no bundle`);
  return bundle;
}
