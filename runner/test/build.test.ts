/**
 * End-to-end runs of `runBuild` with a real bubblewrap sandbox and seccomp monitor: the good build and its
 * attestations, signing through the port, the mirror bridge and the sandbox's view of the host.
 */
import { createHash, generateKeyPairSync, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDsseEnvelope, verifyDsse, INTOTO_PAYLOAD_TYPE, type Statement } from '@airlock/core';
import { AirlockSigner, KeySigner } from '@airlock/sign';
import { validateSbom, CYCLONEDX_PREDICATE_TYPE } from '@airlock/sbom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import { AIRLOCK_BUILD_TYPE, SLSA_PROVENANCE_V1 } from '../src/provenance.js';
import { runBuild, type RunOptions, type RunResult } from '../src/run.js';
import { validatorFor } from '@airlock/schemas';
import type { BuildSpec } from '../src/spec.js';
import {
  bwrapProblem,
  gitProblem,
  makeFixtureRepo,
  rmrf,
  startFileServer,
  netmonProblem,
  tempDir,
  toolsAvailable,
  type FixtureRepo,
} from './helpers.js';

const enabled = toolsAvailable('sandboxed runner tests', [bwrapProblem(), netmonProblem(), gitProblem()]);
const BUILDER_ID = 'https://airlock.dev/runners/test/v1';
const dir = tempDir('build');
afterAll(() => rmrf(dir));

let n = 0;
const outDir = () => join(dir, `out-${++n}`);
const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
  outDir: outDir(),
  workRoot: join(dir, 'work'),
  builderId: BUILDER_ID,
  ...extra,
});

function json<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

async function failure(p: Promise<unknown>): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; details?: Record<string, unknown> };
  }
  throw new Error('expected the build to fail');
}

