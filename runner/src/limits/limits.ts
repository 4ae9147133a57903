import { availableParallelism } from 'node:os';
import { RunnerError } from '../errors.js';

/**
 * Resource limits of one build, set by the operator (runner options / `airlock run` flags). The build spec is
 * attacker input and has no say: there are deliberately no spec fields for them.
 */
export interface ResourceLimits {
  /** Memory of the whole sandbox (every process, page cache included), in bytes. */
  memoryBytes: number;
  /** Processes and threads alive at once in the sandbox. */
  pids: number;
  /** CPU bandwidth in cores (1.5 = one and a half cores); undefined: all cores, no quota. */
  cpuCores?: number;
  /** Bytes the build may hold in its writable directories (source, output, home, tmp, extra). */
  diskBytes: number;
}

/** What the operator may set; unset fields take the defaults. */
export interface ResourceLimitOptions {
  memoryBytes?: number;
  pids?: number;
  cpuCores?: number;
  diskBytes?: number;
  /**
   * Where the cgroup filesystems are mounted (default /sys/fs/cgroup): only hierarchies mounted at or below it
   * are used. A directory without cgroups (or `false`) means rlimits only.
   */
  cgroupRoot?: string | false;
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export const DEFAULT_LIMITS: Readonly<ResourceLimits> = {
  memoryBytes: 8 * GiB,
  pids: 4096,
  diskBytes: 20 * GiB,
};

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: MiB, G: GiB, T: 1024 * GiB };

/** "8G", "512M", "64MiB", "1.5G", "1048576" → bytes (binary units: K = 1024). */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new RunnerError('RUNNER_SPEC_INVALID', `${what}: '${text}' is not a size (e.g. 512M, 8G, 20G)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  checkPositiveInt(bytes, what);
  return bytes;
}

/** A positive integer (the pids limit). */
export function parseCount(text: string, what: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new RunnerError('RUNNER_SPEC_INVALID', `${what}: '${text}' is not a number`);
  const n = Number(text);
  checkPositiveInt(n, what);
  return n;
}

/** CPU cores as a positive decimal ("2", "0.5"). */
export function parseCores(text: string, what: string): number {
  if (!/^\s*\d+(?:\.\d+)?\s*$/.test(text))
    throw new RunnerError('RUNNER_SPEC_INVALID', `${what}: '${text}' is not a number of cores (e.g. 2 or 0.5)`);
  return checkCores(Number(text), what);
}

function checkPositiveInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new RunnerError('RUNNER_SPEC_INVALID', `${what} must be a positive whole number, got ${n}`);
}

function checkCores(n: number, what: string): number {
  // Below 0.01 core the CFS quota (1 ms per 100 ms period) would be under the kernel's minimum.
  if (!Number.isFinite(n) || n < 0.01)
    throw new RunnerError('RUNNER_SPEC_INVALID', `${what} must be at least 0.01 cores, got ${n}`);
  return n;
}

/** The limits to apply: defaults for what is unset, every value checked. */
export function resolveLimits(options: ResourceLimitOptions | undefined): ResourceLimits {
  const o = options ?? {};
  const memoryBytes = o.memoryBytes ?? DEFAULT_LIMITS.memoryBytes;
  const pids = o.pids ?? DEFAULT_LIMITS.pids;
  const diskBytes = o.diskBytes ?? DEFAULT_LIMITS.diskBytes;
  checkPositiveInt(memoryBytes, 'limits.memoryBytes');
  checkPositiveInt(pids, 'limits.pids');
  checkPositiveInt(diskBytes, 'limits.diskBytes');
  // "All cores" is no quota at all: a quota equal to the machine would only add throttling overhead.
  const cpu = o.cpuCores === undefined ? undefined : checkCores(o.cpuCores, 'limits.cpuCores');
  const cpuCores = cpu !== undefined && cpu < availableParallelism() ? cpu : undefined;
  return { memoryBytes, pids, diskBytes, ...(cpuCores !== undefined ? { cpuCores } : {}) };
}

/** 67108864 → "64 MiB" (for messages). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['TiB', 1024 * GiB],
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', 1024],
  ] as const) {
    if (n >= size) return `${Number((n / size).toFixed(2))} ${unit}`;
  }
  return `${n} bytes`;
}
