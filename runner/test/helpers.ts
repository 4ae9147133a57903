import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/runner/', import.meta.url));

/** Skip with a printed reason, or fail when AIRLOCK_REQUIRE_TOOLS=1. */
export function toolsAvailable(what: string, problems: (string | undefined)[]): boolean {
  const missing = problems.filter((p): p is string => p !== undefined);
  if (missing.length === 0) return true;
  if (process.env.AIRLOCK_REQUIRE_TOOLS === '1')
    throw new Error(`${what}: ${missing.join('; ')} (required: AIRLOCK_REQUIRE_TOOLS=1)`);
  console.warn(`skipping ${what}: ${missing.join('; ')}`);
  return false;
}

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
  const r = spawnSync(
    bwrap,
    [
      '--unshare-user',
      '--unshare-net',
      '--ro-bind',
      '/usr',
      '/usr',
      '--symlink',
      'usr/bin',
      '/bin',
      '--symlink',
      'usr/lib',
      '/lib',
      '--symlink',
      'usr/lib64',
      '/lib64',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '/usr/bin/true',
    ],
    { encoding: 'utf8' },
  );
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

/**
 * A fresh temp dir that other users may traverse (0711): as root, the runner's sandboxes run as an unprivileged host
 * uid that must reach the run directory under the work root.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `airlock-runner-test-${prefix}-`));
  chmodSync(dir, 0o711);
  return dir;
}

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Fixture',
  GIT_AUTHOR_EMAIL: 'fixture@airlock.invalid',
  GIT_COMMITTER_NAME: 'Fixture',
  GIT_COMMITTER_EMAIL: 'fixture@airlock.invalid',
  GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z',
  GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z',
};

export function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-c', 'init.defaultBranch=main', '-c', 'core.autocrlf=false', '-c', 'core.safecrlf=false', ...args],
    { cwd, env: GIT_ENV, encoding: 'utf8' },
  ).trim();
}

export interface FixtureRepo {
  /** The bare repository (what specs point at). */
  repo: string;
  /** The working clone it was pushed from (for adding commits). */
  work: string;
  commit: string;
}

/** A bare git repo holding `fixtures/runner/<name>` as one commit with fixed dates (deterministic commit id). */
export function makeFixtureRepo(name: string, parent: string): FixtureRepo {
  const work = join(parent, `${name}-work`);
  cpSync(join(FIXTURES, name), work, { recursive: true });
  for (const f of walkFiles(work)) if (f.endsWith('.sh')) chmodSync(f, 0o755);
  git(work, 'init', '-q');
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', `fixture ${name}`);
  const repo = join(parent, `${name}.git`);
  git(parent, 'clone', '-q', '--bare', work, repo);
  return { repo, work, commit: git(work, 'rev-parse', 'HEAD') };
}

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...walkFiles(p));
    else out.push(p);
  }
  return out;
}

export function rmrf(p: string): void {
  rmSync(p, { recursive: true, force: true });
}

/** A tiny HTTP server serving `files` (path → body), on a UNIX socket or 127.0.0.1:0. */
export async function startFileServer(
  files: Record<string, string>,
  socketPath?: string,
): Promise<{ url: string; requests: string[]; close(): Promise<void>; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = files[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve) =>
    socketPath ? server.listen(socketPath, resolve) : server.listen(0, '127.0.0.1', resolve),
  );
  const addr = server.address();
  const url = typeof addr === 'object' && addr !== null ? `http://127.0.0.1:${addr.port}` : `unix:${socketPath}`;
  return {
    url,
    requests,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Pids of live processes whose command line contains `marker` (to prove a killed build left nothing behind). */
export function processesWith(marker: string, exclude: readonly number[] = []): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid || exclude.includes(Number(p))) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}
