/**
 * System-tool probes. Tests that need a tool skip with the reason printed, unless AIRLOCK_REQUIRE_TOOLS=1 (CI),
 * where a missing tool is a failure.
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';

/** Skip with a printed reason, or fail when AIRLOCK_REQUIRE_TOOLS=1. */
export function toolsAvailable(what: string, problems: (string | undefined)[]): boolean {
  const missing = problems.filter((p): p is string => p !== undefined);
  if (missing.length === 0) return true;
  if (process.env.AIRLOCK_REQUIRE_TOOLS === '1')
    throw new Error(`${what}: ${missing.join('; ')} (required: AIRLOCK_REQUIRE_TOOLS=1)`);
  console.warn(`skipping ${what}: ${missing.join('; ')}`);
  return false;
}

/** Why `cmd` cannot be used (it must exit 0 with `args`), or undefined. */
export function toolProblem(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0 ? undefined : `${cmd} is not available (${r.error ? r.error.message : `exit ${r.status}`})`;
}

/** The absolute path of `cmd` on PATH (or in /usr/sbin, /sbin), or undefined. */
export function which(cmd: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    try {
      if (statSync(join(d, cmd)).isFile()) return join(d, cmd);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why a real bwrap sandbox (user + network namespaces) cannot run here, or undefined. */
export function bwrapProblem(): string | undefined {
  const bwrap = which('bwrap');
  if (!bwrap) return 'bwrap (bubblewrap) is not installed';
  const args = ['--unshare-user', '--unshare-net', '--ro-bind', '/usr', '/usr'];
  args.push('--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64');
  args.push('--proc', '/proc', '--dev', '/dev', '/usr/bin/true');
  const r = spawnSync(bwrap, args, { encoding: 'utf8' });
  if (r.status !== 0) return `bwrap cannot create namespaces here: ${(r.stderr || String(r.error)).trim()}`;
  return undefined;
}

/** Why strace-based monitoring cannot run here, or undefined. */
export function straceProblem(): string | undefined {
  const strace = which('strace');
  if (!strace) return 'strace is not installed';
  const r = spawnSync(strace, ['-f', '--seccomp-bpf', '-qq', '-o', '/dev/null', '-e', 'trace=execve', 'true'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return `strace cannot trace here: ${(r.stderr || String(r.error)).trim()}`;
  return undefined;
}

export function gitProblem(): string | undefined {
  return which('git') ? undefined : 'git is not installed';
}
