/**
 * Resource limits of builds, for real: each sandbox runs in its own child cgroup of the runner's cgroup (this
 * machine: the cgroup v1 memory/pids/cpu hierarchies), and its writable directories are watched for disk usage.
 * A build over a limit fails with RUNNER_RESOURCE_LIMIT (exit 16) naming the limit; the cgroup is gone after
 * every build (success, failure, timeout) and a dead runner's cgroup is removed by the next build. Without a
 * writable cgroup the build runs under rlimits, with one warning.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import { runBuild, type ProgressEvent, type RunOptions } from '../src/run.js';
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

const MiB = 1024 * 1024;

/** The runner's own v1 memory and pids cgroup directories, or why there are none writable. */
function ownV1(): { memory: string; pids: string; cpu: string } | string {
  const self = readFileSync('/proc/self/cgroup', 'utf8');
  const path = (c: string) => new RegExp(`^\\d+:[^:]*\\b${c}\\b[^:]*:(/.*)$`, 'm').exec(self)?.[1];
  const [m, p, c] = [path('memory'), path('pids'), path('cpu')];
  if (m === undefined || p === undefined || c === undefined) return 'no cgroup v1 memory, pids and cpu hierarchies';
  const dirs = {
    memory: join('/sys/fs/cgroup/memory', m),
    pids: join('/sys/fs/cgroup/pids', p),
    cpu: join('/sys/fs/cgroup/cpu', c),
  };
  for (const d of Object.values(dirs)) {
    const probe = join(d, `airlock-probe-${process.pid}`);
    try {
      mkdirSync(probe);
      spawnSync('rmdir', [probe]);
    } catch (e) {
      return `cannot create a cgroup in ${d}: ${(e as Error).message}`;
    }
  }
  return dirs;
}

const own = ownV1();
const enabled = toolsAvailable('resource limit tests', [
  bwrapProblem(),
  straceProblem(),
  gitProblem(),
  typeof own === 'string' ? own : undefined,
  existsSync('/usr/bin/python3') ? undefined : '/usr/bin/python3 is not installed',
]);
const dirs = typeof own === 'string' ? { memory: '', pids: '', cpu: '' } : own;
const dir = tempDir('limits');
afterAll(() => rmrf(dir));

let n = 0;
const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
  outDir: join(dir, `out-${++n}`),
  workRoot: join(dir, 'work'),
  builderId: 'https://airlock.dev/runners/test/v1',
  ...extra,
});

type Failure = Error & { code: string; details?: Record<string, unknown> };
async function failure(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (err) {
    return err as Failure;
  }
  throw new Error('expected the build to fail');
}

/** Child cgroups named after runner `pid` in the memory and pids hierarchies. */
function cgroupsOf(pid: number): string[] {
  return [dirs.memory, dirs.pids, dirs.cpu].flatMap((d) =>
    readdirSync(d)
      .filter((x) => new RegExp(`^airlock-\\d+-${pid}-`).test(x))
      .map((x) => join(d, x)),
  );
}