describe.runIf(enabled)('runBuild: the good command build', () => {
  let fx: FixtureRepo;
  let spec: BuildSpec;
  let result: RunResult;
  let options: RunOptions;
  const signed: Statement[] = [];
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const signer = new AirlockSigner({
    fulcioUrl: 'http://127.0.0.1:1',
    rekorUrl: 'http://127.0.0.1:1',
    keySigner: new KeySigner(pem, 'runner-test'),
    skipTlog: true,
  });

  beforeAll(async () => {
    fx = makeFixtureRepo('good', dir);
    spec = {
      source: { repo: fx.repo, commit: fx.commit, ref: 'refs/heads/main' },
      builder: { type: 'command', argv: ['sh', 'build.sh'] },
      outputs: ['hello.txt', 'lib/*.tar.gz', 'build-date.txt'],
      reproducible: true,
      timeoutSeconds: 120,
    };
    const specPath = join(dir, 'good.spec.json');
    writeFileSync(specPath, JSON.stringify(spec));
    options = opts({
      signer: { attest: async (s) => (signed.push(s), signer.attest(s)) },
      mirrorSnapshotId: `sha256:${'a'.repeat(64)}`,
      resolvedMirrorDependencies: [
        {
          purl: 'pkg:npm/left-pad@1.3.0',
          uri: 'https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz',
          digest: { sha256: 'b'.repeat(64) },
        },
      ],
    });
    result = await runBuild(specPath, options);
  });

  it('builds the declared outputs with their digests, in the output directory', () => {
    expect(result.artifacts.map((a) => a.name)).toEqual(['build-date.txt', 'hello.txt', 'lib/src.tar.gz']);
    for (const a of result.artifacts) {
      const bytes = readFileSync(a.path);
      expect(a.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(a.size).toBe(bytes.length);
    }
    expect(readFileSync(join(options.outDir, 'hello.txt'), 'utf8')).toBe('HELLO FROM A HERMETIC BUILD\n');
    // SOURCE_DATE_EPOCH is the commit time
    expect(readFileSync(join(options.outDir, 'build-date.txt'), 'utf8')).toBe('2024-01-02T03:04:05Z\n');
    expect(result.source.sourceDateEpoch).toBe(Date.parse('2024-01-02T03:04:05Z') / 1000);
    expect(readFileSync(result.logPath, 'utf8')).toMatch(/built \d+ bytes of archive/);
    expect(result.logSha256).toBe(createHash('sha256').update(readFileSync(result.logPath)).digest('hex'));
  });

  it('passed the rebuild check (different path, hostname, env, time) and cleaned its scratch space', () => {
    expect(result.reproducibility).toMatchObject({
      status: 'reproduced',
      files: 3,
      variations: { buildPath: true, hostname: true, environmentNoise: true },
    });
    expect(result.rebuildLogPath && existsSync(result.rebuildLogPath)).toBe(true);
    expect(readdirSync(join(dir, 'work'))).toEqual([]);
    expect(result.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
  });

  it('writes an SLSA v1 provenance statement per output that matches the documented build type schema', () => {
    for (const a of result.artifacts) {
      const st = json<Statement<Record<string, any>>>(a.provenancePath); // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(st._type).toBe('https://in-toto.io/Statement/v1');
      expect(st.predicateType).toBe(SLSA_PROVENANCE_V1);
      expect(st.subject).toEqual([{ name: a.name, digest: { sha256: a.sha256 } }]);
      const bd = st.predicate!.buildDefinition;
      const validate = validatorFor('slsa-buildtype-airlock-v1');
      expect(validate(bd), JSON.stringify(validate.errors)).toBe(true);
      expect(bd.buildType).toBe(AIRLOCK_BUILD_TYPE);
      expect(bd.externalParameters).toEqual({
        source: { repo: fx.repo, commit: fx.commit, ref: 'refs/heads/main' },
        spec: { digest: { sha256: result.spec.digest.sha256 } },
        builder: { type: 'command', argv: ['sh', 'build.sh'] },
        outputs: spec.outputs,
        reproducible: true,
        env: [],
        timeoutSeconds: 120,
      });
      expect(bd.internalParameters.sandbox).toMatchObject({
        tool: 'bubblewrap',
        uid: 1000,
        umask: '022',
        monitor: 'seccomp',
        network: { mode: 'none' },
      });
      expect(bd.internalParameters.sandbox.namespaces).toEqual(
        expect.arrayContaining(['user', 'network', 'pid', 'ipc', 'uts']),
      );
      expect(bd.internalParameters.sandbox.environment).toMatchObject({
        TZ: 'UTC',
        LC_ALL: 'C',
        HOME: '/build/home',
        SOURCE_DATE_EPOCH: String(result.source.sourceDateEpoch),
      });
      const rd = st.predicate!.runDetails;
      expect(rd.builder.id).toBe(BUILDER_ID);
      expect(rd.metadata).toEqual({
        invocationId: result.invocationId,
        startedOn: result.startedOn,
        finishedOn: result.finishedOn,
      });
      const byName = Object.fromEntries((rd.byproducts as { name: string }[]).map((b) => [b.name, b]));
      expect(byName['airlock-build.log']).toMatchObject({ digest: { sha256: result.logSha256 } });
      expect(byName['reproducibility']).toMatchObject({ annotations: { status: 'reproduced' } });
      expect(
        JSON.parse(
          Buffer.from((byName['reproducibility'] as unknown as { content: string }).content, 'base64').toString(),
        ),
      ).toMatchObject({ status: 'reproduced' });
    }
  });

  it('lists the source commit, mirror snapshot, mirror blobs and every tool the build ran, by digest', () => {
    const st = json<Statement<Record<string, any>>>(result.artifacts[0]!.provenancePath); // eslint-disable-line @typescript-eslint/no-explicit-any
    const deps = st.predicate!.buildDefinition.resolvedDependencies as {
      name?: string;
      uri: string;
      digest: Record<string, string>;
      annotations?: Record<string, unknown>;
    }[];
    expect(deps[0]).toMatchObject({
      name: 'source',
      uri: `git+file://${fx.repo}@${fx.commit}`,
      digest: { gitCommit: fx.commit },
    });
    expect(deps[0]!.annotations).toMatchObject({
      treeDigest: { algorithm: 'airlock-tree-v1', sha256: result.source.treeSha256 },
    });
    expect(deps).toContainEqual(
      expect.objectContaining({ name: 'mirror-snapshot', digest: { sha256: 'a'.repeat(64) } }),
    );
    expect(deps).toContainEqual(
      expect.objectContaining({
        uri: 'pkg:npm/left-pad@1.3.0',
        downloadLocation: expect.stringContaining('left-pad-1.3.0.tgz'),
        digest: { sha256: 'b'.repeat(64) },
      }),
    );
    const tools = deps.filter((d) => d.annotations?.role === 'toolchain');
    for (const t of ['/usr/bin/tar', '/usr/bin/gzip', '/usr/bin/date', '/usr/bin/tr']) {
      const entry = tools.find((d) => d.name === t);
      expect(entry, t).toBeDefined();
      const host = entry!.uri.slice('file://'.length);
      expect(entry!.digest.sha256).toBe(createHash('sha256').update(readFileSync(host)).digest('hex'));
    }
    // runner plumbing is not a build dependency
    expect(tools.find((d) => d.name!.startsWith('/airlock/'))).toBeUndefined();
    expect(result.toolchain.map((t) => t.path)).toEqual(tools.map((d) => d.name));
  });

  it('writes a valid CycloneDX 1.6 SBOM per output with the source, mirror blobs and tools', () => {
    const a = result.artifacts.find((x) => x.name === 'hello.txt')!;
    const bom = json<{
      metadata: { component: { name: string; hashes: { content: string }[] } };
      components: { name: string; purl?: string }[];
    }>(a.sbomPath);
    expect(validateSbom(bom)).toEqual({ valid: true, errors: [] });
    expect(bom.metadata.component.name).toBe('hello.txt');
    expect(bom.metadata.component.hashes[0]!.content).toBe(a.sha256);
    const names = bom.components.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['good', 'left-pad', '/usr/bin/tar']));
    expect(bom.components.find((c) => c.name === 'left-pad')!.purl).toBe('pkg:npm/left-pad@1.3.0');
  });

  it('signs both attestations of every output through the port and writes the bundles next to it', () => {
    expect(signed).toHaveLength(2 * result.artifacts.length);
    const publicKey = createPublicKey(privateKey);
    for (const a of result.artifacts) {
      const prov = json<{ dsseEnvelope: unknown }>(a.provenanceBundlePath!);
      expect(a.provenanceBundlePath).toBe(`${a.path}.provenance.sigstore.json`);
      expect(a.sbomBundlePath).toBe(`${a.path}.sbom.sigstore.json`);
      const payload = JSON.parse(
        verifyDsse(parseDsseEnvelope(prov.dsseEnvelope), publicKey, INTOTO_PAYLOAD_TYPE).toString(),
      ) as Statement;
      expect(payload).toEqual(json(a.provenancePath));
      const sbom = json<{ dsseEnvelope: unknown }>(a.sbomBundlePath!);
      const sbomPayload = JSON.parse(
        verifyDsse(parseDsseEnvelope(sbom.dsseEnvelope), publicKey, INTOTO_PAYLOAD_TYPE).toString(),
      ) as Statement;
      expect(sbomPayload.predicateType).toBe(CYCLONEDX_PREDICATE_TYPE);
      expect(sbomPayload.subject).toEqual([{ name: a.name, digest: { sha256: a.sha256 } }]);
      expect(sbomPayload.predicate).toEqual(json(a.sbomPath));
    }
  });

  it('gives the same outputs for the same commit in a second run (and a new invocation id)', async () => {
    const again = await runBuild({ ...spec, reproducible: false }, opts());
    expect(again.artifacts.map((a) => a.sha256)).toEqual(result.artifacts.map((a) => a.sha256));
    expect(again.invocationId).not.toBe(result.invocationId);
    expect(again.artifacts[0]!.provenanceBundlePath).toBeUndefined();
  });

  it('maps a signer failure to RUNNER_SIGNING_FAILED (exit 13)', async () => {
    const e = await failure(
      runBuild(
        { ...spec, reproducible: false },
        opts({
          signer: {
            attest: async () =>
              Promise.reject(Object.assign(new Error('CA unreachable'), { code: 'SIGN_CERTIFICATE' })),
          },
        }),
      ),
    );
    expect(e.code).toBe('RUNNER_SIGNING_FAILED');
    expect(e.message).toMatch(/signing the provenance of build-date\.txt failed \[SIGN_CERTIFICATE\]: CA unreachable/);
    expect(exitCodeFor(e)).toBe(EXIT_CODES.SIGNING_FAILED);
  });

  it('refuses a non-empty output directory', async () => {
    const o = outDir();
    mkdirSync(o);
    writeFileSync(join(o, 'stale'), 'x');
    await expect(runBuild(spec, opts({ outDir: o }))).rejects.toMatchObject({ code: 'RUNNER_OUT_DIR_NOT_EMPTY' });
  });
});

