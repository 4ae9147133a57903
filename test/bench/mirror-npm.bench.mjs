#!/usr/bin/env node
// The same `npm ci` of a ≥ 200-package lockfile from Verdaccio 6 and from `airlock mirror serve`, side by side in
// one run. The packages are generated (225 tarballs: 210 names, two thirds of them scoped, 15 at two versions so
// npm nests copies, a dependency DAG under 12 root dependencies) and served by a loopback npm-registry-shaped
// upstream, from which
//   - the real npm writes the lockfile (`npm install --package-lock-only`),
//   - airlock syncs them (`syncToBundle`, signed through an in-process trust plane, with the CycloneDX SBOM) and
//     imports the bundle (`airlock mirror import`, signature + identity + every blob verified),
//   - Verdaccio 6.8.0 (installed once with npm, exact version, into a cache dir outside the repository, never a
//     project dependency; offline config: no uplinks) receives them through its publish API (what `npm publish`
//     sends), so it serves from its own local storage. If it cannot be installed, it is skipped as a peer (with the
//     reason, in the output and in BENCH_JSON) and airlock is still measured.
// The upstream is then stopped. Each `npm ci` runs with an empty cache (`--cache <fresh dir> --prefer-online`),
// `--no-audit --no-fund`, no node_modules; two lockfiles: with `resolved` (npm fetches tarballs only) and without
// (omit-lockfile-registry-resolved: npm asks for every packument too). Servers alternate order every repetition
// (the machine is shared); medians are reported, with `npm ci --offline` from a warm cache as npm's own floor.
// The floor peer is nginx serving the same tarballs as static files, with packuments pre-rendered as files
// (`<name>/index.json`, tarball URLs pointing at nginx) for the lockfile without `resolved`; npm reaches every
// server the same way (`--registry=<server> --replace-registry-host=always`, which rewrites the lockfile's
// `resolved` hosts to the server). airlock and nginx run with the same process count (BENCH_NPM_WORKERS).
// Target (issue 12): airlock's npm ci time ≤ 1.05× nginx's.
// Last, a short tarball-GET throughput run over the same tarballs: Verdaccio, airlock, and nginx serving them as
// static files (mirror-get.bench.mjs is the full GET comparison).
//
// Env: BENCH_NPM_REPS (default 3), BENCH_NPM_GET_SECONDS (tarball-GET run per server, default 4; 0 skips it),
//      BENCH_NPM_WORKERS (processes of airlock `--workers` and nginx `worker_processes`, default 1),
//      BENCH_VERDACCIO_DIR (an install prefix holding node_modules/verdaccio at that version, instead of
//      $XDG_CACHE_HOME or ~/.cache /airlock-bench/verdaccio-<version>).
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, printTable, ratio, skip, which } from './lib.mjs';
import {
  CLI,
  cliImportArgs,
  createScope,
  fetchSha256,
  findNginx,
  freePort,
  generateNpmPackages,
  importBuilt,
  machineLoad,
  median,
  npmEnv,
  npmPackumentPath,
  npmTarballPath,
  packuments,
  requireCli,
  round,
  run,
  runBench,
  runOk,
  serveNpmPackages,
  startCliJson,
  startNginx,
  startSigning,
  startUpstream,
  waitForHttp,
} from './lib-mirror.mjs';
import { loadGenerator } from './lib-mirror-load.mjs';

const REPS = Math.max(1, Number(process.env.BENCH_NPM_REPS ?? 3));
const VERDACCIO_VERSION = '6.8.0'; // 6.9+ needs Node 22
const BUDGET_MS = 150_000; // measurement phase: no repetition is started that would end after this
const GET_SECONDS = Math.max(0, Number(process.env.BENCH_NPM_GET_SECONDS ?? 4));
const WORKERS = Math.max(1, Number(process.env.BENCH_NPM_WORKERS ?? 1));
const NGINX_TARGET = 1.05;

const npm = which('npm');
if (!npm) skip('npm not installed');
requireCli();

const { syncToBundle } = await importBuilt('mirror-sync');
const { sbomFromManifest } = await importBuilt('packages/sbom');
const scope = createScope('npm');

/**
 * Verdaccio's install prefix: BENCH_VERDACCIO_DIR, else a cache dir outside the repository
 * ($XDG_CACHE_HOME or ~/.cache)/airlock-bench/verdaccio-<version>. Never a project dependency.
 */
