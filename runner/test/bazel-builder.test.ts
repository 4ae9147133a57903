/**
 * The Bazel builder end to end through `runBuild`: real bwrap, Bazel 4.2.3 (Debian's bazel-bootstrap) with its
 * linux-sandbox nested inside, strace, and a loopback server standing in for the mirror. The fixture workspace
 * (fixtures/runner/bazel-ws) has a cc_binary linked against a library from an http_archive pinned by sha256
 * whose URL only the mirror can satisfy, and a genrule tarball. One reproducible build (= two Bazel builds)
 * serves every positive assertion; the negative runs stop before `bazel build` or at its fetch.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement } from '@airlock/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bazelBuilderProblem } from '../src/bazel-builder.js';
import { builderFor } from '../src/builders.js';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import { runBuild, type RunOptions, type RunResult } from '../src/run.js';
import type { BuildSpec } from '../src/spec.js';
import {
  sha256,
  startStandInMirror,
  traversable,
  upstreamArchive,
  workspaceRepo,
  type StandInMirror,
} from './builder-fixtures.js';
import { bwrapProblem, gitProblem, netmonProblem, processesWith, rmrf, tempDir, toolsAvailable } from './helpers.js';

const enabled = toolsAvailable('Bazel builder tests', [
  bwrapProblem(),
  netmonProblem(),
  gitProblem(),
  bazelBuilderProblem(),
]);
const BUILDER_ID = 'https://airlock.dev/runners/test/v1';
const TIMEOUT = 600_000;

async function failure(p: Promise<unknown>): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; details?: Record<string, unknown> };
  }
  throw new Error('expected the build to fail');
}

describe.runIf(enabled)('Bazel builder: runBuild with the mirror as the only source of the pinned archive', () => {
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
    builder: { type: 'bazel', targets: ['//:hello', '//:bundle'] },
    outputs: ['hello', 'bundle.tar'],
    mirror: { url: mirrorUrl },
    timeoutSeconds: 300,
    ...extra,
  });

  beforeAll(async () => {
    dir = traversable(tempDir('bazel'));
    archive = upstreamArchive('bazel-ws', 'greet-2.0');
    pin = sha256(archive);
    fx = workspaceRepo('bazel-ws', dir, { GREET_SHA256: pin });
    mirror = await startStandInMirror({ [pin]: archive }, { [pin]: 'greet-2.0.tar.gz' });
    result = await runBuild(spec(mirror.url, { reproducible: true }), opts({ mirrorUrl: mirror.url }));
  }, TIMEOUT);

  afterAll(async () => {
    await mirror?.close();
    if (dir) rmrf(dir);
  });

  it('builds the cc_binary against the archive from the mirror and the genrule tarball, byte-identical in the rebuild', () => {
    expect(result.artifacts.map((a) => a.name)).toEqual(['bundle.tar', 'hello']);
    const hello = result.artifacts.find((a) => a.name === 'hello')!;
    expect(sha256(readFileSync(hello.path))).toBe(hello.sha256);
    expect(execFileSync(hello.path, { encoding: 'utf8' })).toBe(
      'hello from the greet 2.0 archive from a hermetic bazel build\n',
    );
    const bundle = result.artifacts.find((a) => a.name === 'bundle.tar')!;
    expect(execFileSync('tar', ['-tvf', bundle.path], { encoding: 'utf8' })).toMatch(
      /^\S+ 0\/0 +\d+ 1970-01-01 00:00 bazel-out\/k8-fastbuild\/bin\/hello\n\S+ 0\/0 +\d+ 1970-01-01 00:00 external\/greet\/greet\.txt\n$/,
    );
    // Both builds (different path, hostname, HOME, env; actions under faketime) gave the same bytes.
    expect(result.reproducibility).toMatchObject({
      status: 'reproduced',
      files: 2,
      variations: { buildPath: true, time: 'faketime' },
    });
    expect(result.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
  });

  it('took the archive from the mirror by digest only, verified it, and ran the actions in linux-sandbox', () => {
    // Two builds, each GET /sha256/<pin> once; Bazel's own default pins were asked for too (and are not there).
    const gets = mirror.requests.filter((r) => r === `GET /sha256/${pin}`);
    expect(gets).toHaveLength(2);
    expect(mirror.requests.every((r) => /^GET \/(sha256\/[0-9a-f]{64}|-\/airlock\/blobs\/[0-9a-f]{64})$/.test(r))).toBe(
      true,
    );
    const log = readFileSync(result.logPath, 'utf8');
    expect(log).toContain(`1 pinned archive(s) from the mirror, sha256 verified: @greet sha256:${pin}`);
    expect(log).toMatch(/INFO: \d+ processes: .*\d+ linux-sandbox\./);
    expect(log).not.toContain('processwrapper-sandbox');
    expect(readFileSync(result.rebuildLogPath!, 'utf8')).toMatch(/\d+ linux-sandbox\./);
  });

  it('records bazel, its server jar, the JVM, gcc and the nested sandbox in the toolchain and the archive as a mirror blob', () => {
    const tools = new Map(result.toolchain.map((t) => [t.path, t]));
    for (const p of [
      '/usr/bin/bazel',
      '/usr/bin/bazel-4',
      '/usr/share/bazel/A-server.jar',
      '/usr/share/bazel/linux-sandbox',
      '/usr/bin/gcc',
    ]) {
      expect(tools.get(p), p).toBeDefined();
      expect(tools.get(p)!.sha256).toBe(sha256(readFileSync(tools.get(p)!.resolvedPath)));
    }
    expect(result.toolchain.some((t) => /\/bin\/java$/.test(t.resolvedPath))).toBe(true);
    // The driver is runner plumbing, not a tool of the build.
    expect(result.toolchain.find((t) => t.path.startsWith('/airlock/'))).toBeUndefined();
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenancePath, 'utf8')) as Statement<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const deps = st.predicate!.buildDefinition.resolvedDependencies as {
      name?: string;
      digest: Record<string, string>;
      annotations?: Record<string, unknown>;
    }[];
    expect(deps.filter((d) => d.annotations?.role === 'toolchain').map((d) => d.name)).toEqual(
      expect.arrayContaining(['/usr/bin/bazel', '/usr/share/bazel/A-server.jar']),
    );
    expect(deps).toContainEqual(
      expect.objectContaining({ digest: { sha256: pin }, annotations: { role: 'mirror-blob' } }),
    );
    expect(st.predicate!.buildDefinition.externalParameters.builder).toEqual({
      type: 'bazel',
      targets: ['//:hello', '//:bundle'],
    });
  });

  it('leaves no Bazel server behind and no scratch space', () => {
    expect(processesWith('/tmp/airlock-bazel/output')).toEqual([]);
    expect(
      existsSync(join(dir, 'work')) ? execFileSync('ls', ['-A', join(dir, 'work')], { encoding: 'utf8' }) : '',
    ).toBe('');
  });

  it(
    'fails as a build failure, naming the repository, when the mirror lacks the archive — nothing is downloaded',
    async () => {
      const empty = await startStandInMirror({});
      try {
        const e = await failure(runBuild(spec(empty.url), opts({ mirrorUrl: empty.url })));
        expect(e.code).toBe('RUNNER_BUILD_FAILED');
        expect(exitCodeFor(e)).toBe(EXIT_CODES.BUILD_FAILED);
        expect(e.message).toContain('build failed: bazel build //:hello //:bundle exited with status 1');
        expect(e.message).toContain(
          `@greet (sha256:${pin}, https://github.com/airlock-fixtures/greet/archive/refs/tags/v2.0.tar.gz) is not in the mirror`,
        );
        expect(e.message).toContain('nothing was downloaded, downloads are disabled');
        // The mirror was asked by digest (404), never anything else; and no network attempt was made (not a violation).
        expect(empty.requests).toContain(`GET /sha256/${pin}`);
        expect(empty.requests.every((r) => r.startsWith('GET /sha256/'))).toBe(true);
      } finally {
        await empty.close();
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a mirror blob whose digest does not match the pin, before building',
    async () => {
      const tampered = Buffer.from(archive);
      tampered[tampered.length - 20] ^= 0x01;
      const bad = await startStandInMirror({ [pin]: tampered });
      try {
        // The log monitor is enough here (and spares the traced JVM start): the driver stops before building.
        const e = await failure(runBuild(spec(bad.url), opts({ mirrorUrl: bad.url, networkMonitor: 'log' })));
        expect(e.code).toBe('RUNNER_BUILD_FAILED');
        expect(e.message).toContain(
          `REFUSED @greet: the mirror served ${tampered.length} bytes with sha256 ${sha256(tampered)}`,
        );
        expect(e.message).toContain(`pins sha256 ${pin} (hash mismatch`);
        expect(e.message).toContain('not building');
      } finally {
        await bad.close();
      }
    },
    TIMEOUT,
  );

  it('is selected by builderFor for bazel specs', () => {
    expect(builderFor({ type: 'bazel', targets: ['//:x'] }).type).toBe('bazel');
  });
});
