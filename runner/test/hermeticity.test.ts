/**
 * Builds that try to leave the sandbox (network) or are not reproducible, with a real bubblewrap sandbox.
 * No packet leaves the machine: the sandbox's network namespace has no route out.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import type { NetworkViolation } from '../src/network-monitor.js';
import type { OutputDifference } from '../src/reproducibility.js';
import { runBuild, type RunOptions } from '../src/run.js';
import type { BuildSpec } from '../src/spec.js';
import {
  bwrapProblem,
  gitProblem,
  makeFixtureRepo,
  rmrf,
  straceProblem,
  tempDir,
  toolsAvailable,
  which,
  type FixtureRepo,
} from './helpers.js';

const sandbox = bwrapProblem();
const enabled = toolsAvailable('runner hermeticity tests', [sandbox, straceProblem(), gitProblem()]);
const logModeEnabled = enabled || toolsAvailable('runner hermeticity tests (log monitor)', [sandbox, gitProblem()]);
const dir = tempDir('hermetic');
afterAll(() => rmrf(dir));

let n = 0;
const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
  outDir: join(dir, `out-${++n}`),
  workRoot: join(dir, 'work'),
  builderId: 'https://airlock.dev/runners/test/v1',
  ...extra,
});

/** The strace fallback, chosen explicitly: 'auto' prefers the seccomp monitor (netmon.test.ts covers it). */
const straceOpts = (extra: Partial<RunOptions> = {}): RunOptions => opts({ networkMonitor: 'strace', ...extra });

type RunnerFailure = Error & {
  code: string;
  details: { violations?: NetworkViolation[]; differences?: OutputDifference[]; logPath?: string; monitor?: string };
};

async function failure(p: Promise<unknown>): Promise<RunnerFailure> {
  try {
    await p;
  } catch (err) {
    return err as RunnerFailure;
  }
  throw new Error('expected the build to fail');
}

describe.runIf(enabled)('hermeticity violations (strace monitor)', () => {
  let fx: FixtureRepo;
  let hostServer: Server;
  let hostPort = 0;
  let hostConnections = 0;
  beforeAll(async () => {
    fx = makeFixtureRepo('network', dir);
    // a service on the *host's* loopback: the sandbox must not reach it
    hostServer = createServer((c) => {
      hostConnections++;
      c.end('host secret service\n');
    });
    await new Promise<void>((r) => hostServer.listen(0, '127.0.0.1', r));
    hostPort = (hostServer.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => hostServer.close(() => r())));

  const spec = (argv: string[], outputs = ['result.txt']): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv },
    outputs,
  });

  it('TCP to a public address fails as a hermeticity violation (exit 11) naming address, program and errno', async () => {
    const e = await failure(runBuild(spec(['bash', 'public.sh']), straceOpts()));
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.HERMETICITY_VIOLATION);
    expect(e.message).toMatch(
      /hermeticity violation: the build tried to reach the network \(this build has no mirror, so nothing is reachable; detected by strace\)/,
    );
    expect(e.message).toMatch(/\/usr\/bin\/bash \(pid \d+\) connect 1\.1\.1\.1:80 → ENETUNREACH: a public address/);
    expect(e.details.violations).toEqual([
      expect.objectContaining({ kind: 'public-address', address: '1.1.1.1', port: 80, result: 'ENETUNREACH' }),
    ]);
    expect(readFileSync(e.details.logPath!, 'utf8')).toContain('could not connect to 1.1.1.1:80');
  });

  it("TCP to the host's loopback fails as a violation, and the host service never sees a connection", async () => {
    const before = hostConnections;
    const e = await failure(runBuild(spec(['bash', 'loopback.sh', String(hostPort)]), straceOpts()));
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(e.message).toContain(`connect 127.0.0.1:${hostPort} → ECONNREFUSED: the host's loopback`);
    expect(e.details.violations![0]).toMatchObject({ kind: 'host-loopback', port: hostPort });
    expect(hostConnections).toBe(before);
  });

  it('a build that swallows the network error and exits 0 is still a violation', async () => {
    const e = await failure(runBuild(spec(['bash', 'swallow.sh']), straceOpts()));
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(e.message).toMatch(/build exited with status 0/);
    expect(e.details.violations![0]).toMatchObject({ kind: 'public-address', address: '1.1.1.1', port: 443 });
  });

  it('a DNS lookup of a public name is a violation', async () => {
    const e = await failure(runBuild(spec(['sh', 'dns.sh']), straceOpts()));
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(e.details.violations!.every((v) => v.kind === 'dns' && v.port === 53)).toBe(true);
    expect(e.message).toContain('getent');
  });

  it.runIf(existsSync('/usr/bin/python3'))(
    'a non-blocking loopback connect (EINPROGRESS, then SO_ERROR) is a violation',
    async () => {
      const e = await failure(runBuild(spec(['/usr/bin/python3', 'nonblocking.py', String(hostPort)]), straceOpts()));
      expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
      expect(e.details.violations![0]).toMatchObject({ kind: 'host-loopback', port: hostPort, result: 'ECONNREFUSED' });
    },
  );

  it.runIf(existsSync('/usr/bin/python3'))(
    'connecting to a service the build itself started on loopback is allowed',
    async () => {
      const py = [
        'import os, socket',
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()",
        'cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()',
        "cli.sendall(b'local service ok\\n'); data = conn.recv(100)",
        "open(os.environ['AIRLOCK_OUTPUT_DIR'] + '/result.txt', 'wb').write(data)",
      ].join('\n');
      const r = await runBuild(spec(['/usr/bin/python3', '-c', py]), straceOpts());
      expect(readFileSync(r.artifacts[0]!.path, 'utf8')).toBe('local service ok\n');
      expect(r.hermeticity.violations).toBe(0);
    },
  );
});