/** Pids of live processes in a child cgroup of runner `pid` (leftovers of a build). */
function processesInCgroupsOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return new RegExp(`/airlock-\\d+-${pid}-`).test(readFileSync(`/proc/${p}/cgroup`, 'utf8'));
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function until<T>(probe: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.runIf(enabled)('runBuild: resource limits (cgroup v1 on this host)', () => {
  let fx: FixtureRepo;
  beforeAll(() => {
    fx = makeFixtureRepo('good', dir);
  });
  const spec = (argv: string[], extra: Partial<BuildSpec> = {}): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv },
    outputs: ['hello.txt'],
    ...extra,
  });
  const build = ['sh', 'build.sh'];

  it('a build allocating far more than the memory limit fails naming memory (exit 16)', async () => {
    const e = await failure(
      runBuild(
        spec(['/usr/bin/python3', '-c', 'x = bytearray(512 << 20); print("allocated", len(x))']),
        opts({ limits: { memoryBytes: 64 * MiB } }),
      ),
    );
    expect(e.code).toBe('RUNNER_RESOURCE_LIMIT');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.RESOURCE_LIMIT);
    expect(EXIT_CODES.RESOURCE_LIMIT).toBe(16);
    expect(e.details?.limit).toBe('memory');
    expect(e.message).toMatch(/hit its memory limit/);
    expect(e.message).toMatch(/more than 64 MiB \(memory limit, --memory-limit\)/);
    expect(readFileSync(e.details!.logPath as string, 'utf8')).not.toContain('allocated');
    expect(cgroupsOf(process.pid)).toEqual([]);
  });

  it('a build spawning 200 processes under a pids limit of 50 fails naming pids, nothing left behind', async () => {
    const marker = `airlock-pids-${process.pid}-${Date.now()}`;
    const e = await failure(
      runBuild(
        spec(['sh', '-c', 'i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done; wait', marker]),
        opts({ limits: { pids: 50 } }),
      ),
    );
    expect(e.code).toBe('RUNNER_RESOURCE_LIMIT');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.RESOURCE_LIMIT);
    expect(e.details?.limit).toBe('pids');
    expect(e.message).toMatch(/more than 50 processes and threads at once \(pids limit, --pids-limit\)/);
    expect(processesWith(marker)).toEqual([]);
    expect(processesInCgroupsOf(process.pid)).toEqual([]);
    expect(cgroupsOf(process.pid)).toEqual([]);
  });

  it('a build that keeps writing past the disk limit is killed by the watcher, naming disk', async () => {
    const e = await failure(
      runBuild(
        spec(['sh', '-c', 'head -c 64M /dev/zero > big; echo written; sleep 60'], { timeoutSeconds: 50 }),
        opts({ limits: { diskBytes: 16 * MiB } }),
      ),
    );
    expect(e.code).toBe('RUNNER_RESOURCE_LIMIT');
    expect(e.details?.limit).toBe('disk');
    expect(e.message).toMatch(/writable directories held more than 16 MiB \(disk limit, --disk-limit\)/);
    expect(exitCodeFor(e)).toBe(EXIT_CODES.RESOURCE_LIMIT);
  });

  it('a short build that wrote past the disk limit and exited 0 still fails naming disk', async () => {
    const e = await failure(
      runBuild(
        spec(['sh', '-c', 'sh build.sh && head -c 40M /dev/zero > "$HOME/cache.bin"']),
        opts({ limits: { diskBytes: 16 * MiB } }),
      ),
    );
    expect(e.code).toBe('RUNNER_RESOURCE_LIMIT');
    expect(e.details?.limit).toBe('disk');
  });

  it('a normal build passes inside a cgroup carrying the limits, and the cgroup is gone afterwards', async () => {
    const run = runBuild(
      spec(['sh', '-c', 'sh build.sh && sleep 2']),
      opts({ limits: { memoryBytes: 256 * MiB, pids: 100, cpuCores: 0.5 } }),
    );
    // While it runs: its cgroups exist with the configured values, and hold the build's processes.
    const found = await until(() => {
      const c = cgroupsOf(process.pid);
      return c.length === 3 && readFileSync(join(c[0]!, 'cgroup.procs'), 'utf8').trim() !== '' ? c : undefined;
    }, 'the build cgroup');
    const [mem, pids, cpu] = found;
    expect(readFileSync(join(mem!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(256 * MiB));
    expect(readFileSync(join(pids!, 'pids.max'), 'utf8').trim()).toBe('100');
    expect(readFileSync(join(cpu!, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
    expect(readFileSync(join(cpu!, 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
    const r = await run;
    expect(r.artifacts.map((a) => a.name)).toEqual(['hello.txt']);
    for (const d of found) expect(existsSync(d)).toBe(false);
    expect(cgroupsOf(process.pid)).toEqual([]);
  });

  it('removes the cgroup after a timeout', async () => {
    const run = failure(runBuild(spec(['sleep', '30'], { timeoutSeconds: 2 }), opts()));
    // positive control: the build ran in its cgroups (defaults: 8 GiB, 4096 pids, no CPU quota)
    const found = await until(() => {
      const c = cgroupsOf(process.pid);
      return c.length === 2 && readFileSync(join(c[0]!, 'cgroup.procs'), 'utf8').trim() !== '' ? c : undefined;
    }, 'the build cgroup');
    expect(readFileSync(join(found[0]!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(8 * 1024 * MiB));
    expect(readFileSync(join(found[1]!, 'pids.max'), 'utf8').trim()).toBe('4096');
    const e = await run;
    expect(e.code).toBe('RUNNER_BUILD_TIMEOUT');
    for (const d of found) expect(existsSync(d)).toBe(false);
    expect(processesInCgroupsOf(process.pid)).toEqual([]);
  });

  it("removes a dead runner's cgroup (and kills what is left in it) when the next build starts", async () => {
    const marker = `airlock-stale-${process.pid}-${Date.now()}`;
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const s = spec(['sh', '-c', 'exec sleep 120', marker]);
    const code = `const { runBuild } = await import(${JSON.stringify(dist)}); await runBuild(${JSON.stringify(s)}, ${JSON.stringify(opts({ workRoot: join(dir, 'work-crash') }))}).catch(() => {});`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: 'ignore' });
    const childPid = child.pid!;
    const stale = await until(() => {
      const c = cgroupsOf(childPid);
      return c.length === 2 && readFileSync(join(c[0]!, 'cgroup.procs'), 'utf8').trim() !== '' ? c : undefined;
    }, "the crashing runner's cgroup");
    // A process the runner's death did not take (as if pdeathsig had failed): the sweep must kill it.
    const straggler = spawn('sleep', ['300'], { stdio: 'ignore', detached: true });
    for (const d of stale) writeFileSync(join(d, 'cgroup.procs'), String(straggler.pid));
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(stale.every((d) => existsSync(d))).toBe(true);
    // A runner of another pid namespace (another container sharing the v1 hierarchy): its pid means nothing
    // here, so its cgroup is left alone even though no such pid exists in ours.
    const foreign = join(dirs.pids, `airlock-1-${childPid}-00000000deadbeef`);
    mkdirSync(foreign);
    const gone = new Promise((r) => straggler.on('exit', r));
    try {
      await runBuild(spec(build), opts());
      expect(existsSync(foreign)).toBe(true);
    } finally {
      spawnSync('rmdir', [foreign]);
    }
    for (const d of stale) expect(existsSync(d)).toBe(false);
    await gone;
    expect(straggler.signalCode).toBe('SIGKILL');
  });

  it('without a writable cgroup: one warning, and the build runs under rlimits', async () => {
    const events: ProgressEvent[] = [];
    const r = await runBuild(
      spec(['sh', '-c', 'sh build.sh && cat /proc/self/limits'], { reproducible: true }),
      opts({
        limits: { memoryBytes: 256 * MiB, pids: 77, cgroupRoot: join(dir, 'no-cgroups-here') },
        onProgress: (e) => events.push(e),
      }),
    );
    const warnings = events.filter((e) => /no writable cgroup/.test(e.message));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain('rlimits');
    const limits = readFileSync(r.logPath, 'utf8');
    expect(limits).toMatch(/^Max data size\s+268435456\s+268435456\s+bytes/m);
    expect(limits).toMatch(/^Max processes\s+77\s+77\s+processes/m);
    expect(cgroupsOf(process.pid)).toEqual([]);
  });

  it('an invalid limit is an options error (exit 2) before anything runs', async () => {
    const e = await failure(runBuild(spec(build), opts({ limits: { pids: 0 } })));
    expect(e.code).toBe('RUNNER_SPEC_INVALID');
    expect(e.message).toMatch(/limits\.pids/);
  });
});