describe.runIf(enabled)('runBuild: the sandbox as seen from inside', () => {
  let fx: FixtureRepo;
  let report: string;
  let canary: string;
  const secret = `canary-${createHash('sha256').update(String(Math.random())).digest('hex')}`;

  beforeAll(async () => {
    fx = makeFixtureRepo('probe', dir);
    // a HOME-like directory outside the sandbox with an ssh key: it must stay invisible
    const fakeHome = join(dir, 'fake-home');
    mkdirSync(join(fakeHome, '.ssh'), { recursive: true });
    canary = join(fakeHome, '.ssh', 'id_ed25519');
    writeFileSync(canary, secret, { mode: 0o600 });
    const r = await runBuild(
      {
        source: { repo: fx.repo, commit: fx.commit },
        builder: { type: 'command', argv: ['sh', 'probe.sh', canary, fakeHome, join(dir, 'work')] },
        outputs: ['report.txt'],
        env: ['BUILD_FLAVOR', 'NOT_SET_ANYWHERE'],
      },
      opts({ hostEnv: { BUILD_FLAVOR: 'release', SECRET_TOKEN: 'do-not-pass', HOME: '/root' } }),
    );
    report = readFileSync(r.artifacts[0]!.path, 'utf8');
  });

  it('hides host secrets: the canary, its directory, /root contents, the runner scratch dir', () => {
    expect(report).not.toContain(secret);
    expect(report).toContain(`invisible: ${canary}`);
    expect(report).toContain(`invisible: ${join(dir, 'fake-home')}`);
    expect(report).toContain(`invisible: ${join(dir, 'work')}`);
    expect(report).not.toMatch(/^READ: /m);
    for (const p of ['/root/.ssh', '/etc/shadow', '/etc/ssl/private', '/etc/machine-id', '/run', '/var/lib'])
      expect(report).toContain(`invisible: ${p}`);
    expect(report).toContain('root-entries=0 home-entries=0');
  });

  it('runs as an unprivileged builder with its own hostname, umask 022 and a fixed clean environment', () => {
    expect(report).toContain('uid=1000 gid=1000 user=builder');
    expect(report).toContain('hostname=airlock-build');
    expect(report).toContain('umask=0022');
    expect(report).toContain('pwd=/build/src');
    const env = report.split('--- env\n')[1]!;
    const names = env
      .trim()
      .split('\n')
      .map((l) => l.split('=')[0]);
    expect(names.filter((n) => n !== 'PWD' && n !== 'SHLVL' && n !== '_' && n !== 'OLDPWD')).toEqual([
      'AIRLOCK_OUTPUT_DIR',
      'AIRLOCK_SOURCE_DIR',
      'BUILD_FLAVOR',
      'HOME',
      'LC_ALL',
      'LOGNAME',
      'PATH',
      'SOURCE_DATE_EPOCH',
      'TMPDIR',
      'TZ',
      'USER',
    ]);
    expect(env).toContain('BUILD_FLAVOR=release');
    expect(env).toContain('HOME=/build/home');
    expect(env).toContain('TZ=UTC');
    expect(env).not.toContain('do-not-pass');
  });

  it('lets the build write only its source, output, home and temp directories', () => {
    for (const p of [
      '/usr/airlock-probe',
      '/etc/airlock-probe',
      '/airlock-probe',
      '/root/airlock-probe',
      '/home/airlock-probe',
    ])
      expect(report).toContain(`read-only: ${p}`);
    for (const p of ['/build/home/probe', '/tmp/probe', '/build/out/probe', '/build/src/probe'])
      expect(report).toContain(`writable: ${p}`);
  });
});

