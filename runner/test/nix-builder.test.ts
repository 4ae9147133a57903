/**
 * The Nix builder end to end through `runBuild`: real bwrap, Nix 2.8 (Debian's nix-bin) with its own sandbox
 * nested inside, strace, and a loopback server standing in for the mirror. The fixture expression
 * (fixtures/runner/nix-fod) has a fixed-output `<nix/fetchurl.nix>` fetch of an unreachable URL and a consumer
 * derivation that compiles and repacks it with the host's tools. One reproducible build (= two Nix builds into
 * two fresh stores) serves every positive assertion; the negative runs stop before nix-build.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement } from '@airlock/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builderFor } from '../src/builders.js';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import { nixBuilderProblem } from '../src/nix-builder.js';
import { runBuild, SANDBOX_PATH, type RunOptions, type RunResult } from '../src/run.js';
import {
  bwrapArgs,
  NESTED_SANDBOX_PROFILE,
  runSandboxed,
  UNPRIVILEGED_HOST_ID_BASE,
  UNPRIVILEGED_HOST_ID_COUNT,
  type SandboxRunOptions,
} from '../src/sandbox.js';
import type { BuildSpec } from '../src/spec.js';
import {
  sha256,
  startStandInMirror,
  traversable,
  upstreamArchive,
  workspaceRepo,
  type StandInMirror,
} from './builder-fixtures.js';
import { bwrapProblem, gitProblem, netmonProblem, rmrf, tempDir, toolsAvailable, which } from './helpers.js';

const enabled = toolsAvailable('Nix builder tests', [
  bwrapProblem(),
  netmonProblem(),
  gitProblem(),
  nixBuilderProblem(),
]);
const BUILDER_ID = 'https://airlock.dev/runners/test/v1';
const TIMEOUT = 300_000;
const URL_PINNED = 'https://downloads.greet.invalid/releases/greet-2.0.tar.gz';

async function failure(p: Promise<unknown>): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; details?: Record<string, unknown> };
  }
  throw new Error('expected the build to fail');
}

describe.runIf(enabled)('Nix builder: runBuild with the mirror as the only source of the fixed-output fetch', () => {
  let dir: string;
  let archive: Buffer;
  let pin: string;
  let fx: { repo: string; commit: string };
  let mirror: StandInMirror;
  let result: RunResult;
  let n = 0;
  const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
    outDir: join(dir, `out-${++n}`),
    workRoot: join(dir, 'work'),
    builderId: BUILDER_ID,
    ...extra,
  });
  const spec = (mirrorUrl: string, extra: Partial<BuildSpec> = {}): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'nix', file: 'default.nix', attribute: 'greet' },
    outputs: ['bin/greet', 'share'],
    mirror: { url: mirrorUrl },
    timeoutSeconds: 240,
    ...extra,
  });

  beforeAll(async () => {
    dir = traversable(tempDir('nix'));
    archive = upstreamArchive('nix-fod', 'greet-2.0');
    pin = sha256(archive);
    fx = workspaceRepo('nix-fod', dir, { GREET_SHA256: pin });
    mirror = await startStandInMirror({ [pin]: archive }, { [pin]: 'greet-2.0.tar.gz' });
    result = await runBuild(spec(mirror.url, { reproducible: true }), opts({ mirrorUrl: mirror.url }));
  }, TIMEOUT);

  afterAll(async () => {
    await mirror?.close();
    if (dir) rmrf(dir);
  });

  it('builds the consumer from the fetched archive with host tools, byte-identical in a second store', () => {
    expect(result.artifacts.map((a) => a.name)).toEqual([
      'bin/greet',
      'share/GREETING.txt',
      'share/build-root.txt',
      'share/greet-2.0-src.tar.gz',
    ]);
    const byName = Object.fromEntries(result.artifacts.map((a) => [a.name, a]));
    expect(execFileSync(byName['bin/greet']!.path, { encoding: 'utf8' })).toBe(
      'hello from the greet 2.0 archive, built by nix\n',
    );
    expect(readFileSync(byName['share/GREETING.txt']!.path, 'utf8')).toBe(
      'GREETINGS FROM THE ARCHIVE THAT ONLY THE MIRROR HAS\n',
    );
    // The repacked sources are the mirror's archive again, byte for byte (same tar/gzip flags).
    expect(sha256(readFileSync(byName['share/greet-2.0-src.tar.gz']!.path))).toBe(pin);
    for (const a of result.artifacts) expect(sha256(readFileSync(a.path))).toBe(a.sha256);
    // Nix cannot pass a shifted clock to its builders, so the rebuild says so instead of claiming faketime.
    expect(result.reproducibility).toMatchObject({
      status: 'reproduced',
      files: 4,
      variations: { buildPath: true, hostname: true, time: 'wall-clock' },
    });
    expect(result.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
  });

  it("built inside Nix's own sandbox (nested in bwrap), from a private /nix store, with the blob from the mirror by digest", () => {
    const byName = Object.fromEntries(result.artifacts.map((a) => [a.name, a]));
    // Nix's chroot: its own /build, the mapped host /usr and /bin/sh — none of the runner's /airlock, /home, /var.
    expect(readFileSync(byName['share/build-root.txt']!.path, 'utf8').trim().split('\n')).toEqual([
      'bin',
      'build',
      'dev',
      'etc',
      'lib',
      'lib64',
      'nix',
      'proc',
      'tmp',
      'usr',
    ]);
    const log = readFileSync(result.logPath, 'utf8');
    expect(log).toContain(`1 fixed-output fetch(es) from the mirror, sha256 verified: greet-2.0.tar.gz sha256:${pin}`);
    expect(log).toMatch(/\/nix\/store\/[0-9a-z]{32}-greet-2\.0\n/);
    expect(mirror.requests.filter((r) => r === `GET /sha256/${pin}`)).toHaveLength(2);
    expect(mirror.requests.every((r) => /^GET \/(sha256|-\/airlock\/blobs)\/[0-9a-f]{64}$/.test(r))).toBe(true);
  });

  it('records nix and its libraries in the toolchain and the archive as a mirror blob', () => {
    const tools = new Map(result.toolchain.map((t) => [t.path, t]));
    for (const p of [
      '/usr/bin/nix-build',
      '/usr/bin/nix-instantiate',
      '/usr/bin/nix-store',
      '/usr/bin/gcc',
      '/usr/bin/tar',
    ]) {
      expect(tools.get(p), p).toBeDefined();
      expect(tools.get(p)!.sha256).toBe(sha256(readFileSync(tools.get(p)!.resolvedPath)));
    }
    expect(result.toolchain.some((t) => /libnixstore\.so$/.test(t.path))).toBe(true);
    expect(result.toolchain.find((t) => t.path.startsWith('/airlock/'))).toBeUndefined();
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenancePath, 'utf8')) as Statement<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const deps = st.predicate!.buildDefinition.resolvedDependencies as {
      digest: Record<string, string>;
      annotations?: Record<string, unknown>;
    }[];
    expect(deps).toContainEqual(
      expect.objectContaining({ digest: { sha256: pin }, annotations: { role: 'mirror-blob' } }),
    );
    expect(st.predicate!.buildDefinition.externalParameters.builder).toEqual({
      type: 'nix',
      file: 'default.nix',
      attribute: 'greet',
    });
  });

  it(
    'fails as a build failure naming the fetch when the mirror lacks the blob — Nix never tries the URL',
    async () => {
      const empty = await startStandInMirror({});
      try {
        const e = await failure(runBuild(spec(empty.url), opts({ mirrorUrl: empty.url })));
        expect(e.code).toBe('RUNNER_BUILD_FAILED');
        expect(exitCodeFor(e)).toBe(EXIT_CODES.BUILD_FAILED);
        expect(e.message).toContain('build failed: nix-build default.nix -A greet exited with status 1');
        expect(e.message).toContain(`greet-2.0.tar.gz (sha256:${pin}, ${URL_PINNED}) is not in the mirror`);
        expect(e.message).toContain('nothing was downloaded');
        expect(e.message).toContain('not building: 1 fixed-output fetch(es) are not in the mirror');
        expect(e.message).not.toContain('this derivation will be built');
        expect(empty.requests).toEqual([`GET /sha256/${pin}`]);
      } finally {
        await empty.close();
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a mirror blob whose digest does not match the fixed-output hash',
    async () => {
      const tampered = Buffer.concat([archive, Buffer.from('appended by a compromised mirror\n')]);
      const bad = await startStandInMirror({ [pin]: tampered });
      try {
        const e = await failure(runBuild(spec(bad.url), opts({ mirrorUrl: bad.url })));
        expect(e.code).toBe('RUNNER_BUILD_FAILED');
        expect(e.message).toContain(`REFUSED greet-2.0.tar.gz`);
        expect(e.message).toContain(`served ${tampered.length} bytes with sha256 ${sha256(tampered)}`);
        expect(e.message).toContain(`pins sha256 ${pin} (hash mismatch`);
      } finally {
        await bad.close();
      }
    },
    TIMEOUT,
  );

  it('is selected by builderFor for nix specs', () => {
    expect(builderFor({ type: 'nix', file: 'default.nix', attribute: 'greet' }).type).toBe('nix');
  });
});

describe('bwrap arguments of a builder plan', () => {
  const base: SandboxRunOptions = {
    tools: { bwrap: '/usr/bin/bwrap', node: '/usr/bin/node' },
    layout: {
      plumbingDir: '/w/run/sandbox',
      src: { host: '/w/run/src', path: '/build/src' },
      out: { host: '/w/run/out', path: '/build/out' },
      home: { host: '/w/run/home', path: '/build/home' },
      tmp: { host: '/w/run/tmp', path: '/tmp' },
      extra: [{ host: '/w/run/extra-0', path: '/nix' }],
    },
    profile: { ...NESTED_SANDBOX_PROFILE, writableDirs: ['/nix'] },
    argv: ['/airlock/bin/node', '/airlock/nix-driver.mjs'],
    cwd: '/build/src',
    env: {},
    hostname: 'airlock-build',
    timeoutMs: 1000,
    logPath: '/w/log',
    files: { 'nix-driver.mjs': '// driver', 'nix-driver.json': '{}' },
    bindNode: true,
  };
  const pairs = (a: string[], flag: string) => a.flatMap((x, i) => (x === flag ? [[a[i + 1], a[i + 2]]] : []));

  it('keeps the pid namespace and /proc, allows nested user namespaces, binds the extra writable dir, the driver files read-only and Node', () => {
    const a = bwrapArgs(base);
    expect(a).toContain('--unshare-pid');
    expect(a[a.indexOf('--proc') + 1]).toBe('/proc');
    expect(a).not.toContain('--disable-userns');
    expect(pairs(a, '--bind')).toContainEqual(['/w/run/extra-0', '/nix']);
    expect(pairs(a, '--ro-bind')).toEqual(
      expect.arrayContaining([
        ['/w/run/sandbox/files/nix-driver.json', '/airlock/nix-driver.json'],
        ['/w/run/sandbox/files/nix-driver.mjs', '/airlock/nix-driver.mjs'],
        ['/usr/bin/node', '/airlock/bin/node'],
      ]),
    );
    // No mirror: the POSIX shell starts the driver.
    expect(a.slice(a.indexOf('--') + 1)).toEqual([
      '/airlock/bin/sh',
      '-c',
      'umask 022 && exec "$@"',
      'airlock-sandbox',
      '/airlock/bin/node',
      '/airlock/nix-driver.mjs',
    ]);
  });

  it('refuses plumbing file names that are paths or runner names', () => {
    for (const name of ['../x', 'a/b', 'supervisor.mjs', 'bin', '']) {
      expect(() => bwrapArgs({ ...base, files: { [name]: 'x' } }), name).toThrow(
        expect.objectContaining({ code: 'RUNNER_INTERNAL' }),
      );
    }
  });
});

describe.runIf(toolsAvailable('nested-sandbox profile test', [bwrapProblem()]))(
  'the nested-sandbox profile (Bazel, Nix)',
  () => {
    it('allows a nested user + pid namespace with its own /proc, and never runs as host root', async () => {
      const dir = traversable(tempDir('nested'));
      try {
        const run = mkdtempSync(join(dir, 'run-'));
        const d = (name: string) => {
          const p = join(run, name);
          mkdirSync(p, { recursive: true });
          return p;
        };
        const probe = [
          'id -u > /build/out/made-by; echo made',
          'if [ -w /proc/sys/kernel/core_pattern ]; then echo sysctl-writable; else echo sysctl-read-only; fi',
          // What Bazel's linux-sandbox and Nix do: a user + pid + mount namespace and a fresh /proc mounted in it.
          "unshare --user --map-root-user --pid --fork --mount --mount-proc sh -c 'echo nested-pid=$$; ls /proc/1/exe >/dev/null && echo nested-proc-ok'",
        ].join('\n');
        const logPath = join(dir, 'log');
        const r = await runSandboxed({
          tools: {
            bwrap: which('bwrap')!,
            node: process.execPath,
            ...(which('setpriv') ? { setpriv: which('setpriv')! } : {}),
          },
          layout: {
            plumbingDir: d('sandbox'),
            src: { host: d('src'), path: '/build/src' },
            out: { host: d('out'), path: '/build/out' },
            home: { host: d('home'), path: '/build/home' },
            tmp: { host: d('tmp'), path: '/tmp' },
          },
          profile: NESTED_SANDBOX_PROFILE,
          argv: ['sh', '-c', probe],
          cwd: '/build/src',
          env: { PATH: SANDBOX_PATH, HOME: '/build/home', LC_ALL: 'C' },
          hostname: 'airlock-build',
          timeoutMs: 60_000,
          logPath,
          scratchRoot: run,
        });
        const log = readFileSync(logPath, 'utf8');
        expect(r.exitCode, log).toBe(0);
        // uid 1000 inside; on the host the file belongs to the uid bwrap ran as.
        expect(readFileSync(join(run, 'out', 'made-by'), 'utf8')).toBe('1000\n');
        const outside = statSync(join(run, 'out', 'made-by')).uid;
        if (process.getuid!() === 0) {
          // A root runner: the sandbox user is a per-run unprivileged host uid, so host sysctls stay read-only.
          expect(outside).toBeGreaterThanOrEqual(UNPRIVILEGED_HOST_ID_BASE);
          expect(outside).toBeLessThan(UNPRIVILEGED_HOST_ID_BASE + UNPRIVILEGED_HOST_ID_COUNT);
        } else expect(outside).toBe(process.getuid!());
        expect(log).toContain('sysctl-read-only');
        expect(log).toContain('nested-pid=1\nnested-proc-ok');
        // The run directory is closed again (mkdtemp's 0700) once the sandbox is gone.
        expect(statSync(run).mode & 0o777).toBe(0o700);
      } finally {
        rmrf(dir);
      }
    }, 60_000);
  },
);
