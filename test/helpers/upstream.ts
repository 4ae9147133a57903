/**
 * The "outside world" of the mirror end-to-end tests (test/mirror-*.test.ts), built by the tests on loopback from
 * the fixture sources in fixtures/mirror/:
 *  - an npm-registry-shaped server at the root (full packuments with `versions[v].dist.{tarball,integrity,shasum}`,
 *    `dist-tags`, `time`; tarballs made by the real `npm pack`; scoped names in every encoding),
 *  - a PyPI simple index under `/simple/` (PEP 691 JSON with content negotiation and `Vary: Accept`, PEP 503 HTML
 *    with `#sha256=` fragments, `data-requires-python` and PEP 658/714 core metadata; one project HTML-only like
 *    an old index), serving wheels and sdists built locally from fixtures/mirror/pypi by a stdlib-only backend,
 *  - plain files under `/files/`.
 * Routing and hit counting come from the shared loopback upstream (@airlock/testkit `startUpstream`).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { npm, startUpstream, toolProblem, toolsAvailable, type PackedPackage, type Upstream } from '@airlock/testkit';
import { REPO_ROOT } from './cli.js';

export const FIXTURES = join(REPO_ROOT, 'fixtures', 'mirror');
export const PUBLISHED_AT = '2024-03-04T05:06:07.000Z';

export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/**
 * Is a system tool there? Returns a reason to skip when it is not (printed), and throws instead when the run demands
 * every tool (AIRLOCK_REQUIRE_TOOLS=1, as CI sets it): the shared gate, for tests that skip per tool.
 */
export function missingTool(cmd: string, args: string[], what: string): string | undefined {
  const problem = toolProblem(cmd, args);
  return problem === undefined || toolsAvailable(what, [problem]) ? undefined : problem;
}

// ---------------------------------------------------------------------------------------------------------------
// npm fixtures

export interface NpmFixtureSpec {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  bin?: Record<string, string>;
  /** Adds a `data.txt` of this many pseudo-random hex characters (a bigger tarball). */
  padBytes?: number;
}

export interface NpmFixtureSet {
  project: { name: string; dependencies: Record<string, string> };
  packages: NpmFixtureSpec[];
}

export function loadNpmFixtureSet(): NpmFixtureSet {
  return JSON.parse(readFileSync(join(FIXTURES, 'npm-packages.json'), 'utf8')) as NpmFixtureSet;
}

/** What a package's index.js exports: its own id and its dependencies' exports (so one require walks the graph). */
function indexJs(spec: NpmFixtureSpec): string {
  const deps = Object.keys({ ...spec.dependencies, ...spec.peerDependencies });
  const opt = Object.keys(spec.optionalDependencies ?? {});
  return [
    '#!/usr/bin/env node',
    "'use strict';",
    `const deps = {};`,
    ...deps.map((d) => `deps[${JSON.stringify(d)}] = require(${JSON.stringify(d)});`),
    ...opt.map(
      (d) =>
        `try { deps[${JSON.stringify(d)}] = require(${JSON.stringify(d)}); } catch { deps[${JSON.stringify(d)}] = null; }`,
    ),
    `module.exports = { id: ${JSON.stringify(`${spec.name}@${spec.version}`)}, deps };`,
    `if (require.main === module) console.log(module.exports.id);`,
    '',
  ].join('\n');
}

/** Deterministic filler that gzip cannot shrink much. */
function padding(n: number, seed: string): string {
  let out = '';
  let h = createHash('sha256').update(seed).digest();
  while (out.length < n) {
    out += h.toString('hex');
    h = createHash('sha256').update(h).digest();
  }
  return out.slice(0, n);
}

