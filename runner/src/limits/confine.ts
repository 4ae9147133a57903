/**
 * The resource limits around one sandbox run: a child cgroup of the runner's own cgroup (v2, or the v1 memory/pids/
 * cpu hierarchies) when one can be made, else rlimits (prlimit); the disk watcher in both cases.
 */
import { which } from '../exec.js';
import { BuildCgroup, detectLayout, readCgroupHost, removeStaleCgroups } from './cgroup.js';
import { cgroupEnterArgv, ownCgroups } from './cgroup-paths.js';
import { DiskWatcher } from './disk.js';
import { rlimitArgv } from './rlimit.js';
import {
  DEFAULT_CGROUP_ROOT,
  formatBytes,
  resolveLimits,
  type ResourceLimitOptions,
  type ResourceLimits,
} from './limits.js';

export type LimitName = 'memory' | 'pids' | 'disk';

/** A limit the build hit. */
export interface LimitExceeded {
  limit: LimitName;
  /** Every limit hit, named, for the error message. */
  message: string;
  limits: LimitName[];
}

export type ConfinementMode = 'cgroup-v2' | 'cgroup-v1' | 'rlimit' | 'none';

export interface ConfinementConfig {
  limits: ResourceLimits;
  cgroupRoot: string | false;
  /** Printed once per run (the caller dedupes): no cgroup, an unenforced limit. */
  warn: (message: string) => void;
}

/** Validated limits and a per-run, deduplicating warning channel (call once per runBuild). */
export function confinementConfig(
  options: ResourceLimitOptions | undefined,
  warn: (message: string) => void,
): ConfinementConfig {
  const said = new Set<string>();
  return {
    limits: resolveLimits(options),
    cgroupRoot: options?.cgroupRoot ?? DEFAULT_CGROUP_ROOT,
    warn: (m) => {
      if (said.has(m)) return;
      said.add(m);
      warn(m);
    },
  };
}

/** What the confinement needs from a cgroup backend (v1 and v2 differ only in their plan). */
interface CgroupBackend {
  readonly procsFiles: string[];
  hits(): { memory: number; pids: number };
  remove(): Promise<void>;
}

export interface Confinement {
  readonly mode: ConfinementMode;
  /** The argv that runs `argv` under the limits (outermost: every process of the run is inside). */
  wrap(argv: string[]): string[];
  /** The sandbox runs; `kill` ends it (the disk watcher's lever). */
  started(kill: () => void): void;
  /** The sandbox ended: which limit was hit, if any. Removes the cgroup (killing leftovers). Idempotent. */
  finish(): Promise<LimitExceeded | undefined>;
}

export async function openConfinement(
  config: ConfinementConfig,
  watchDirs: readonly string[],
  shell: string,
): Promise<Confinement> {
  const { cgroup, mode } = await makeCgroup(config);
  let prlimit: string | undefined;
  if (!cgroup) {
    prlimit = which('prlimit');
    if (!prlimit)
      config.warn('resource limits: prlimit (util-linux) is not installed either: memory and pids are not limited');
  }
  return new RunConfinement(config, cgroup, prlimit ? 'rlimit' : mode, watchDirs, shell, prlimit);
}

async function makeCgroup(config: ConfinementConfig): Promise<{ cgroup?: CgroupBackend; mode: ConfinementMode }> {
  const root = config.cgroupRoot;
  const fallback = (why: string) => {
    config.warn(
      `resource limits: no writable cgroup (${why}); limiting memory and processes with rlimits instead (RLIMIT_DATA per process, RLIMIT_NPROC per uid), no CPU limit`,
    );
    return { mode: 'none' as const };
  };
  if (root === false) return fallback('cgroups disabled by configuration');
  let host;
  try {
    host = readCgroupHost(root);
  } catch (err) {
    return fallback(`cannot read /proc/self: ${(err as Error).message}`);
  }
  // Cgroups of runners that died (crash, SIGKILL): a readdir of our own cgroups, cheap enough for every sandbox.
  await removeStaleCgroups(ownCgroups(host.mountinfo, host.procCgroup, root)).catch(() => 0);
  const layout = detectLayout(host);
  if (typeof layout === 'string') return fallback(`${layout} under ${root}`);
  try {
    const cgroup = BuildCgroup.create(layout, config.limits);
    for (const u of cgroup.plan.unenforced) config.warn(`resource limits: not enforced on this host: ${u}`);
    return { cgroup, mode: layout.version === 'v2' ? 'cgroup-v2' : 'cgroup-v1' };
  } catch (err) {
    return fallback(`cgroup ${layout.version}: ${(err as Error).message}`);
  }
}

class RunConfinement implements Confinement {
  private watcher: DiskWatcher | undefined;
  private done: Promise<LimitExceeded | undefined> | undefined;

  constructor(
    private readonly config: ConfinementConfig,
    private readonly cgroup: CgroupBackend | undefined,
    readonly mode: ConfinementMode,
    private readonly watchDirs: readonly string[],
    private readonly shell: string,
    private readonly prlimit: string | undefined,
  ) {}

  wrap(argv: string[]): string[] {
    const { limits } = this.config;
    if (this.cgroup) return cgroupEnterArgv(this.shell, this.cgroup.procsFiles, argv);
    if (this.prlimit) return rlimitArgv(this.prlimit, limits, argv);
    return argv;
  }

  started(kill: () => void): void {
    this.watcher = new DiskWatcher(this.watchDirs, this.config.limits.diskBytes, kill);
    this.watcher.start();
  }

  finish(): Promise<LimitExceeded | undefined> {
    this.done ??= this.verdict();
    return this.done;
  }

  private async verdict(): Promise<LimitExceeded | undefined> {
    const { limits } = this.config;
    const disk = this.watcher ? await this.watcher.stop() : undefined;
    const hits = this.cgroup?.hits() ?? { memory: 0, pids: 0 };
    await this.cgroup?.remove();
    const found: [LimitName, string][] = [];
    if (hits.memory > 0)
      found.push([
        'memory',
        `memory: the build needed more than ${formatBytes(limits.memoryBytes)} (memory limit, --memory-limit) and the kernel killed ${hits.memory === 1 ? 'a process' : `${hits.memory} processes`} of it`,
      ]);
    if (hits.pids > 0)
      found.push([
        'pids',
        `pids: the build tried to run more than ${limits.pids} processes and threads at once (pids limit, --pids-limit); ${hits.pids} fork${hits.pids === 1 ? ' was' : 's were'} refused`,
      ]);
    if (disk?.exceeded)
      found.push([
        'disk',
        disk.unreadable
          ? `disk: the build made ${disk.unreadable} unreadable, so its disk usage cannot be bounded (disk limit, --disk-limit)`
          : `disk: the build's writable directories held more than ${formatBytes(limits.diskBytes)} (disk limit, --disk-limit)`,
      ]);
    if (found.length === 0) return undefined;
    return { limit: found[0]![0], limits: found.map((f) => f[0]), message: found.map((f) => f[1]).join('; ') };
  }
}