function verdaccioPrefix() {
  if (process.env.BENCH_VERDACCIO_DIR) return resolve(process.env.BENCH_VERDACCIO_DIR);
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'airlock-bench', `verdaccio-${VERDACCIO_VERSION}`);
}

function installedVerdaccio(prefix) {
  const bin = join(prefix, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  try {
    const { version } = JSON.parse(readFileSync(join(prefix, 'node_modules', 'verdaccio', 'package.json'), 'utf8'));
    return version === VERDACCIO_VERSION && existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Installs verdaccio@VERDACCIO_VERSION (exact) into the cache prefix once, reusing it afterwards; resolves to its
 * bin script, or to a skip reason. Installs into a temp dir beside the prefix, then renames it into place, so an
 * interrupted install never leaves a half-populated prefix behind.
 */
async function installVerdaccio() {
  const prefix = verdaccioPrefix();
  const have = installedVerdaccio(prefix);
  if (have) return { bin: have, seconds: 0, reused: prefix };
  if (process.env.BENCH_VERDACCIO_DIR)
    return { skip: `BENCH_VERDACCIO_DIR=${prefix} holds no verdaccio@${VERDACCIO_VERSION}` };
  mkdirSync(dirname(prefix), { recursive: true });
  const staging = mkdtempSync(`${prefix}.partial-`);
  try {
    // verdaccio-audit needs node-fetch 2.7.0 pinned (see the notes on Verdaccio as a benchmark peer).
    writeFileSync(
      join(staging, 'package.json'),
      JSON.stringify({
        name: 'bench-verdaccio',
        private: true,
        dependencies: { verdaccio: VERDACCIO_VERSION },
        overrides: { 'node-fetch': '2.7.0' },
      }),
    );
    const r = await run(
      npm,
      [
        'install',
        '--save-exact',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--loglevel=error',
        '--cache',
        join(staging, '.npm-cache'),
      ],
      {
        // The host's own npm configuration (registry, proxy, CA file): this is the one step that talks to the
        // outside registry. Every npm run of the measurement uses npmEnv() instead.
        cwd: staging,
        timeoutMs: 240_000,
      },
    );
    if (r.code !== 0 || !installedVerdaccio(staging)) {
      return {
        skip: `could not install verdaccio@${VERDACCIO_VERSION} from the npm registry (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`,
      };
    }
    rmSync(join(staging, '.npm-cache'), { recursive: true, force: true });
    try {
      renameSync(staging, prefix);
    } catch (err) {
      // Another bench run installed it meanwhile: use theirs.
      if (!installedVerdaccio(prefix)) throw err;
    }
    return { bin: installedVerdaccio(prefix), seconds: r.ms / 1000, reused: false, prefix };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Verdaccio with an offline config (no uplinks, no proxy), local storage, htpasswd auth; returns { url, child }. */
async function startVerdaccio(bin) {
  const dir = scope.dir('verdaccio');
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: 10',
      'packages:',
      "  '@*/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      'web:',
      '  enable: false',
      'log: { type: stdout, format: pretty, level: error }',
      '',
    ].join('\n'),
  );
  const child = scope.spawn(
    process.execPath,
    [realpathSync(bin), '--config', config, '--listen', `127.0.0.1:${port}`],
    { cwd: dir, env: { ...process.env, NODE_ENV: 'production' } },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out.length < 20_000 ? (out += d) : undefined));
  child.stderr.setEncoding('utf8').on('data', (d) => (out.length < 20_000 ? (out += d) : undefined));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/-/ping`, { child, timeoutMs: 60_000 });
  } catch (e) {
    throw new Error(`verdaccio did not start: ${e.message}\n${out}`);
  }
  return { url, child };
}

/** Publishes every package version into Verdaccio through its registry API, as `npm publish` does. */
async function publishToVerdaccio(url, packages) {
  const user = await fetch(`${url}/-/user/org.couchdb.user:bench`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      _id: 'org.couchdb.user:bench',
      name: 'bench',
      password: 'bench-password-1',
      type: 'user',
      roles: [],
      date: new Date().toISOString(),
    }),
  });
  const { token } = await user.json();
  if (!user.ok || !token) throw new Error(`verdaccio adduser: HTTP ${user.status}`);
  const byName = new Map();
  for (const p of packages) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
  const names = [...byName.keys()];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < names.length) {
        // Versions of one name one after another: two concurrent publishes of one package would conflict.
        for (const p of byName.get(names[next++])) {
          const file = `${p.name}-${p.version}.tgz`;
          const body = {
            _id: p.name,
            name: p.name,
            description: p.manifest.description,
            'dist-tags': { latest: p.version },
            versions: {
              [p.version]: {
                ...p.manifest,
                _id: `${p.name}@${p.version}`,
                dist: {
                  integrity: p.integrity,
                  shasum: p.shasum,
                  tarball: `${url}${npmTarballPath(p.name, p.version)}`,
                },
              },
            },
            access: null,
            _attachments: {
              [file]: {
                content_type: 'application/octet-stream',
                data: p.tarball.toString('base64'),
                length: p.tarball.length,
              },
            },
          };
          const res = await fetch(`${url}${npmPackumentPath(p.name)}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'npm-command': 'publish' },
            body: JSON.stringify(body),
          });
          const text = await res.text();
          if (!res.ok)
            throw new Error(`verdaccio publish ${p.name}@${p.version}: HTTP ${res.status} ${text.slice(0, 300)}`);
        }
      }
    }),
  );
}