/** Writes every fixture package into `work/npm-src/` and packs them all with ONE real `npm pack` run. */
export async function packNpmFixtures(work: string, specs: readonly NpmFixtureSpec[]): Promise<PackedPackage[]> {
  const dirs: string[] = [];
  for (const spec of specs) {
    const dir = join(work, 'npm-src', `${spec.name.replace('/', '__')}@${spec.version}`);
    mkdirSync(dir, { recursive: true });
    const { padBytes, ...fields } = spec;
    const manifest: Record<string, unknown> = {
      ...fields,
      description: `airlock mirror fixture ${spec.name}`,
      main: 'index.js',
      license: 'MIT',
      files: ['index.js', ...(padBytes ? ['data.txt'] : [])],
    };
    writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
    writeFileSync(join(dir, 'index.js'), indexJs(spec));
    if (padBytes) writeFileSync(join(dir, 'data.txt'), padding(padBytes, spec.name));
    dirs.push(dir);
  }
  const out = join(work, 'npm-packed');
  mkdirSync(out, { recursive: true });
  const home = join(work, 'npm-home');
  mkdirSync(home, { recursive: true });
  const info = JSON.parse(await npm(['pack', '--json', '--pack-destination', out, ...dirs], work, home)) as {
    name: string;
    version: string;
    filename: string;
    integrity: string;
    shasum: string;
  }[];
  if (info.length !== specs.length)
    throw new Error(`npm pack made ${info.length} tarballs for ${specs.length} packages`);
  return info.map((i, k) => {
    const manifest = JSON.parse(readFileSync(join(dirs[k]!, 'package.json'), 'utf8')) as Record<string, unknown>;
    const tarball = readFileSync(join(out, i.filename.replace(/^.*\//, '')));
    if (i.name !== specs[k]!.name || createHash('sha1').update(tarball).digest('hex') !== i.shasum)
      throw new Error(`npm pack output does not match ${specs[k]!.name}`);
    return {
      name: i.name,
      version: i.version,
      filename: i.filename,
      tarball,
      integrity: i.integrity,
      shasum: i.shasum,
      manifest,
    };
  });
}

/** Registry-convention tarball path (scope kept in the path, not in the file name). */
export function npmTarballPath(p: { name: string; version: string }): string {
  return `${p.name}/-/${p.name.slice(p.name.lastIndexOf('/') + 1)}-${p.version}.tgz`;
}

/**
 * Writes the fixture project and makes its lockfile with the real npm against the upstream
 * (`npm install --package-lock-only`): `resolved` and `integrity` are whatever npm records.
 */
export async function writeFixtureProject(
  dir: string,
  work: string,
  registry: string,
  project: NpmFixtureSet['project'],
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify(
      { name: project.name, version: '1.0.0', private: true, dependencies: project.dependencies },
      null,
      2,
    ) + '\n',
  );
  const home = join(work, 'npm-home');
  mkdirSync(home, { recursive: true });
  await npm(
    ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', `--registry=${registry}`],
    dir,
    home,
  );
  return join(dir, 'package-lock.json');
}

// ---------------------------------------------------------------------------------------------------------------
// PyPI fixtures

export interface PyDist {
  kind: 'wheel' | 'sdist';
  project: string;
  version: string;
  requiresPython: string | null;
  filename: string;
  bytes: Buffer;
  sha256: string;
  /** PEP 658 core metadata (wheels only). */
  metadata?: Buffer;
}

const execFileAsync = promisify(execFile);

/** Builds the wheels + sdists of fixtures/mirror/pypi/* with the stdlib-only backend there. */
export async function buildPythonFixtures(
  work: string,
  projects = ['airlock-fx-words', 'airlock-fx-greeting'],
): Promise<PyDist[]> {
  const out = join(work, 'py-dist');
  const { stdout } = await execFileAsync(
    'python3',
    [join(FIXTURES, 'pypi', 'build_dists.py'), out, ...projects.map((p) => join(FIXTURES, 'pypi', p))],
    {
      env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1' },
    },
  );
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const r = JSON.parse(line) as {
        kind: 'wheel' | 'sdist';
        project: string;
        version: string;
        requiresPython: string | null;
        filename: string;
        path: string;
      };
      const bytes = readFileSync(r.path);
      return {
        kind: r.kind,
        project: r.project,
        version: r.version,
        requiresPython: r.requiresPython,
        filename: r.filename,
        bytes,
        sha256: sha256Hex(bytes),
        ...(r.kind === 'wheel' ? { metadata: readFileSync(`${r.path}.metadata`) } : {}),
      };
    });
}

