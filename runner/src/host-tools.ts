import { existsSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { digestFile } from '@airlock/core';
import { RunnerError } from './errors.js';
import { execFileBounded, which } from './exec.js';
import type { ToolchainEntry } from './toolchain.js';

/** The host programs the runner itself uses. */
export interface HostTools {
  bwrap: string;
  bwrapVersion: string;
  node: string;
  /** runner/native/netmon, the seccomp network monitor, when it works here. */
  netmon?: string;
  /** Why netmon is not used (the run says so when it falls back to strace or the log). */
  netmonProblem?: string;
  strace?: string;
  setpriv?: string;
  faketime?: string;
}

let straceProbe: Promise<boolean> | undefined;

/** strace is installed *and* ptrace with seccomp-bpf works here (containers may forbid it). */
export function straceUsable(strace: string): Promise<boolean> {
  straceProbe ??= execFileBounded(
    strace,
    ['-f', '--seccomp-bpf', '-qq', '-o', '/dev/null', '-e', 'trace=execve', 'true'],
    { timeoutMs: 30_000 },
  )
    .then((r) => r.code === 0)
    .catch(() => false);
  return straceProbe;
}

/** Where `npm ci` (runner/scripts/build-netmon.mjs) builds the seccomp network monitor. */
export const NETMON_PATH = fileURLToPath(new URL('../native/build/netmon', import.meta.url));

const netmonProbes = new Map<string, Promise<string | undefined>>();

/** Why runner/native/netmon cannot monitor here (not built, seccomp notify refused), or undefined when it can. */
export function netmonProblem(netmon: string = NETMON_PATH): Promise<string | undefined> {
  let probe = netmonProbes.get(netmon);
  if (!probe) {
    probe = existsSync(netmon)
      ? execFileBounded(netmon, ['--events', '/dev/null', '--', 'true'], { timeoutMs: 30_000 })
          .then((r) => (r.code === 0 ? undefined : `netmon cannot monitor here: ${r.stderr.toString().trim()}`))
          .catch((e: Error) => `netmon cannot run: ${e.message}`)
      : Promise.resolve(`${netmon} is not built (npm ci builds it with gcc: node runner/scripts/build-netmon.mjs)`);
    netmonProbes.set(netmon, probe);
  }
  return probe;
}

export type MonitorChoice = 'auto' | 'seccomp' | 'strace' | 'log';

export async function findHostTools(monitor: MonitorChoice, useFaketime: boolean | undefined): Promise<HostTools> {
  const bwrap = which('bwrap');
  if (!bwrap)
    throw new RunnerError(
      'RUNNER_TOOL_MISSING',
      'bwrap (bubblewrap) is not installed: the runner needs it to sandbox builds (apt-get install bubblewrap)',
    );
  const v = await execFileBounded(bwrap, ['--version'], { timeoutMs: 30_000 }).catch(() => undefined);
  const bwrapVersion = /bubblewrap ([0-9.]+)/.exec(v?.stdout.toString() ?? '')?.[1] ?? 'unknown';
  let netmon: string | undefined;
  let whyNotNetmon: string | undefined;
  if (monitor === 'auto' || monitor === 'seccomp') {
    whyNotNetmon = await netmonProblem();
    if (whyNotNetmon === undefined) netmon = NETMON_PATH;
    else if (monitor === 'seccomp') throw new RunnerError('RUNNER_TOOL_MISSING', whyNotNetmon);
  }
  let strace: string | undefined;
  if (!netmon && monitor !== 'log') {
    const found = which('strace');
    const ok = found !== undefined && (await straceUsable(found));
    if (ok) strace = found;
    else if (monitor === 'strace') {
      throw new RunnerError(
        'RUNNER_TOOL_MISSING',
        found ? 'strace cannot trace here (ptrace not permitted?)' : 'strace is not installed (apt-get install strace)',
      );
    }
  }
  const setpriv = which('setpriv');
  const faketime = useFaketime === false ? undefined : which('faketime');
  if (useFaketime === true && !faketime)
    throw new RunnerError('RUNNER_TOOL_MISSING', 'faketime is not installed (apt-get install faketime)');
  return {
    bwrap,
    bwrapVersion,
    node: process.execPath,
    ...(netmon ? { netmon } : {}),
    ...(whyNotNetmon ? { netmonProblem: whyNotNetmon } : {}),
    ...(strace ? { strace } : {}),
    ...(setpriv ? { setpriv } : {}),
    ...(faketime ? { faketime } : {}),
  };
}

const digestCache = new Map<string, Promise<{ sha256: string; size: number }>>();

/** sha256 of a host file, cached per (path, inode, size, mtime): the Node binary alone is ~100 MB. */
async function cachedDigest(resolvedPath: string): Promise<{ sha256: string; size: number }> {
  const st = statSync(resolvedPath);
  const key = `${resolvedPath}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
  let hit = digestCache.get(key);
  if (!hit) {
    hit = digestFile(resolvedPath, ['sha256']).then(({ digests, size }) => ({ sha256: digests.sha256!, size }));
    digestCache.set(key, hit);
    hit.catch(() => digestCache.delete(key));
  }
  return hit;
}

/**
 * The runner's own tools that touched the build, by digest (provenance runDetails.builder.builderDependencies):
 * bwrap, git, netmon or strace and setpriv when used, and Node only when it ran inside the sandbox (the mirror bridge).
 */
export async function builderDependencies(
  tools: HostTools,
  git: string | undefined,
  nodeInSandbox: boolean,
): Promise<ToolchainEntry[]> {
  const paths = [
    tools.bwrap,
    nodeInSandbox ? tools.node : undefined,
    tools.netmon,
    tools.strace,
    tools.setpriv,
    git,
  ].filter((p): p is string => p !== undefined);
  const out: ToolchainEntry[] = [];
  for (const path of [...new Set(paths)]) {
    const resolvedPath = realpathSync(path);
    const { sha256, size } = await cachedDigest(resolvedPath);
    out.push({ path, resolvedPath, sha256, size });
  }
  return out;
}