describe.runIf(enabled)('runBuild: the mirror is the only endpoint', () => {
  let fx: FixtureRepo;
  const body = 'mirror blob contents\n';
  const sha = createHash('sha256').update(body).digest('hex');
  const files = { [`/sha256/${sha}`]: body, [`/base/sha256/${sha}`]: body };
  beforeAll(() => {
    fx = makeFixtureRepo('mirror-fetch', dir);
  });

  const spec = (path: string, mirror?: string): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv: ['bash', 'fetch.sh', path, sha, 'blob.txt'] },
    outputs: ['blob.txt'],
    ...(mirror ? { mirror: { url: mirror } } : {}),
  });

  it('fetches from a mirror on a UNIX socket through the in-sandbox loopback bridge and records what the build received', async () => {
    const sock = join(dir, 'mirror-unix.sock');
    const snapshot = { id: `sha256:${'5'.repeat(64)}`, sequence: 7 };
    // The mirror's lookup API: what the bridge asks after the build about each body it relayed.
    const lookup = {
      sha256: sha,
      size: 0,
      snapshot,
      entries: [
        {
          ecosystem: 'generic',
          name: 'blob.txt',
          version: '1.0',
          filename: 'blob.txt',
          purl: 'pkg:generic/blob.txt@1.0',
          urls: ['https://upstream.example/blob.txt'],
          digests: { sha256: sha },
        },
      ],
    };
    const server = await startFileServer({ ...files, [`/-/airlock/blobs/${sha}`]: JSON.stringify(lookup) }, sock);
    try {
      const r = await runBuild(spec(`/sha256/${sha}`), opts({ mirrorUnixSocket: sock }));
      expect(r.artifacts[0]!.sha256).toBe(sha);
      expect(server.requests.filter((u) => !u.startsWith('/-/airlock/'))).toEqual([`/sha256/${sha}`]);
      const st = json<Statement<Record<string, any>>>(r.artifacts[0]!.provenancePath); // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(st.predicate!.buildDefinition.internalParameters.sandbox.network).toEqual({
        mode: 'mirror-bridge',
        bridge: '127.0.0.1:18080',
      });
      expect(st.predicate!.buildDefinition.internalParameters.sandbox.environment.AIRLOCK_MIRROR_URL).toBe(
        'http://127.0.0.1:18080',
      );
      // Not supplied by the caller: recorded by the bridge from the bytes the build got, resolved by the lookup.
      const deps = st.predicate!.buildDefinition.resolvedDependencies;
      expect(deps).toContainEqual(
        expect.objectContaining({
          uri: 'pkg:generic/blob.txt@1.0',
          downloadLocation: 'https://upstream.example/blob.txt',
          digest: { sha256: sha },
        }),
      );
      expect(deps).toContainEqual(
        expect.objectContaining({ name: 'mirror-snapshot', digest: { sha256: '5'.repeat(64) } }),
      );
      expect(r.mirror).toMatchObject({ snapshotId: snapshot.id, metadataResponses: 0 });
      expect(r.mirror!.dependencies).toEqual([
        {
          purl: 'pkg:generic/blob.txt@1.0',
          uri: 'https://upstream.example/blob.txt',
          name: 'blob.txt',
          version: '1.0',
          digest: { sha256: sha },
        },
      ]);
    } finally {
      await server.close();
    }
  });

  it("bridges the TCP mirror the spec selects among the operator's and keeps its path prefix; bodies the mirror does not know as blobs are metadata", async () => {
    const server = await startFileServer(files);
    try {
      // Two approved mirrors; the spec selects the second by its exact URL (prefix included).
      const r = await runBuild(
        spec(`/sha256/${sha}`, `${server.url}/base`),
        opts({
          mirrors: [
            { name: 'elsewhere', url: 'http://127.0.0.1:9' },
            { name: 'lab', url: `${server.url}/base` },
          ],
        }),
      );
      expect(r.artifacts[0]!.sha256).toBe(sha);
      expect(server.requests).toEqual([`/base/sha256/${sha}`, `/base/-/airlock/blobs/${sha}`]);
      expect(r.mirror).toEqual({ dependencies: [], metadataResponses: 1 });
    } finally {
      await server.close();
    }
  });

  it('fails the build (not the runner) when the mirror lacks the blob', async () => {
    const server = await startFileServer({});
    try {
      const e = await failure(runBuild(spec(`/sha256/${sha}`), opts({ mirrorUrl: server.url })));
      expect(e.code).toBe('RUNNER_BUILD_FAILED');
      expect(e.message).toMatch(/mirror answered: HTTP\/1\.1 404/);
    } finally {
      await server.close();
    }
  });

  it('fails as a hermeticity violation (exit 11) when the build sends the mirror a request with a body; the body never reaches it', async () => {
    const server = await startFileServer(files);
    // A GET whose chunked body carries a second request (request smuggling through the bridge).
    const script = [
      "const s = require('node:net').connect(Number(process.env.AIRLOCK_MIRROR_URL.split(':')[2]), '127.0.0.1');",
      "const inner = 'POST /containers/create HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\n\\r\\n';",
      "s.write('GET /sha256/" +
        sha +
        " HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n' + inner.length.toString(16) + '\\r\\n' + inner + '\\r\\n0\\r\\n\\r\\n');",
      "s.on('data', (d) => process.stdout.write(d)); s.on('close', () => process.exit(0));",
    ].join('\n');
    try {
      const e = await failure(
        runBuild(
          {
            source: { repo: fx.repo, commit: fx.commit },
            builder: { type: 'command', argv: ['node', '-e', script] },
            outputs: ['x'],
          },
          opts({ mirrorUrl: server.url }),
        ),
      );
      expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
      expect(exitCodeFor(e)).toBe(EXIT_CODES.HERMETICITY_VIOLATION);
      expect(e.message).toMatch(
        /mirror bridge refused GET \/sha256\/[0-9a-f]{64}: a request body \(Transfer-Encoding\)/,
      );
      expect(server.requests).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('refuses (exit 2) a spec whose mirror is a UNIX socket of its choosing, e.g. a Docker socket: nothing reaches it', async () => {
    // A stand-in for /var/run/docker.sock: an HTTP server on a UNIX socket that would answer anything.
    const docker = await startFileServer(files, join(dir, 'docker.sock'));
    try {
      const e = await failure(runBuild(spec(`/sha256/${sha}`, `unix:${join(dir, 'docker.sock')}`), opts()));
      expect(e.code).toBe('RUNNER_SPEC_INVALID');
      expect(exitCodeFor(e)).toBe(EXIT_CODES.SPEC_ERROR);
      expect(e.message).toMatch(/mirror/);
      expect(docker.requests).toEqual([]);
    } finally {
      await docker.close();
    }
  });

  it('refuses (exit 2) a spec naming an http mirror the operator did not approve, with or without an operator mirror', async () => {
    const approved = await startFileServer(files);
    const other = await startFileServer(files);
    try {
      for (const extra of [{}, { mirrorUrl: approved.url }]) {
        const e = await failure(runBuild(spec(`/sha256/${sha}`, other.url), opts(extra)));
        expect(e.code).toBe('RUNNER_SPEC_INVALID');
        expect(exitCodeFor(e)).toBe(EXIT_CODES.SPEC_ERROR);
        expect(e.message).toContain(`mirror.url: '${other.url}' is not a mirror the operator approved`);
      }
      expect(other.requests).toEqual([]);
      expect(approved.requests).toEqual([]);
    } finally {
      await approved.close();
      await other.close();
    }
  });

  it('reports an unreachable mirror before building', async () => {
    const e = await failure(runBuild(spec('/x'), opts({ mirrorUrl: 'http://127.0.0.1:9' })));
    expect(e.code).toBe('RUNNER_MIRROR_UNAVAILABLE');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.UNAVAILABLE);
  });
});