/** A hash-pinned requirements.txt (every file of each project pinned, as `pip-compile --generate-hashes` does). */
export function requirementsTxt(dists: readonly PyDist[]): string {
  const byProject = new Map<string, PyDist[]>();
  for (const d of dists) byProject.set(d.project, [...(byProject.get(d.project) ?? []), d]);
  return [...byProject.values()]
    .map(
      (ds) =>
        `${ds[0]!.project}==${ds[0]!.version} \\\n${ds.map((d) => `    --hash=sha256:${d.sha256}`).join(' \\\n')}\n`,
    )
    .join('');
}

export const normalizePypiName = (n: string): string => n.replace(/[-_.]+/g, '-').toLowerCase();

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// ---------------------------------------------------------------------------------------------------------------
// The upstream server

export interface FixtureUpstreamOptions {
  npm?: readonly PackedPackage[];
  pypi?: readonly PyDist[];
  /** Projects whose pages are PEP 503 HTML whatever the client accepts (an older index). */
  htmlOnlyProjects?: readonly string[];
  files?: Record<string, Buffer>;
}

export interface FixtureUpstream {
  url: string;
  /** npm registry base, with its trailing slash. */
  npmRegistry: string;
  /** PEP 503/691 index base, without a trailing slash. */
  pypiIndex: string;
  fileUrl(name: string): string;
  hits(path: string): number;
  totalHits(): number;
  close(): Promise<void>;
}

function wantsJson(req: IncomingMessage): boolean {
  // Enough content negotiation for pip and the sync job: JSON when offered with a non-zero q.
  return (req.headers.accept ?? '')
    .split(',')
    .map((p) => p.trim().split(';'))
    .some(
      ([type, ...params]) =>
        type === 'application/vnd.pypi.simple.v1+json' && !params.some((q) => /^\s*q=0(\.0*)?\s*$/.test(q)),
    );
}

function send(res: ServerResponse, type: string, body: string | Buffer): void {
  res.setHeader('content-type', type);
  res.setHeader('vary', 'Accept');
  res.end(body);
}

