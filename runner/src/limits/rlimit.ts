import type { ResourceLimits } from './limits.js';

/**
 * The fallback when no cgroup is writable: util-linux prlimit(1) sets the limits on itself and execs `argv`, so
 * everything below inherits them. RLIMIT_DATA (not AS): counts the heap and private writable mappings, but not
 * the large PROT_NONE reservations of V8 and the JVM, which RLIMIT_AS would refuse at start-up. RLIMIT_NPROC is
 * per uid: with a root runner each sandbox has its own unprivileged uid, so it bounds exactly this build's
 * processes (with a non-root runner it also counts the runner user's other processes). Both are per process
 * or per uid rather than per build, and there is no CPU-bandwidth rlimit: weaker than a cgroup, hence the warning.
 */
export function rlimitArgv(prlimit: string, limits: ResourceLimits, argv: readonly string[]): string[] {
  return [prlimit, `--data=${limits.memoryBytes}`, `--nproc=${limits.pids}`, '--', ...argv];
}
