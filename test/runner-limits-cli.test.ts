/**
 * `airlock run` resource-limit flags through the built CLI: a build over `--memory-limit` exits 16 with a JSON
 * error naming the memory limit; an unparseable limit is a usage error (exit 2, JSON) before anything runs.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliJson } from './helpers/upstream-e2e.js';
import { toolsAvailable, which } from './helpers/netns.js';

const enabled = toolsAvailable('airlock run resource limits (bwrap sandbox, git, python3)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('git') ? undefined : 'git is not installed',
  existsSync('/usr/bin/python3') ? undefined : '/usr/bin/python3 is not installed',
]);

let root: string;
let specPath: string;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@airlock.invalid',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@airlock.invalid',
    },
  }).trim();
}

describe.skipIf(!enabled)('airlock run --memory-limit / --pids-limit / --cpu-limit / --disk-limit', () => {
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'airlock-limits-cli-'));
    chmodSync(root, 0o711); // the sandbox runs as an unprivileged host uid that must reach the run directory
    const work = join(root, 'src');
    mkdirSync(work);
    writeFileSync(join(work, 'README'), 'limits\n');
    git(work, 'init', '-q');
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', 'one');
    const commit = git(work, 'rev-parse', 'HEAD');
    specPath = join(root, 'build.json');
    writeFileSync(
      specPath,
      JSON.stringify({
        source: { repo: work, commit },
        builder: { type: 'command', argv: ['/usr/bin/python3', '-c', 'x = bytearray(512 << 20)'] },
        outputs: ['out.txt'],
      }),
    );
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const run = (extra: string[]) =>
    runCliJson([
      'run',
      '--spec',
      specPath,
      '--out',
      join(root, `out-${Math.random()}`),
      '--no-sign',
      '--json',
      ...extra,
    ]);

  it('a build over --memory-limit exits 16 naming the memory limit', async () => {
    const r = await run(['--work-root', root, '--memory-limit', '64M', '--pids-limit', '200', '--cpu-limit', '0.5']);
    expect(r.code).toBe(16);
    expect(r.errorCode).toBe('RUNNER_RESOURCE_LIMIT');
    expect((r.json.error as { message: string }).message).toMatch(/memory limit.*more than 64 MiB/);
  });

  it('an invalid limit is a usage error (exit 2, JSON) naming the flag', async () => {
    for (const [flag, value] of [
      ['--memory-limit', '8X'],
      ['--pids-limit', '0'],
      ['--cpu-limit', 'all'],
      ['--disk-limit', '-1G'],
    ] as const) {
      const r = await run([flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect((r.json.error as { message: string }).message).toContain(flag);
    }
  });
});