function countInstalled(app) {
  let n = 0;
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      if (e.name.startsWith('@')) {
        for (const s of readdirSync(join(dir, e.name), { withFileTypes: true }))
          if (s.isDirectory()) visit(join(dir, e.name, s.name));
      } else visit(join(dir, e.name));
    }
  };
  const visit = (pkgDir) => {
    if (existsSync(join(pkgDir, 'package.json'))) n++;
    walk(join(pkgDir, 'node_modules'));
  };
  walk(join(app, 'node_modules'));
  return n;
}

/**
 * nginx serving every tarball at its registry path and every packument pre-rendered as `<name>/index.json` with
 * tarball URLs pointing at nginx: the static-file floor for `npm ci`.
 */
async function startStaticNpm(packages) {
  const www = scope.dir('www');
  const server = await startNginx(scope, www, { workers: WORKERS, packuments: true });
  for (const p of packages) {
    const f = join(www, npmTarballPath(p.name, p.version));
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, p.tarball);
  }
  for (const [name, doc] of packuments(packages, server.url)) {
    mkdirSync(join(www, name), { recursive: true });
    writeFileSync(join(www, name, 'index.json'), JSON.stringify(doc));
  }
  return server;
}

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(
    `machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`,
  );
  const verdaccioInstall = installVerdaccio(); // network-bound: overlaps with the generation below
  verdaccioInstall.catch(() => undefined);

  // ---- the packages, the upstream, the lockfiles ----
  const t0 = performance.now();
  const { packages, rootDeps } = await generateNpmPackages({ count: 210, twoVersions: 15, roots: 12 });
  const up = await startUpstream();
  serveNpmPackages(up, packages);
  const app = scope.dir('app');
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'bench-app', version: '1.0.0', private: true, dependencies: rootDeps }, null, 2),
  );
  await runOk(
    npm,
    [
      'install',
      '--package-lock-only',
      '--ignore-scripts',
      `--registry=${up.url}/`,
      '--cache',
      join(scope.root, 'lock-cache'),
      '--no-audit',
      '--no-fund',
    ],
    {
      cwd: app,
      env: npmEnv(scope.dir('home-lock')),
    },
  );
  const lockWith = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
  const lockEntries = Object.keys(lockWith.packages).filter((k) => k.startsWith('node_modules/'));
  const nested = lockEntries.filter((k) => k.indexOf('/node_modules/') > 0).length;
  if (lockEntries.length < 200) throw new Error(`the lockfile has only ${lockEntries.length} packages`);
  const lockWithout = structuredClone(lockWith);
  for (const k of lockEntries) delete lockWithout.packages[k].resolved;
  const totalBytes = packages.reduce((n, p) => n + p.tarball.length, 0);
  console.log(
    `packages: ${packages.length} tarballs (${(totalBytes / 1e6).toFixed(1)} MB), lockfile ${lockEntries.length} entries (${nested} nested), ` +
      `${Object.keys(rootDeps).length} root deps; generated + locked in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // ---- airlock: sync (signed) → import ----
  const signing = await startSigning(scope, scope.dir('plane'));
  const bundle = join(scope.root, 'bundle.tar');
  const synced = await syncToBundle({
    inputs: [{ path: join(app, 'package-lock.json'), kind: 'npm-lock' }],
    out: bundle,
    signer: signing.signer,
    sbom: async (m) => sbomFromManifest(m),
    quiet: true,
    progress: 'none',
  });
  const store = join(scope.root, 'store');
  const imp = await runOk(process.execPath, [CLI, ...cliImportArgs(bundle, store, signing)], { scope });
  console.log(
    `airlock: sync ${(synced.durationMs / 1000).toFixed(1)} s (${synced.entries} entries, signed + SBOM), import ${(imp.ms / 1000).toFixed(1)} s`,
  );

  // ---- Verdaccio: install, start, publish (a peer that cannot be installed is skipped; airlock is still measured) ----
  const vi = await verdaccioInstall;
  let verdaccio;
  let verdaccioSkip;
  if (vi.skip) {
    verdaccioSkip = vi.skip;
    console.log(`verdaccio: SKIPPED as a peer: ${verdaccioSkip}`);
  } else {
    console.log(
      `verdaccio@${VERDACCIO_VERSION}: ${vi.reused ? `reused the install in ${vi.reused}` : `installed into ${vi.prefix} in ${vi.seconds.toFixed(1)} s (kept for later runs)`}`,
    );
    verdaccio = await startVerdaccio(vi.bin);
    const tp = performance.now();
    await publishToVerdaccio(verdaccio.url, packages);
    console.log(
      `verdaccio: published ${packages.length} versions in ${((performance.now() - tp) / 1000).toFixed(1)} s into its local storage`,
    );
  }
  await up.close(); // from here on nothing can come from the upstream

  const mirror = await startCliJson(scope, [
    'mirror',
    'serve',
    '--store',
    store,
    '--listen',
    '127.0.0.1:0',
    '--workers',
    String(WORKERS),
    '--json',
  ]);
  const airlockName = `airlock mirror serve w${WORKERS}`;
  const nginxName = `nginx w${WORKERS} (static files)`;
  const nginx = findNginx() ? await startStaticNpm(packages) : undefined;
  if (!nginx) console.log('nginx: not installed, skipped as a peer (apt-get install nginx)');
  const servers = [
    ...(verdaccio ? [{ name: `verdaccio ${VERDACCIO_VERSION}`, kind: 'verdaccio', url: verdaccio.url }] : []),
    { name: airlockName, kind: 'airlock', url: mirror.json.url },
    ...(nginx ? [{ name: nginxName, kind: 'nginx', url: nginx.url }] : []),
  ];
  const verdaccioName = verdaccio ? servers[0].name : undefined;

  // ---- npm ci ----
  const scenarios = [
    { name: 'with resolved', lock: lockWith },
    { name: 'without resolved', lock: lockWithout },
  ];
  const home = scope.dir('home-ci');
  const env = npmEnv(home);
  let runNo = 0;
  const npmCi = async (server, scenario, { cache, offline = false } = {}) => {
    const dir = join(scope.root, 'ci', `${scenario.name.replace(/\W+/g, '-')}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    cpSync(join(app, 'package.json'), join(dir, 'package.json'));
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(scenario.lock, null, 2));
    const cacheDir = cache ?? join(scope.root, 'caches', `c${++runNo}`);
    // Offline: the same registry URL the warm cache was filled from (npm keys packuments by URL), no requests.
    const registry = (server ?? servers.find((s) => s.kind === 'airlock')).url;
    const args = [
      'ci',
      `--registry=${registry}/`,
      '--replace-registry-host=always',
      '--cache',
      cacheDir,
      ...(offline ? ['--offline'] : ['--prefer-online', '--fetch-retries=0']),
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
    ];
    const r = await run(npm, args, { cwd: dir, env, timeoutMs: 240_000 });
    if (r.code !== 0)
      throw new Error(
        `npm ci (${server?.name ?? 'offline'}, ${scenario.name}) failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`,
      );
    const installed = countInstalled(dir);
    if (installed !== lockEntries.length)
      throw new Error(
        `npm ci (${server?.name ?? 'offline'}, ${scenario.name}): ${installed} packages installed, lockfile has ${lockEntries.length}`,
      );
    if (!cache) rmSync(cacheDir, { recursive: true, force: true });
    return r.ms;
  };

  // Warm-up: one unmeasured install per server and lockfile (also proves each server installs everything).
  const warmCache = join(scope.root, 'warm-cache');
  for (const sc of scenarios)
    for (const s of servers) await npmCi(s, sc, s.kind === 'airlock' ? { cache: warmCache } : {});
  console.log(`warm-up: every server installed all ${lockEntries.length} packages from both lockfiles`);

  const times = new Map();
  const key = (sc, name) => `${sc.name}\0${name}`;
  const started = performance.now();
  let reps = 0;
  let lastRepMs = 0;
  for (let rep = 0; rep < REPS; rep++) {
    // Another repetition only if it should end within the budget.
    if (rep > 0 && performance.now() - started + lastRepMs > BUDGET_MS) {
      console.log(`time budget: stopping after ${rep} repetition(s)`);
      break;
    }
    const repStart = performance.now();
    for (const sc of scenarios) {
      for (const s of rep % 2 ? [...servers].reverse() : servers) {
        const ms = await npmCi(s, sc);
        times.set(key(sc, s.name), [...(times.get(key(sc, s.name)) ?? []), ms]);
        console.log(`  rep ${rep + 1}: ${sc.name.padEnd(16)} ${s.name.padEnd(20)} ${(ms / 1000).toFixed(2)} s`);
      }
      const floor = await npmCi(null, sc, { cache: warmCache, offline: true });
      times.set(key(sc, 'floor'), [...(times.get(key(sc, 'floor')) ?? []), floor]);
      console.log(
        `  rep ${rep + 1}: ${sc.name.padEnd(16)} ${'npm ci --offline'.padEnd(20)} ${(floor / 1000).toFixed(2)} s (warm cache, no server)`,
      );
    }
    reps++;
    lastRepMs = performance.now() - repStart;
  }

  const rows = [];
  for (const sc of scenarios) {
    const v = verdaccioName ? median(times.get(key(sc, verdaccioName))) : NaN;
    const ng = nginx ? median(times.get(key(sc, nginxName))) : NaN;
    for (const [name, label] of [...servers.map((s) => [s.name, s.name]), ['floor', 'npm ci --offline (warm cache)']]) {
      const xs = times.get(key(sc, name));
      const m = median(xs);
      rows.push({
        lockfile: sc.name,
        server: label,
        medianS: round(m / 1000, 2),
        minS: round(Math.min(...xs) / 1000, 2),
        maxS: round(Math.max(...xs) / 1000, 2),
        runs: xs.length,
        vsVerdaccio: name === 'floor' || !verdaccioName ? undefined : ratio(m, v),
        vsNginx: name === 'floor' || !nginx ? undefined : ratio(m, ng),
      });
    }
  }
  console.log('');
  printTable(rows, ['lockfile', 'server', 'medianS', 'minS', 'maxS', 'runs', 'vsVerdaccio', 'vsNginx']);
  console.log(
    `\nvsNginx = npm ci time ÷ nginx's (static tarballs + pre-rendered packument files, ${WORKERS} process(es) each). Target ≤ ${NGINX_TARGET}×.`,
  );
  console.log(
    `\nvsVerdaccio = airlock npm ci time ÷ Verdaccio npm ci time (below 1: airlock faster). Each npm ci: empty cache,`,
  );
  console.log(
    `--prefer-online, no node_modules, ${lockEntries.length} packages. Server, npm and the other engineers' work share ${load.cpus} cores;`,
  );
  console.log('npm ci --offline from a warm cache is what npm itself costs with no server at all.');
  if (verdaccioSkip) console.log(`Verdaccio was skipped as a peer: ${verdaccioSkip}`);

  // ---- tarball GETs: the same tarballs (those the lockfile installs) from each server, and from nginx as static files ----
  let getRows = [];
  let getLoad;
  if (GET_SECONDS > 0) {
    // Only what the lockfile installs: a generated 2.0.0 that nothing depends on was never synced.
    const locked = new Set(
      lockEntries.map(
        (k) =>
          `${lockWith.packages[k].name ?? k.slice(k.lastIndexOf('node_modules/') + 13)}@${lockWith.packages[k].version}`,
      ),
    );
    const served = packages.filter((p) => locked.has(`${p.name}@${p.version}`));
    const paths = served.map((p) => npmTarballPath(p.name, p.version));
    const getServers = [...servers];
    // Every server serves the right bytes for every path (and its caches are warm).
    for (const s of getServers) {
      for (const p of served) {
        const got = await fetchSha256(`${s.url}${npmTarballPath(p.name, p.version)}`);
        if (got !== p.sha256)
          throw new Error(`${s.name} ${p.name}@${p.version}: served sha256 ${got}, expected ${p.sha256}`);
      }
    }
    const gen = loadGenerator(scope.dir('load'), { connections: 16, threads: 1 });
    getLoad = gen.name;
    console.log(
      `\ntarball GETs (${gen.name}, 1 s warm-up + ${GET_SECONDS} s, cycling through all ${paths.length} tarball paths):`,
    );
    for (const s of getServers) {
      await gen.run(s.url, paths, 1);
      const r = await gen.run(s.url, paths, GET_SECONDS);
      if (r.errors > 0) throw new Error(`${s.name}: ${r.errors} failed tarball GETs`);
      getRows.push({
        server: s.name,
        kind: s.kind,
        reqPerSec: r.reqPerSec,
        mbPerSec: r.mbPerSec,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
      });
    }
    const nginxRps = getRows.find((r) => r.kind === 'nginx')?.reqPerSec;
    for (const r of getRows) r.vsNginx = nginxRps ? ratio(r.reqPerSec, nginxRps) : undefined;
    printTable(getRows, ['server', 'reqPerSec', 'mbPerSec', 'p50Ms', 'p99Ms', 'vsNginx']);
    console.log(
      `(airlock and nginx ${WORKERS} process(es) each; the load generator shares the cores: see mirror-get for the full comparison)`,
    );
  }

  const med = (sc, name) =>
    name && times.has(key(sc, name)) ? round(median(times.get(key(sc, name))) / 1000, 2) : undefined;
  const get = (kind) => getRows.find((r) => r.kind === kind);
  const after = await machineLoad();
  emit({
    summary: {
      resolved_verdaccio_s: med(scenarios[0], verdaccioName) ?? 'skipped',
      resolved_airlock_s: med(scenarios[0], airlockName),
      ratio_resolved: rows.find((r) => r.lockfile === scenarios[0].name && r.server === airlockName).vsVerdaccio,
      noresolved_verdaccio_s: med(scenarios[1], verdaccioName) ?? 'skipped',
      noresolved_airlock_s: med(scenarios[1], airlockName),
      ratio_noresolved: rows.find((r) => r.lockfile === scenarios[1].name && r.server === airlockName).vsVerdaccio,
      ...(nginx
        ? {
            resolved_nginx_s: med(scenarios[0], nginxName),
            noresolved_nginx_s: med(scenarios[1], nginxName),
            ratio_resolved_nginx: rows.find((r) => r.lockfile === scenarios[0].name && r.server === airlockName)
              .vsNginx,
            ratio_noresolved_nginx: rows.find((r) => r.lockfile === scenarios[1].name && r.server === airlockName)
              .vsNginx,
          }
        : { nginx: 'skipped: not installed' }),
      floor_s: med(scenarios[0], 'floor'),
      ...(get('airlock') ? { get_airlock_rps: get('airlock').reqPerSec } : {}),
      ...(get('verdaccio') ? { get_verdaccio_rps: get('verdaccio').reqPerSec } : {}),
      ...(get('nginx') ? { get_nginx_rps: get('nginx').reqPerSec } : {}),
    },
    packages: lockEntries.length,
    nested,
    tarballs: packages.length,
    tarballBytes: totalBytes,
    reps,
    verdaccio: verdaccioSkip ? { version: VERDACCIO_VERSION, skipped: verdaccioSkip } : { version: VERDACCIO_VERSION },
    machine: { before: load, after },
    samplesMs: Object.fromEntries([...times].map(([k, v]) => [k.replace('\0', ' | '), v.map((x) => Math.round(x))])),
    rows,
    get: { loadGenerator: getLoad, seconds: GET_SECONDS, rows: getRows },
  });
});