describe.runIf(logModeEnabled)('hermeticity violations (log monitor fallback)', () => {
  it('classifies a failed build whose log shows a network error', async () => {
    const fx = makeFixtureRepo('network', join(dir, 'logmode'));
    const e = await failure(
      runBuild(
        {
          source: { repo: fx.repo, commit: fx.commit },
          builder: { type: 'command', argv: ['bash', 'public.sh'] },
          outputs: ['x'],
        },
        opts({ networkMonitor: 'log' }),
      ),
    );
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(e.details.monitor).toBe('log');
    expect(e.message).toMatch(/detected by log/);
    expect(e.message).toContain('Network is unreachable');
  });
});

describe.runIf(enabled)('rebuild check', () => {
  let fx: FixtureRepo;
  beforeAll(() => {
    fx = makeFixtureRepo('timestamp', dir);
  });

  it('fails a build with a timestamp in its output, naming that file and not the stable one', async () => {
    const e = await failure(
      runBuild(
        {
          source: { repo: fx.repo, commit: fx.commit },
          builder: { type: 'command', argv: ['sh', 'build.sh'] },
          outputs: ['stable.txt', 'stamp.txt'],
          reproducible: true,
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_REPRODUCIBILITY_FAILED');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.REPRODUCIBILITY_FAILED);
    expect(e.message).toMatch(
      /not reproducible: 1 output differs between two builds of [0-9a-f]{40}: stamp\.txt: content differs \(first at byte \d+;/,
    );
    expect(e.message).not.toContain('stable.txt');
    expect(e.details.differences).toEqual([expect.objectContaining({ name: 'stamp.txt', reason: 'content-differs' })]);
  });

  it('passes the same build when reproducibility is not requested', async () => {
    const r = await runBuild(
      {
        source: { repo: fx.repo, commit: fx.commit },
        builder: { type: 'command', argv: ['sh', 'build.sh'] },
        outputs: ['stable.txt', 'stamp.txt'],
      },
      opts(),
    );
    expect(r.reproducibility).toEqual({ status: 'not-requested' });
  });

  it('catches output that depends on the hostname, the build path or HOME, naming each file', async () => {
    const script =
      'uname -n > "$AIRLOCK_OUTPUT_DIR/host.txt"; pwd > "$AIRLOCK_OUTPUT_DIR/path.txt"; echo "$HOME" > "$AIRLOCK_OUTPUT_DIR/home.txt"; echo same > "$AIRLOCK_OUTPUT_DIR/same.txt"';
    const e = await failure(
      runBuild(
        {
          source: { repo: fx.repo, commit: fx.commit },
          builder: { type: 'command', argv: ['sh', '-c', script] },
          outputs: ['*.txt'],
          reproducible: true,
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_REPRODUCIBILITY_FAILED');
    expect(e.details.differences!.map((d) => d.name)).toEqual(['home.txt', 'host.txt', 'path.txt']);
    expect(e.message).toMatch(/3 outputs differ/);
  });

  it.runIf(which('faketime') !== undefined)(
    'shifts the rebuild clock with faketime when installed (a date-only stamp differs too)',
    async () => {
      const e = await failure(
        runBuild(
          {
            source: { repo: fx.repo, commit: fx.commit },
            builder: { type: 'command', argv: ['sh', '-c', 'date -u +%Y-%m-%d > "$AIRLOCK_OUTPUT_DIR/day.txt"'] },
            outputs: ['day.txt'],
            reproducible: true,
          },
          opts(),
        ),
      );
      expect(e.code).toBe('RUNNER_REPRODUCIBILITY_FAILED');
      expect(e.message).toContain('day.txt');
    },
  );
});