describe.runIf(enabled)('runBuild: credentials never reach a build through the spec env', () => {
  let fx: FixtureRepo;
  const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.runner-identity-token.c2lnbmF0dXJl';
  beforeAll(() => {
    fx = makeFixtureRepo('mirror-fetch', join(dir, 'env'));
  });
  const envSpec = (env: string[]): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv: ['sh', '-c', 'env > "$AIRLOCK_OUTPUT_DIR/env.txt"'] },
    outputs: ['env.txt'],
    env,
  });
  const hostEnv = { SIGSTORE_ID_TOKEN: TOKEN, MY_API_KEY: 'k-123', DEPLOY_TOKEN: TOKEN, BUILD_FLAVOR: 'release' };

  it("refuses (exit 2) a spec naming the runner's own SIGSTORE_ID_TOKEN, even when the operator passes it; the message names the variable, never its value", async () => {
    for (const passEnv of [[], ['SIGSTORE_ID_TOKEN']]) {
      const e = await failure(runBuild(envSpec(['BUILD_FLAVOR', 'SIGSTORE_ID_TOKEN']), opts({ hostEnv, passEnv })));
      expect(e.code).toBe('RUNNER_SPEC_INVALID');
      expect(exitCodeFor(e)).toBe(EXIT_CODES.SPEC_ERROR);
      expect(e.message).toContain('SIGSTORE_ID_TOKEN');
      expect(e.message).not.toContain(TOKEN);
      expect(JSON.stringify(e.details ?? {})).not.toContain(TOKEN);
    }
  });

  it('refuses credential-like names unless the operator passes them (--pass-env), and never a value equal to the identity token', async () => {
    for (const name of [
      'MY_API_KEY',
      'github_token',
      'DB_PASSWORD',
      'CLIENT_SECRET',
      'AWS_REGION',
      'ACTIONS_RUNTIME_URL',
    ]) {
      const e = await failure(runBuild(envSpec([name]), opts({ hostEnv: { ...hostEnv, [name]: 'v' } })));
      expect(e.code, name).toBe('RUNNER_SPEC_INVALID');
      expect(e.message).toContain(`'${name}'`);
      expect(e.message).toContain('--pass-env');
    }
    const ok = await runBuild(envSpec(['BUILD_FLAVOR', 'MY_API_KEY']), opts({ hostEnv, passEnv: ['MY_API_KEY'] }));
    const seen = readFileSync(ok.artifacts[0]!.path, 'utf8');
    expect(seen).toContain('MY_API_KEY=k-123');
    expect(seen).toContain('BUILD_FLAVOR=release');
    expect(seen).not.toContain(TOKEN);
    const e = await failure(
      runBuild(envSpec(['DEPLOY_TOKEN']), opts({ hostEnv, passEnv: ['DEPLOY_TOKEN'], withheldValues: [TOKEN] })),
    );
    expect(e.code).toBe('RUNNER_SPEC_INVALID');
    expect(e.message).toContain("'DEPLOY_TOKEN'");
    expect(e.message).not.toContain(TOKEN);
  });
});
