import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorStore } from '@airlock/cas';
import { toolProblem, toolsAvailable } from '@airlock/testkit';
import { startMirrorServer, type RunningMirrorServer } from '../src/index.js';
import { openStore, populateFromManifest, pypiFiles, removeDir, sha256, tempDir } from './helpers/populate.js';
import { run } from './helpers/spawn.js';
import { cleanEnv } from './helpers/tools.js';

interface WheelSpec {
  project: string;
  version: string;
  module: string;
  code: string;
  requires?: string[];
  requiresPython?: string;
}

// Writes the zip with Python's own zipfile (a wheel is a zip with METADATA, WHEEL and RECORD in .dist-info).
const ZIP_SCRIPT = `
import json, sys, zipfile
spec = json.load(sys.stdin)
with zipfile.ZipFile(spec["out"], "w", zipfile.ZIP_DEFLATED) as z:
    for name, content in spec["files"]:
        z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
`;

function b64nopad(data: string): string {
  return createHash('sha256').update(data).digest('base64url');
}

/** Builds a minimal pure-Python wheel; returns its bytes, file name and core metadata (PEP 658). */
function buildWheel(dir: string, spec: WheelSpec): { bytes: Buffer; filename: string; metadata: Buffer } {
  const dist = spec.project.replace(/[-.]+/g, '_');
  const distInfo = `${dist}-${spec.version}.dist-info`;
  const metadata = [
    'Metadata-Version: 2.1',
    `Name: ${spec.project}`,
    `Version: ${spec.version}`,
    ...(spec.requiresPython ? [`Requires-Python: ${spec.requiresPython}`] : []),
    ...(spec.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    '',
  ].join('\n');
  const files: [string, string][] = [
    [`${spec.module}/__init__.py`, spec.code],
    [`${distInfo}/METADATA`, metadata],
    [`${distInfo}/WHEEL`, 'Wheel-Version: 1.0\nGenerator: airlock-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n'],
  ];
  const record = [
    ...files.map(([n, c]) => `${n},sha256=${b64nopad(c)},${Buffer.byteLength(c)}`),
    `${distInfo}/RECORD,,`,
    '',
  ].join('\n');
  files.push([`${distInfo}/RECORD`, record]);
  const filename = `${dist}-${spec.version}-py3-none-any.whl`;
  const out = join(dir, filename);
  const r = spawnSync('python3', ['-c', ZIP_SCRIPT], { input: JSON.stringify({ out, files }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building ${filename} failed: ${r.stderr}`);
  return { bytes: readFileSync(out), filename, metadata: Buffer.from(metadata) };
}

describe('real pip client against the mirror', () => {
  const available = toolsAvailable('real pip client against the mirror', [
    toolProblem('python3', ['-m', 'pip', '--version']),
  ]);
  let dir: string;
  let store: MirrorStore;
  let server: RunningMirrorServer;
  const requests: string[] = [];
  const serverErrors: unknown[] = [];
  let app: ReturnType<typeof buildWheel>;
  let dep: ReturnType<typeof buildWheel>;

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir();
    mkdirSync(join(dir, 'wheels'));
    app = buildWheel(join(dir, 'wheels'), {
      project: 'Airlock.Fixture',
      version: '1.0.0',
      module: 'airlock_fixture',
      code: 'from airlock_fixture_dep import VALUE\nGREETING = "hello from the mirror " + VALUE\n',
      requires: ['airlock-fixture-dep>=0.1'],
      requiresPython: '>=3.7',
    });
    dep = buildWheel(join(dir, 'wheels'), {
      project: 'airlock-fixture-dep',
      version: '0.1.0',
      module: 'airlock_fixture_dep',
      code: 'VALUE = "dep 0.1.0"\n',
    });
    const newerYanked = buildWheel(join(dir, 'wheels'), {
      project: 'airlock-fixture-dep',
      version: '0.2.0',
      module: 'airlock_fixture_dep',
      code: 'VALUE = "yanked"\n',
    });
    store = await openStore(dir);
    await populateFromManifest(store, [
      ...pypiFiles(app.bytes, {
        project: 'Airlock.Fixture',
        version: '1.0.0',
        filename: app.filename,
        requiresPython: '>=3.7',
        metadata: app.metadata,
      }),
      ...pypiFiles(dep.bytes, {
        project: 'airlock-fixture-dep',
        version: '0.1.0',
        filename: dep.filename,
        metadata: dep.metadata,
      }),
      ...pypiFiles(newerYanked.bytes, {
        project: 'airlock-fixture-dep',
        version: '0.2.0',
        filename: newerYanked.filename,
        yanked: 'bad release',
      }),
    ]);
    server = await startMirrorServer({ store, onError: (err) => serverErrors.push(err) });
    server.server.on('request', (req) => requests.push(`${req.method} ${req.url} ${String(req.headers.accept ?? '')}`));
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    if (dir) removeDir(dir);
  });

  const pip = (args: string[]) =>
    run(
      'python3',
      ['-m', 'pip', ...args, '--no-cache-dir', '--isolated', '--disable-pip-version-check', '--no-input'],
      {
        cwd: dir,
        env: cleanEnv({ PIP_NO_INPUT: '1' }),
        timeoutMs: 180_000,
      },
    );

  it.skipIf(!available)('pip install --require-hashes of a wheel and its dependency (PEP 691 JSON)', async () => {
    const reqs = join(dir, 'requirements.txt');
    writeFileSync(
      reqs,
      `airlock-fixture==1.0.0 --hash=sha256:${sha256(app.bytes)}\nairlock-fixture-dep==0.1.0 --hash=sha256:${sha256(dep.bytes)}\n`,
    );
    const target = join(dir, 'target');
    const r = await pip([
      'install',
      '--target',
      target,
      '--index-url',
      `${server.url}/simple/`,
      '--require-hashes',
      '-r',
      reqs,
    ]);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(readFileSync(join(target, 'airlock_fixture', '__init__.py'), 'utf8')).toContain('hello from the mirror');
    expect(readFileSync(join(target, 'airlock_fixture_dep', '__init__.py'), 'utf8')).toBe('VALUE = "dep 0.1.0"\n');
    const check = spawnSync('python3', ['-c', 'import airlock_fixture; print(airlock_fixture.GREETING)'], {
      env: { ...cleanEnv(), PYTHONPATH: target },
      encoding: 'utf8',
    });
    expect(check.stdout.trim()).toBe('hello from the mirror dep 0.1.0');
    // pip normalised the name itself and negotiated PEP 691 JSON.
    expect(requests.some((r) => r.startsWith('GET /simple/airlock-fixture/ application/vnd.pypi.simple.v1+json'))).toBe(
      true,
    );
    expect(requests.some((r) => r.startsWith(`GET /files/${sha256(app.bytes)}/${app.filename}`))).toBe(true);
    expect(serverErrors).toEqual([]);
  });

  it.skipIf(!available)(
    'pip download resolves the dependency through PEP 658 metadata and skips the yanked newer version',
    async () => {
      const dest = join(dir, 'downloads');
      const r = await pip([
        'download',
        '--dest',
        dest,
        '--index-url',
        `${server.url}/simple/`,
        '--only-binary',
        ':all:',
        'airlock-fixture',
      ]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(readFileSync(join(dest, dep.filename))).toEqual(dep.bytes);
      expect(readFileSync(join(dest, app.filename))).toEqual(app.bytes);
      // Resolution used PEP 658 core metadata (verified by pip against core-metadata.sha256) before the wheels.
      expect(requests.some((r) => r.startsWith(`GET /files/${sha256(dep.bytes)}/${dep.filename}.metadata`))).toBe(true);
    },
  );

  it.skipIf(!available)('pip refuses when the requirement hash does not match what the mirror serves', async () => {
    const reqs = join(dir, 'bad-requirements.txt');
    writeFileSync(reqs, `airlock-fixture-dep==0.1.0 --hash=sha256:${'0'.repeat(64)}\n`);
    const r = await pip([
      'install',
      '--target',
      join(dir, 'target-bad'),
      '--index-url',
      `${server.url}/simple/`,
      '--require-hashes',
      '-r',
      reqs,
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/HASHES|hash/i);
  });
});