export async function startFixtureUpstream(opts: FixtureUpstreamOptions): Promise<FixtureUpstream> {
  const up: Upstream = await startUpstream();
  // At the root, like registry.npmjs.org: npm's --replace-registry-host keeps the resolved URL's path, so a
  // lockfile made against a registry under a path prefix would ask the mirror for `<prefix>/<name>/-/<file>`.
  const npmBase = `${up.url}/`;

  // npm: one packument per name with every version, tarballs at the registry-convention path.
  const byName = new Map<string, PackedPackage[]>();
  for (const p of opts.npm ?? []) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
  for (const [name, versions] of byName) {
    const sorted = [...versions].sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
    const packument = {
      _id: name,
      name,
      description: `airlock mirror fixture ${name}`,
      'dist-tags': { latest: sorted.at(-1)!.version },
      versions: Object.fromEntries(
        sorted.map((p) => [
          p.version,
          {
            ...p.manifest,
            _id: `${name}@${p.version}`,
            readme: 'Not needed by installers; the mirror may drop it.',
            maintainers: [{ name: 'fixture', email: 'fixture@example.invalid' }],
            dist: {
              tarball: `${npmBase}${npmTarballPath(p)}`,
              integrity: p.integrity,
              shasum: p.shasum,
              fileCount: 2,
              unpackedSize: p.tarball.length,
            },
          },
        ]),
      ),
      time: {
        created: PUBLISHED_AT,
        modified: PUBLISHED_AT,
        ...Object.fromEntries(sorted.map((p) => [p.version, PUBLISHED_AT])),
      },
    };
    // Upstream decodes the path, so this route answers /@scope/name, /@scope%2fname and /@scope%2Fname.
    up.file(`/${name}`, JSON.stringify(packument), 'application/json');
    for (const p of sorted) up.file(`/${npmTarballPath(p)}`, p.tarball, 'application/octet-stream');
  }

  // PyPI simple: files under /packages/<aa>/<bb>/<filename> like pypi.org's files host.
  const byProject = new Map<string, PyDist[]>();
  for (const d of opts.pypi ?? [])
    byProject.set(normalizePypiName(d.project), [...(byProject.get(normalizePypiName(d.project)) ?? []), d]);
  const fileUrl = (d: PyDist): string =>
    `${up.url}/packages/${d.sha256.slice(0, 2)}/${d.sha256.slice(2, 4)}/${d.filename}`;
  const htmlOnly = new Set((opts.htmlOnlyProjects ?? []).map(normalizePypiName));
  for (const [project, dists] of byProject) {
    for (const d of dists) {
      up.file(new URL(fileUrl(d)).pathname, d.bytes);
      if (d.metadata) up.file(`${new URL(fileUrl(d)).pathname}.metadata`, d.metadata, 'text/plain');
    }
    const json = JSON.stringify({
      meta: { 'api-version': '1.1' },
      name: project,
      versions: [...new Set(dists.map((d) => d.version))],
      files: dists.map((d) => ({
        filename: d.filename,
        url: fileUrl(d),
        hashes: { sha256: d.sha256 },
        'requires-python': d.requiresPython ?? undefined,
        ...(d.metadata ? { 'core-metadata': { sha256: sha256Hex(d.metadata) } } : {}),
        size: d.bytes.length,
        'upload-time': PUBLISHED_AT,
        yanked: false,
      })),
    });
    const html =
      '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>Links for ' +
      project +
      '</title></head><body>\n' +
      dists
        .map((d) => {
          const attrs = [`href="${escapeHtml(`${fileUrl(d)}#sha256=${d.sha256}`)}"`];
          if (d.requiresPython) attrs.push(`data-requires-python="${escapeHtml(d.requiresPython)}"`);
          if (d.metadata) {
            const m = `sha256=${sha256Hex(d.metadata)}`;
            attrs.push(`data-core-metadata="${m}"`, `data-dist-info-metadata="${m}"`);
          }
          return `<a ${attrs.join(' ')}>${escapeHtml(d.filename)}</a><br/>`;
        })
        .join('\n') +
      '\n</body></html>\n';
    up.route(`/simple/${project}/`, (req, res) => {
      if (!htmlOnly.has(project) && wantsJson(req)) send(res, 'application/vnd.pypi.simple.v1+json', json);
      else send(res, 'text/html; charset=utf-8', html);
    });
  }
  up.route('/simple/', (req, res) => {
    const names = [...byProject.keys()];
    if (wantsJson(req))
      send(
        res,
        'application/vnd.pypi.simple.v1+json',
        JSON.stringify({ meta: { 'api-version': '1.1' }, projects: names.map((name) => ({ name })) }),
      );
    else
      send(
        res,
        'text/html; charset=utf-8',
        `<!DOCTYPE html><html><body>${names.map((n) => `<a href="/simple/${n}/">${n}</a>`).join('\n')}</body></html>\n`,
      );
  });

  for (const [name, body] of Object.entries(opts.files ?? {})) up.file(`/files/${name}`, body);

  return {
    url: up.url,
    npmRegistry: npmBase,
    pypiIndex: `${up.url}/simple`,
    fileUrl: (name) => `${up.url}/files/${name}`,
    hits: (path) => up.hits(path),
    totalHits: () => up.totalHits(),
    close: () => up.close(),
  };
}
