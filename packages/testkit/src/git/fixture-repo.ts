/** Deterministic git repositories for tests: fixed identities and dates, no host or user git config. */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

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

/**
 * A bare git repo `<parent>/<name>.git` holding the directory `source` as one commit with fixed dates
 * (deterministic commit id); `*.sh` files become executable.
 */
export function makeGitFixtureRepo(source: string, parent: string): FixtureRepo {
  const name = basename(source);
  const work = join(parent, `${name}-work`);
  cpSync(source, work, { recursive: true });
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
