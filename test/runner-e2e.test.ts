/**
 * Issue 4 acceptance through the CLI: `airlock up` → `airlock sync` (an npm lockfile of 30+ packages and a pinned
 * generic file, from a loopback fixture upstream) → `airlock mirror import` → `airlock mirror serve` → the upstream
 * stops → `airlock run` builds commits of a local git repository in the sandbox, with the mirror as the only
 * endpoint:
 *   - a command build that fetches the generic file from the mirror and derives an artifact from it,
 *   - an npm project (`npm ci` from the mirror, then its build script), with the rebuild check.
 * Each yields artifacts, two bundles that verify with stock @sigstore/verify against the trusted root and the
 * runner's identity, and log entries; provenance subjects equal the artifacts' sha256, and every mirror blob in
 * resolvedDependencies exists in the snapshot named (checked against the signed transfer manifest itself).
 *   - `pip install --require-hashes` of two projects from the mirror's PEP 503/691 index through the bridge
 *     (relative file links), and `npm install` of a package by name (packument `dist.tarball` built from the
 *     request's own Host, so it points back through the bridge),
 *   - a `Range: bytes=0-` fetch, which the bridge strips so the blob is still recorded in provenance.
 * Negative: a branch-only spec (exit 2), a build that reaches for the network (exit 11), and specs that try to
 * choose a mirror, a credential or a registry the operator did not allow (exit 2).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleVerifier } from '@airlock/verify';
import {
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
} from './helpers/upstream-e2e.js';
import {
  buildPythonFixtures,
  loadNpmFixtureSet,
  missingTool,
  packNpmFixtures,
  requirementsTxt,
  sha256Hex,
  startFixtureUpstream,
  writeFixtureProject,
  type FixtureUpstream,
  type PyDist,
} from './helpers/upstream.js';
import { toolsAvailable, which } from './helpers/netns.js';

const GENERIC = Buffer.from(Array.from({ length: 2048 }, (_, i) => `pinned tool line ${i}\n`).join(''));
const GENERIC_SHA = sha256Hex(GENERIC);

const enabled = toolsAvailable('runner e2e (bwrap sandbox, strace monitor, git, npm)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('strace') ? undefined : 'strace is not installed',
  which('git') ? undefined : 'git is not installed',
  which('npm') ? undefined : 'npm is not installed',
  missingTool('python3', ['-m', 'pip', '--version'], 'python3 -m pip'),
]);

let root: string;
let plane: CliPlane | undefined;
let upstream: FixtureUpstream | undefined;
let mirror: RunningMirror | undefined;
let manifest: { snapshot: { id: string }; entries: { ecosystem: string; name: string; digests: { sha256: string } }[] };
let repo: string;
let commit: string;
let dists: PyDist[] = [];

interface RunJson {
  ok: boolean;
  error?: { code: string; message: string };
  artifacts: {
    name: string;
    path: string;
    sha256: string;
    provenance: { statement: string; bundle: string; logIndex: string };
    sbom: { statement: string; bundle: string; logIndex: string };
  }[];
  reproducibility: string;
  mirror?: { snapshotId?: string; dependencies: number };
  verified: boolean;
}

function git(args: string[], cwd: string): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: root,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
      GIT_AUTHOR_DATE: '2026-01-02T03:04:05Z',
      GIT_COMMITTER_DATE: '2026-01-02T03:04:05Z',
    },
  }).trim();
}

async function readManifest(bundle: string): Promise<typeof manifest> {
  const entry = (await readTar(bundle)).find((e) => e.name === 'manifest.json');
  if (!entry) throw new Error(`${bundle} has no manifest.json`);
  return JSON.parse(entry.body.toString('utf8')) as typeof manifest;
}

function writeSpec(name: string, spec: Record<string, unknown>): string {
  const path = join(root, `${name}.json`);
  writeFileSync(path, JSON.stringify(spec, null, 2));
  return path;
}

const runArgs = (spec: string, out: string): string[] => [
  'run',
  '--spec',
  spec,
  '--out',
  out,
  '--data',
  plane!.dir,
  '--mirror',
  mirror!.url,
  '--work-root',
  join(root, 'work'),
  '--json',
];

describe.skipIf(!enabled)('airlock run e2e: mirror-fed hermetic builds, signed and verified (CLI)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-run-e2e-'));
    // As root the sandbox runs as an unprivileged host uid, which must traverse the work root.
    chmodSync(root, 0o711);
    plane = await startPlane(join(root, 'plane'));
    const fixtureSet = loadNpmFixtureSet();
    const packed = await packNpmFixtures(root, fixtureSet.packages);
    dists = await buildPythonFixtures(root);
    upstream = await startFixtureUpstream({
      npm: packed,
      pypi: dists,
      htmlOnlyProjects: ['airlock-fx-words'],
      files: { 'tool-1.0.tar.gz': GENERIC },
    });

    // The project repository: an npm app with a build script, and a command build over the generic file.
    repo = join(root, 'repo');
    await writeFixtureProject(join(repo, 'app'), root, upstream.npmRegistry, fixtureSet.project);
    writeFileSync(
      join(repo, 'app', 'build.js'),
      [
        "'use strict';",
        "const { writeFileSync } = require('node:fs');",
        "const pkg = require('./package.json');",
        'const out = {};',
        'for (const name of Object.keys(pkg.dependencies).sort()) out[name] = require(name);',
        "writeFileSync(process.env.AIRLOCK_OUTPUT_DIR + '/app.json', JSON.stringify(out, null, 2) + '\\n');",
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(repo, 'fetch-tool.js'),
      [
        "'use strict';",
        "const { get } = require('node:http');",
        "const { createHash } = require('node:crypto');",
        "const { writeFileSync } = require('node:fs');",
        'const [hex] = process.argv.slice(2);',
        "get(process.env.AIRLOCK_MIRROR_URL + '/blobs/sha256/' + hex, (res) => {",
        "  if (res.statusCode !== 200) { console.error('mirror answered ' + res.statusCode); process.exit(1); }",
        '  const chunks = [];',
        "  res.on('data', (c) => chunks.push(c));",
        "  res.on('end', () => {",
        '    const body = Buffer.concat(chunks);',
        "    if (createHash('sha256').update(body).digest('hex') !== hex) { console.error('digest mismatch'); process.exit(1); }",
        "    writeFileSync(process.env.AIRLOCK_OUTPUT_DIR + '/tool.tar.gz', body);",
        "    writeFileSync(process.env.AIRLOCK_OUTPUT_DIR + '/tool.lines', String(body.toString().split('\\n').length) + '\\n');",
        '  });',
        "}).on('error', (e) => { console.error(e.message); process.exit(1); });",
        '',
      ].join('\n'),
    );
    mkdirSync(join(repo, 'py'), { recursive: true });
    writeFileSync(join(repo, 'py', 'requirements.txt'), requirementsTxt(dists));
    writeFileSync(
      join(repo, 'fetch-range.js'),
      [
        "'use strict';",
        "const { get } = require('node:http');",
        'const [hex] = process.argv.slice(2);',
        "get(process.env.AIRLOCK_MIRROR_URL + '/blobs/sha256/' + hex, { headers: { Range: 'bytes=0-' } }, (res) => {",
        "  const out = require('node:fs').createWriteStream(process.env.AIRLOCK_OUTPUT_DIR + '/tool.tar.gz');",
        '  res.pipe(out);',
        "  out.on('close', () => process.exit(res.statusCode === 200 || res.statusCode === 206 ? 0 : 1));",
        "}).on('error', (e) => { console.error(e.message); process.exit(1); });",
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(repo, 'reach-out.js'),
      "require('node:net').connect(443, '1.1.1.1').on('error', () => process.exit(0)).on('connect', () => process.exit(0));\n",
    );
    git(['init', '-q', '-b', 'main'], repo);
    git(['add', '-A'], repo);
    git(['commit', '-q', '-m', 'fixture'], repo);
    commit = git(['rev-parse', 'HEAD'], repo);

    writeFileSync(
      join(root, 'list.json'),
      JSON.stringify([{ url: upstream.fileUrl('tool-1.0.tar.gz'), sha256: GENERIC_SHA }]),
    );
    const bundle = join(root, 'b1.tar');
    const s = await runCliJson([
      'sync',
      '--npm-lock',
      join(repo, 'app', 'package-lock.json'),
      '--requirements',
      join(repo, 'py', 'requirements.txt'),
      '--pypi-index',
      upstream.pypiIndex,
      '--list',
      join(root, 'list.json'),
      '--out',
      bundle,
      '--data',
      plane.dir,
      '--json',
    ]);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const imp = await runCliJson(importArgs(bundle, join(root, 'store'), plane));
    expect(imp.code, imp.stdout + imp.stderr).toBe(0);
    manifest = await readManifest(bundle);
    mirror = await startMirror(join(root, 'store'));
    // From here on nothing but the mirror has the dependencies.
    await upstream.close();
    upstream = undefined;
  }, 300_000);

  afterAll(async () => {
    await mirror?.stop();
    await upstream?.close();
    await plane?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Verifies both bundles of every artifact with stock @sigstore/verify and checks provenance against the manifest. */
  async function checkSigned(result: RunJson): Promise<void> {
    const verifier = new BundleVerifier(JSON.parse(readFileSync(join(plane!.dir, 'trusted_root.json'), 'utf8')));
    const policy = {
      issuer: plane!.endpoints.identityIssuerUrl,
      subject: `spiffe://${plane!.endpoints.trustDomain}/airlock/runner`,
    };
    const mirrorBlobs = new Set(manifest.entries.map((e) => e.digests.sha256));
    for (const a of result.artifacts) {
      const bytes = readFileSync(a.path);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(a.sha256);
      const prov = verifier.verify(JSON.parse(readFileSync(a.provenance.bundle, 'utf8')), {
        artifact: bytes,
        policy,
        expectedPredicateType: 'https://slsa.dev/provenance/v1',
      });
      const sbom = verifier.verify(JSON.parse(readFileSync(a.sbom.bundle, 'utf8')), {
        artifact: bytes,
        policy,
        expectedPredicateType: 'https://cyclonedx.org/bom',
      });
      expect(prov.tlogEntries.length).toBeGreaterThan(0);
      expect(sbom.tlogEntries.length).toBeGreaterThan(0);
      expect(prov.statement!.subject).toEqual([{ name: a.name, digest: { sha256: a.sha256 } }]);
      // Both entries are in the log at the indexes the CLI reported.
      for (const idx of [a.provenance.logIndex, a.sbom.logIndex]) {
        const r = await fetch(`${plane!.endpoints.tlogUrl}/api/v1/log/entries?logIndex=${idx}`);
        expect(r.status, `log index ${idx}`).toBe(200);
      }
      const predicate = prov.statement!.predicate as {
        buildDefinition: {
          externalParameters: { source: { commit?: string } };
          resolvedDependencies: {
            name?: string;
            uri?: string;
            digest: Record<string, string>;
            annotations?: { role?: string };
          }[];
        };
      };
      const deps = predicate.buildDefinition.resolvedDependencies;
      const snapshot = deps.find((d) => d.name === 'mirror-snapshot');
      expect(snapshot?.digest.sha256).toBe(manifest.snapshot.id.replace(/^sha256:/, ''));
      const fromMirror = deps.filter(
        (d) => d.name !== 'source' && d.name !== 'mirror-snapshot' && d.annotations?.role !== 'toolchain',
      );
      for (const d of fromMirror)
        expect(
          mirrorBlobs.has(d.digest.sha256!),
          `${d.uri} sha256:${d.digest.sha256} is in snapshot ${manifest.snapshot.id}`,
        ).toBe(true);
    }
  }

  it('builds a command build that fetches a pinned file from the mirror; provenance names exactly that blob', async () => {
    const spec = writeSpec('command', {
      source: { repo, commit, ref: 'refs/heads/main' },
      builder: { type: 'command', argv: ['node', 'fetch-tool.js', GENERIC_SHA] },
      outputs: ['tool.tar.gz', 'tool.lines'],
      reproducible: true,
    });
    const r = await runCliJson(runArgs(spec, join(root, 'out-command')));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = r.json as unknown as RunJson;
    expect(result).toMatchObject({
      ok: true,
      reproducibility: 'reproduced',
      verified: true,
      mirror: { snapshotId: manifest.snapshot.id, dependencies: 1 },
    });
    expect(result.artifacts.map((a) => a.name).sort()).toEqual(['tool.lines', 'tool.tar.gz']);
    expect(result.artifacts.find((a) => a.name === 'tool.tar.gz')!.sha256).toBe(GENERIC_SHA);
    await checkSigned(result);
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenance.statement, 'utf8')) as {
      predicate: { buildDefinition: { resolvedDependencies: { uri?: string; digest: { sha256: string } }[] } };
    };
    expect(st.predicate.buildDefinition.resolvedDependencies).toContainEqual(
      expect.objectContaining({ digest: expect.objectContaining({ sha256: GENERIC_SHA }) }),
    );
  }, 180_000);

  it('builds an npm project: npm ci from the mirror alone, then its build script, reproducibly; every package is in provenance', async () => {
    const spec = writeSpec('npm', {
      source: { repo, commit },
      builder: {
        type: 'command',
        argv: [
          'sh',
          '-c',
          'cd app && npm ci --registry="$AIRLOCK_MIRROR_URL/" --replace-registry-host=always --cache /tmp/npm-cache --fetch-retries=0 --no-audit --no-fund --no-update-notifier --loglevel=warn && node build.js',
        ],
      },
      outputs: ['app.json'],
      reproducible: true,
    });
    const r = await runCliJson(runArgs(spec, join(root, 'out-npm')));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = r.json as unknown as RunJson;
    expect(result).toMatchObject({ ok: true, reproducibility: 'reproduced', verified: true });
    const npmEntries = manifest.entries.filter((e) => e.ecosystem === 'npm');
    expect(npmEntries.length).toBeGreaterThanOrEqual(30);
    // Every tarball npm ci installed came through the bridge and is named in provenance.
    expect(result.mirror!.dependencies).toBe(npmEntries.length);
    const app = JSON.parse(readFileSync(result.artifacts[0]!.path, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(app).length).toBeGreaterThan(3);
    await checkSigned(result);
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenance.statement, 'utf8')) as {
      predicate: { buildDefinition: { resolvedDependencies: { uri?: string }[] } };
    };
    const purls = st.predicate.buildDefinition.resolvedDependencies
      .map((d) => d.uri ?? '')
      .filter((u) => u.startsWith('pkg:npm/'));
    expect(purls.length).toBe(npmEntries.length);
    expect(purls.some((p) => p.startsWith('pkg:npm/%40fx-alpha/'))).toBe(true);
  }, 300_000);

  it('pip install --require-hashes inside airlock run resolves and installs from the mirror through the bridge', async () => {
    const spec = writeSpec('pip', {
      source: { repo, commit },
      builder: {
        type: 'command',
        argv: [
          'sh',
          '-c',
          [
            'python3 -m pip install --index-url "$AIRLOCK_MIRROR_URL/simple" --require-hashes -r py/requirements.txt',
            '--target /tmp/site --no-cache-dir --isolated --disable-pip-version-check --no-input --retries 0 --timeout 20',
            '&& PYTHONPATH=/tmp/site PYTHONDONTWRITEBYTECODE=1 python3 -c "import airlock_fx_greeting as g; print(g.__version__, g.greet())" > "$AIRLOCK_OUTPUT_DIR/greet.txt"',
          ].join(' '),
        ],
      },
      outputs: ['greet.txt'],
    });
    const r = await runCliJson(runArgs(spec, join(root, 'out-pip')));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = r.json as unknown as RunJson;
    expect(readFileSync(result.artifacts[0]!.path, 'utf8').trim()).toBe('2.1.0 hello from the air gap');
    // Both wheels came through the bridge and are named in provenance.
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenance.statement, 'utf8')) as {
      predicate: { buildDefinition: { resolvedDependencies: { uri?: string; digest: { sha256?: string } }[] } };
    };
    const got = new Set(st.predicate.buildDefinition.resolvedDependencies.map((d) => d.digest.sha256));
    for (const d of dists.filter((x) => x.kind === 'wheel')) expect(got.has(d.sha256), d.filename).toBe(true);
    await checkSigned(result);
  }, 300_000);

  it('npm install of a package by name inside airlock run fetches the tarballs the packument names, through the bridge', async () => {
    const spec = writeSpec('npm-install', {
      source: { repo, commit },
      builder: {
        type: 'command',
        argv: [
          'sh',
          '-c',
          'mkdir /tmp/p && cd /tmp/p && echo "{}" > package.json && npm install --no-package-lock --registry="$AIRLOCK_MIRROR_URL/" --cache /tmp/npm-cache --fetch-retries=0 --no-audit --no-fund --no-update-notifier --loglevel=warn fx-chain-1 && node -p "require(\'fx-chain-1/package.json\').version" > "$AIRLOCK_OUTPUT_DIR/chain.txt"',
        ],
      },
      outputs: ['chain.txt'],
    });
    const r = await runCliJson(runArgs(spec, join(root, 'out-npm-install')));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = r.json as unknown as RunJson;
    expect(readFileSync(result.artifacts[0]!.path, 'utf8').trim()).toBe('1.0.0');
    // fx-chain-1 … fx-chain-6 and @fx-beta/empty: every tarball recorded.
    expect(result.mirror!.dependencies).toBe(7);
  }, 300_000);

  it('records a blob fetched with `Range: bytes=0-` (the bridge strips the range; the build gets the whole blob)', async () => {
    const spec = writeSpec('range', {
      source: { repo, commit },
      builder: { type: 'command', argv: ['node', 'fetch-range.js', GENERIC_SHA] },
      outputs: ['tool.tar.gz'],
    });
    const r = await runCliJson(runArgs(spec, join(root, 'out-range')));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = r.json as unknown as RunJson;
    expect(result.artifacts[0]!.sha256).toBe(GENERIC_SHA);
    expect(result.mirror).toMatchObject({ dependencies: 1 });
    const st = JSON.parse(readFileSync(result.artifacts[0]!.provenance.statement, 'utf8')) as {
      predicate: { buildDefinition: { resolvedDependencies: { digest: { sha256?: string } }[] } };
    };
    expect(st.predicate.buildDefinition.resolvedDependencies.map((d) => d.digest.sha256)).toContain(GENERIC_SHA);
  }, 120_000);

  it('refuses (exit 2, JSON error) a spec choosing its own mirror, the runner token, or an unconfigured registry', async () => {
    const base = { source: { repo, commit }, builder: { type: 'command', argv: ['true'] }, outputs: ['x'] };
    const cases: [string, Record<string, unknown>, string[], RegExp][] = [
      ['docker-sock', { ...base, mirror: { url: 'unix:/var/run/docker.sock' } }, [], /mirror\.url/],
      ['other-mirror', { ...base, mirror: { url: 'http://127.0.0.1:2375' } }, [], /not a mirror the operator approved/],
      ['token', { ...base, env: ['SIGSTORE_ID_TOKEN'] }, [], /SIGSTORE_ID_TOKEN/],
      ['api-key', { ...base, env: ['NPM_TOKEN'] }, [], /--pass-env NPM_TOKEN/],
      [
        'registry',
        { ...base, image: { type: 'oci', repository: '127.0.0.1:5999/team/app' } },
        ['--registry', '127.0.0.1:5000', '--registry-plain-http'],
        /not one of the registries the operator configured/,
      ],
    ];
    for (const [name, spec, extra, re] of cases) {
      const r = await runCliJson([...runArgs(writeSpec(name, spec), join(root, `out-${name}`)), ...extra]);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.json, name).toMatchObject({ ok: false, error: { code: 'RUNNER_SPEC_INVALID' } });
      expect((r.json as unknown as RunJson).error!.message, name).toMatch(re);
    }
  }, 120_000);

  it('refuses a branch-only spec (exit 2) and fails a build that reaches for the network as a hermeticity violation (exit 11)', async () => {
    const branchOnly = writeSpec('branch', {
      source: { repo, commit: 'main' },
      builder: { type: 'command', argv: ['true'] },
      outputs: ['x'],
    });
    const b = await runCliJson(runArgs(branchOnly, join(root, 'out-branch')));
    expect(b.code, b.stdout + b.stderr).toBe(2);
    expect(b.json).toMatchObject({ ok: false, error: { code: 'RUNNER_SPEC_INVALID' } });
    expect((b.json as unknown as RunJson).error!.message).toMatch(/commit/);

    const reach = writeSpec('reach', {
      source: { repo, commit },
      builder: { type: 'command', argv: ['node', 'reach-out.js'] },
      outputs: ['x'],
    });
    const n = await runCliJson(runArgs(reach, join(root, 'out-reach')));
    expect(n.code, n.stdout + n.stderr).toBe(11);
    expect(n.json).toMatchObject({ ok: false, error: { code: 'RUNNER_HERMETICITY_VIOLATION' } });
    expect((n.json as unknown as RunJson).error!.message).toMatch(/1\.1\.1\.1/);
  }, 120_000);
});
