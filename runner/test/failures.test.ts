/**
 * End-to-end failure paths of `runBuild` with a real bubblewrap sandbox: exit statuses, timeouts, aborts, the
 * runner dying mid-build, and bad outputs. Every test proves no build process outlives the run.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import { runBuild, type RunOptions } from '../src/run.js';
import type { BuildSpec } from '../src/spec.js';
import {
  bwrapProblem,
  gitProblem,
  makeFixtureRepo,
  processesWith,
  rmrf,
  straceProblem,
  tempDir,
  toolsAvailable,
  type FixtureRepo,
} from './helpers.js';

const enabled = toolsAvailable('sandboxed runner failure tests', [bwrapProblem(), straceProblem(), gitProblem()]);
const dir = tempDir('failures');
afterAll(() => rmrf(dir));

let n = 0;
const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
  outDir: join(dir, `out-${++n}`),
  workRoot: join(dir, 'work'),
  builderId: 'https://airlock.dev/runners/test/v1',
  ...extra,
});

async function failure(p: Promise<unknown>): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; details?: Record<string, unknown> };
  }
  throw new Error('expected the build to fail');
}

/**
 * argv for two sleeping processes (one in the background) named `marker`. The marker is assembled inside bash
 * from two arguments, so only the sleepers carry it: the runner's own processes (strace, bwrap) only have the
 * halves in their command lines.
 */
function sleepers(marker: string): string[] {
  const cut = marker.lastIndexOf('-');
  return [
    'bash',
    '-c',
    'm="$0-$1"; (exec -a "$m" sleep 60) & exec -a "$m" sleep 61',
    marker.slice(0, cut),
    marker.slice(cut + 1),
  ];
}

describe.runIf(enabled)('runBuild: build failures', () => {
  let fx: FixtureRepo;
  beforeAll(() => {
    fx = makeFixtureRepo('good', dir);
  });
  const base = (): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv: ['sh', 'build.sh'] },
    outputs: ['hello.txt'],
  });

  it('fails with the exit status and the tail of the log', async () => {
    const e = await failure(
      runBuild(
        {
          ...base(),
          builder: { type: 'command', argv: ['sh', '-c', 'echo compiling; echo "error: it broke" >&2; exit 3'] },
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_BUILD_FAILED');
    expect(e.message).toMatch(/build failed: sh exited with status 3; log: .*airlock-build\.log/);
    expect(e.message).toContain('error: it broke');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.BUILD_FAILED);
    expect(readFileSync(e.details!.logPath as string, 'utf8')).toContain('compiling');
  });

  it('reports a missing program as exit 127', async () => {
    const e = await failure(
      runBuild({ ...base(), builder: { type: 'command', argv: ['no-such-tool', '--version'] } }, opts()),
    );
    expect(e.code).toBe('RUNNER_BUILD_FAILED');
    expect(e.message).toMatch(/exited with status 127/);
    expect(e.message).toMatch(/no-such-tool: not found/);
  });

  it('kills the whole sandbox on timeout and leaves no process behind', async () => {
    const marker = `airlock-timeout-${process.pid}-${Date.now()}`;
    const e = await failure(
      runBuild({ ...base(), timeoutSeconds: 1, builder: { type: 'command', argv: sleepers(marker) } }, opts()),
    );
    expect(e.code).toBe('RUNNER_BUILD_TIMEOUT');
    expect(e.message).toMatch(/timed out after 1s/);
    expect(exitCodeFor(e)).toBe(EXIT_CODES.BUILD_FAILED);
    expect(processesWith(marker)).toEqual([]);
    expect(readdirSync(join(dir, 'work')).filter((d) => d.startsWith('airlock-run-'))).toEqual([]);
  });

  it('stops the sandbox when the caller aborts, background processes included', async () => {
    const marker = `airlock-abort-${process.pid}-${Date.now()}`;
    const ac = new AbortController();
    const run = failure(
      runBuild({ ...base(), builder: { type: 'command', argv: sleepers(marker) } }, opts({ signal: ac.signal })),
    );
    // positive control: both sleeps are seen running before the abort
    for (let i = 0; i < 400 && processesWith(marker).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(processesWith(marker)).toHaveLength(2);
    ac.abort();
    const e = await run;
    expect(e.code).toBe('RUNNER_BUILD_FAILED');
    expect(e.message).toMatch(/bash was aborted/);
    expect(processesWith(marker)).toEqual([]);
  });

  it('takes the sandbox down when the runner process itself is SIGKILLed (setpriv --pdeathsig)', async () => {
    const marker = `airlock-orphan-${process.pid}-${Date.now()}`;
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const spec = { ...base(), builder: { type: 'command', argv: sleepers(marker) } };
    const code = `const { runBuild } = await import(${JSON.stringify(dist)}); await runBuild(${JSON.stringify(spec)}, ${JSON.stringify(opts({ workRoot: join(dir, 'work-orphan') }))}).catch(() => {});`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: 'ignore' });
    const others = [child.pid!]; // its -e source contains the marker too
    try {
      for (let i = 0; i < 400 && processesWith(marker, others).length < 2; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(processesWith(marker, others)).toHaveLength(2);
      child.kill('SIGKILL');
      for (let i = 0; i < 100 && processesWith(marker, others).length > 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(processesWith(marker, others)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('fails when a declared output is missing, naming it', async () => {
    const e = await failure(runBuild({ ...base(), outputs: ['hello.txt', 'dist/*.bin'] }, opts()));
    expect(e.code).toBe('RUNNER_OUTPUT_MISSING');
    expect(e.message).toContain("'dist/*.bin'");
  });

  it('refuses an output that is a symlink to a host file', async () => {
    const e = await failure(
      runBuild(
        {
          ...base(),
          builder: { type: 'command', argv: ['sh', '-c', 'ln -s /etc/passwd "$AIRLOCK_OUTPUT_DIR/passwd"'] },
          outputs: ['passwd'],
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_OUTPUT_INVALID');
    expect(e.message).toContain("'passwd' (symlink)");
  });

  it('refuses an output named like a runner file', async () => {
    const e = await failure(
      runBuild(
        {
          ...base(),
          builder: { type: 'command', argv: ['sh', '-c', 'echo x > "$AIRLOCK_OUTPUT_DIR/airlock-build.log"'] },
          outputs: ['airlock-build.log'],
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_OUTPUT_INVALID');
  });
});
