import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Builder, BuildPlan } from './build-plan.js';
import { RunnerError } from './errors.js';
import { checkoutSource, type SourceCheckout, type SourceResolver } from './git-source.js';
import type { HostTools } from './host-tools.js';
import type { MirrorEndpoint } from './mirror-endpoint.js';
import {
  describeViolation,
  NetmonAnalyzer,
  scanLogForViolations,
  TraceAnalyzer,
  type RefusedSyscalls,
  type NetworkMonitorMode,
  type NetworkViolation,
} from './network-monitor.js';
import { isPlumbingPath, runSandboxed, type SandboxLayout, type SandboxRunResult } from './sandbox.js';
import type { BuildSpec } from './spec.js';
import { limitError, type ConfinementConfig } from './limits/index.js';

/**
 * One build attempt (the build, or the rebuild of the rebuild check): a fresh checkout and directories, one
 * sandbox run, and what the monitor saw. The phases of `runBuild` (run.ts) share this.
 */

/** PATH inside the sandbox: host /usr (read-only) and the merged-/usr links. */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const BUILD_LOG_NAME = 'airlock-build.log';
export const REBUILD_LOG_NAME = 'airlock-rebuild.log';

/** What every phase of one run needs; fixed once the spec, the host tools and the mirror are known. */
export interface RunContext {
  spec: BuildSpec;
  /** Relative `source.repo` paths resolve against this. */
  baseDir: string;
  builder: Builder;
  tools: HostTools;
  monitor: NetworkMonitorMode;
  runDir: string;
  outDir: string;
  mirror: MirrorEndpoint | undefined;
  bridgePort: number;
  timeoutSeconds: number;
  /** The variables the spec's `env` may select (already filtered by the operator's policy). */
  specEnv: Readonly<Record<string, string>>;
  limits: ConfinementConfig;
  sourceResolver?: SourceResolver;
  signal?: AbortSignal;
}

export interface Attempt {
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
  /** Syscalls the seccomp monitor refused (io_uring_setup), by name: named when the build then fails. */
  refusedSyscalls: RefusedSyscalls;
}

/** Fresh directories and a fresh checkout for one build; the rebuild varies paths, hostname, HOME and env. */
export async function prepareAttempt(ctx: RunContext, kind: 'build' | 'rebuild'): Promise<Attempt> {
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
    baseDir: ctx.baseDir,
    scratchHome: join(ctx.runDir, 'git-home'),
    ...(ctx.sourceResolver ? { resolver: ctx.sourceResolver } : {}),
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
  const env: Record<string, string> = { ...(plan.env ?? {}), ...ctx.specEnv };
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
    refusedSyscalls: {},
  };
}

/** Runs the attempt in the sandbox, then classifies its network attempts (strace trace, or the log's tail). */
export async function executeAttempt(ctx: RunContext, a: Attempt): Promise<void> {
  const tracePath = join(a.dir, 'trace.txt');
  const wrap =
    a.kind === 'rebuild' && ctx.tools.faketime && ctx.builder.supportsFaketime !== false
      ? [ctx.tools.faketime, '-m', '-f', '+397d']
      : undefined;
  const refusedBefore = ctx.mirror?.refused().length ?? 0;
  a.result = await runSandboxed({
    tools: {
      bwrap: ctx.tools.bwrap,
      node: ctx.tools.node,
      ...(ctx.monitor === 'seccomp' ? { netmon: ctx.tools.netmon! } : {}),
      ...(ctx.monitor === 'strace' ? { strace: ctx.tools.strace! } : {}),
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
    ...(ctx.monitor !== 'log' ? { tracePath } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    // Builder hooks: driver files and Node for Bazel/Nix, and the run directory for an unprivileged host user.
    ...(a.plan.files ? { files: a.plan.files } : {}),
    ...(a.plan.needsNode ? { bindNode: true } : {}),
    scratchRoot: ctx.runDir,
    limits: ctx.limits,
  });
  if (ctx.monitor !== 'log') {
    const options = { ...(ctx.mirror ? { bridgePort: ctx.bridgePort } : {}), isPlumbing: isPlumbingPath };
    const analyzer = ctx.monitor === 'seccomp' ? new NetmonAnalyzer(options) : new TraceAnalyzer(options);
    if (existsSync(tracePath)) {
      const rl = createInterface({ input: createReadStream(tracePath, 'utf8'), crlfDelay: Infinity });
      for await (const line of rl) analyzer.line(line);
    }
    const r = analyzer.result();
    a.violations = r.violations;
    a.violationCount = r.violationCount;
    a.executed = r.executed;
    if (analyzer instanceof NetmonAnalyzer) a.refusedSyscalls = analyzer.refusedSyscalls();
  } else if (a.result.exitCode !== 0) {
    // log mode: only a failed build is classified, from the tail of its log
    a.violations = scanLogForViolations(readTail(a.logPath, 1 << 20));
    a.violationCount = a.violations.length;
  }
  // Requests the bridge refused (a body, another method) are hermeticity events whatever the monitor saw.
  const refused = (ctx.mirror?.refused() ?? []).slice(refusedBefore).map((r): NetworkViolation => ({
    kind: 'mirror-request',
    syscall: 'bridge',
    request: `${r.method} ${r.path}`,
    result: r.reason,
  }));
  a.violations = [...refused, ...a.violations];
  a.violationCount += refused.length;
}

export function readTail(path: string, max: number): string {
  try {
    const buf = readFileSync(path);
    return buf.subarray(Math.max(0, buf.length - max)).toString('utf8');
  } catch {
    return '';
  }
}

export function failOnViolations(ctx: RunContext, a: Attempt): void {
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

export function exitDescription(r: SandboxRunResult, timeoutSeconds: number): string {
  if (r.timedOut) return `timed out after ${timeoutSeconds}s and was killed`;
  if (r.aborted) return 'was aborted';
  if (r.signal) return `was killed by ${r.signal}`;
  return `exited with status ${r.exitCode}`;
}

export function failOnBuildError(a: Attempt, timeoutSeconds: number): void {
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
    `build failed: ${a.plan.describe ?? a.plan.argv[0]} ${exitDescription(r, timeoutSeconds)}${refusedNote(a.refusedSyscalls)}; log: ${a.logPath}${tail ? `\n--- last lines of the log ---\n${tail}` : ''}`,
    {
      details: Object.keys(a.refusedSyscalls).length > 0 ? { ...details, refusedSyscalls: a.refusedSyscalls } : details,
    },
  );
}

/** A failed build that was refused io_uring may have failed for that: say so. */
function refusedNote(refused: RefusedSyscalls): string {
  const names = Object.entries(refused).map(([name, n]) => `${name} (${n}×)`);
  if (names.length === 0) return '';
  return ` (the sandbox refused ${names.join(', ')} with EPERM: io_uring would bypass the network monitor; use the tool's non-io_uring mode)`;
}
