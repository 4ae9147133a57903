#!/usr/bin/env node
// The same `npm ci` of a ≥ 200-package lockfile from Verdaccio 6 and from `airlock mirror serve`, side by side in
// one run. The packages are generated (225 tarballs: 210 names, two thirds of them scoped, 15 at two versions so
// npm nests copies, a dependency DAG under 12 root dependencies) and served by a loopback npm-registry-shaped
// upstream, from which
//   - the real npm writes the lockfile (`npm install --package-lock-only`),
//   - airlock syncs them (`syncToBundle`, signed through an in-process trust plane, with the CycloneDX SBOM) and
//     imports the bundle (`airlock mirror import`, signature + identity + every blob verified),
//   - Verdaccio 6.8 (installed with npm into a temp prefix, offline config: no uplinks) receives them through its
//     publish API (what `npm publish` sends), so it serves from its own local storage.
// The upstream is then stopped. Each `npm ci` runs with an empty cache (`--cache <fresh dir> --prefer-online`),
// `--no-audit --no-fund`, no node_modules; two lockfiles: with `resolved` (npm fetches tarballs only) and without
// (omit-lockfile-registry-resolved: npm asks for every packument too). Servers alternate order every repetition
// (the machine is shared); medians are reported, with `npm ci --offline` from a warm cache as npm's own floor.
//
// Env: BENCH_NPM_REPS (default 3), BENCH_VERDACCIO_DIR (reuse an existing install prefix holding
//      node_modules/verdaccio instead of installing one into a temp dir).
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, printTable, ratio, skip, which } from './lib.mjs';
import {
  CLI,
  cliImportArgs,
  createScope,
  freePort,
  generateNpmPackages,
  importBuilt,
  machineLoad,
  median,
  npmEnv,
  npmPackumentPath,
  npmTarballPath,
  requireCli,
  round,
  run,
  runBench,
  runOk,
  serveNpmPackages,
  startCliJson,
  startSigning,
  startUpstream,
  waitForHttp,
} from './lib-mirror.mjs';

const REPS = Math.max(1, Number(process.env.BENCH_NPM_REPS ?? 3));
const VERDACCIO_VERSION = '6.8.0'; // 6.9+ needs Node 22
const BUDGET_MS = 150_000; // measurement phase: no repetition is started that would end after this

const npm = which('npm');
if (!npm) skip('npm not installed');
requireCli();

const { syncToBundle } = await importBuilt('mirror-sync');
const { sbomFromManifest } = await importBuilt('packages/sbom');
const scope = createScope('npm');

/** Installs Verdaccio into a temp prefix (or reuses BENCH_VERDACCIO_DIR); resolves to its bin script, or a skip reason. */
async function installVerdaccio() {
  const reuse = process.env.BENCH_VERDACCIO_DIR;
  if (reuse && existsSync(join(reuse, 'node_modules', 'verdaccio', 'bin', 'verdaccio'))) {
    return { bin: join(reuse, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), seconds: 0, reused: true };
  }
  const prefix = scope.dir('verdaccio-install');
  // verdaccio-audit needs node-fetch 2.7.0 pinned (see the notes on Verdaccio as a benchmark peer).
  writeFileSync(join(prefix, 'package.json'), JSON.stringify({ name: 'bench-verdaccio', private: true, dependencies: { verdaccio: VERDACCIO_VERSION }, overrides: { 'node-fetch': '2.7.0' } }));
  const r = await run(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', '--cache', join(prefix, '.npm-cache')], { cwd: prefix, timeoutMs: 180_000 });
  const bin = join(prefix, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  if (r.code !== 0 || !existsSync(bin)) return { skip: `could not install verdaccio@${VERDACCIO_VERSION} from the npm registry (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` };
  return { bin, seconds: r.ms / 1000, reused: false };
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
  const child = scope.spawn(process.execPath, [realpathSync(bin), '--config', config, '--listen', `127.0.0.1:${port}`], { cwd: dir, env: { ...process.env, NODE_ENV: 'production' } });
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
    body: JSON.stringify({ _id: 'org.couchdb.user:bench', name: 'bench', password: 'bench-password-1', type: 'user', roles: [], date: new Date().toISOString() }),
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
                dist: { integrity: p.integrity, shasum: p.shasum, tarball: `${url}${npmTarballPath(p.name, p.version)}` },
              },
            },
            access: null,
            _attachments: { [file]: { content_type: 'application/octet-stream', data: p.tarball.toString('base64'), length: p.tarball.length } },
          };
          const res = await fetch(`${url}${npmPackumentPath(p.name)}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'npm-command': 'publish' },
            body: JSON.stringify(body),
          });
          const text = await res.text();
          if (!res.ok) throw new Error(`verdaccio publish ${p.name}@${p.version}: HTTP ${res.status} ${text.slice(0, 300)}`);
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
        for (const s of readdirSync(join(dir, e.name), { withFileTypes: true })) if (s.isDirectory()) visit(join(dir, e.name, s.name));
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

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(`machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`);
  const verdaccioInstall = installVerdaccio(); // network-bound: overlaps with the generation below
  verdaccioInstall.catch(() => undefined);

  // ---- the packages, the upstream, the lockfiles ----
  const t0 = performance.now();
  const { packages, rootDeps } = await generateNpmPackages({ count: 210, twoVersions: 15, roots: 12 });
  const up = await startUpstream();
  serveNpmPackages(up, packages);
  const app = scope.dir('app');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'bench-app', version: '1.0.0', private: true, dependencies: rootDeps }, null, 2));
  await runOk(npm, ['install', '--package-lock-only', '--ignore-scripts', `--registry=${up.url}/`, '--cache', join(scope.root, 'lock-cache'), '--no-audit', '--no-fund'], {
    cwd: app,
    env: npmEnv(scope.dir('home-lock')),
  });
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
  console.log(`airlock: sync ${(synced.durationMs / 1000).toFixed(1)} s (${synced.entries} entries, signed + SBOM), import ${(imp.ms / 1000).toFixed(1)} s`);

  // ---- Verdaccio: install, start, publish ----
  const vi = await verdaccioInstall;
  if (vi.skip) skip(vi.skip);
  console.log(`verdaccio@${VERDACCIO_VERSION}: ${vi.reused ? `reused ${process.env.BENCH_VERDACCIO_DIR}` : `installed in ${vi.seconds.toFixed(1)} s`}`);
  const verdaccio = await startVerdaccio(vi.bin);
  const tp = performance.now();
  await publishToVerdaccio(verdaccio.url, packages);
  console.log(`verdaccio: published ${packages.length} versions in ${((performance.now() - tp) / 1000).toFixed(1)} s`);
  await up.close(); // from here on nothing can come from the upstream

  const mirror = await startCliJson(scope, ['mirror', 'serve', '--store', store, '--listen', '127.0.0.1:0', '--json']);
  const servers = [
    { name: `verdaccio ${VERDACCIO_VERSION}`, kind: 'verdaccio', url: verdaccio.url },
    { name: 'airlock mirror serve', kind: 'airlock', url: mirror.json.url },
  ];

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
      'ci', `--registry=${registry}/`, '--replace-registry-host=always', '--cache', cacheDir,
      ...(offline ? ['--offline'] : ['--prefer-online', '--fetch-retries=0']),
      '--no-audit', '--no-fund', '--loglevel=error',
    ];
    const r = await run(npm, args, { cwd: dir, env, timeoutMs: 240_000 });
    if (r.code !== 0) throw new Error(`npm ci (${server?.name ?? 'offline'}, ${scenario.name}) failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
    const installed = countInstalled(dir);
    if (installed !== lockEntries.length) throw new Error(`npm ci (${server?.name ?? 'offline'}, ${scenario.name}): ${installed} packages installed, lockfile has ${lockEntries.length}`);
    if (!cache) rmSync(cacheDir, { recursive: true, force: true });
    return r.ms;
  };

  // Warm-up: one unmeasured install per server and lockfile (also proves each server installs everything).
  const warmCache = join(scope.root, 'warm-cache');
  for (const sc of scenarios) for (const s of servers) await npmCi(s, sc, s.kind === 'airlock' ? { cache: warmCache } : {});
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
      console.log(`  rep ${rep + 1}: ${sc.name.padEnd(16)} ${'npm ci --offline'.padEnd(20)} ${(floor / 1000).toFixed(2)} s (warm cache, no server)`);
    }
    reps++;
    lastRepMs = performance.now() - repStart;
  }

  const rows = [];
  for (const sc of scenarios) {
    const v = median(times.get(key(sc, servers[0].name)));
    for (const [name, label] of [
      [servers[0].name, servers[0].name],
      [servers[1].name, servers[1].name],
      ['floor', 'npm ci --offline (warm cache)'],
    ]) {
      const xs = times.get(key(sc, name));
      const m = median(xs);
      rows.push({
        lockfile: sc.name,
        server: label,
        medianS: round(m / 1000, 2),
        minS: round(Math.min(...xs) / 1000, 2),
        maxS: round(Math.max(...xs) / 1000, 2),
        runs: xs.length,
        vsVerdaccio: name === 'floor' ? undefined : ratio(m, v),
      });
    }
  }
  console.log('');
  printTable(rows, ['lockfile', 'server', 'medianS', 'minS', 'maxS', 'runs', 'vsVerdaccio']);
  console.log(`\nvsVerdaccio = airlock npm ci time ÷ Verdaccio npm ci time (below 1: airlock faster). Each npm ci: empty cache,`);
  console.log(`no node_modules, ${lockEntries.length} packages. Server, npm and the other engineers' work share ${load.cpus} cores;`);
  console.log('npm ci --offline from a warm cache is what npm itself costs with no server at all.');

  const med = (sc, name) => round(median(times.get(key(sc, name))) / 1000, 2);
  const after = await machineLoad();
  emit({
    summary: {
      resolved_verdaccio_s: med(scenarios[0], servers[0].name),
      resolved_airlock_s: med(scenarios[0], servers[1].name),
      ratio_resolved: rows[1].vsVerdaccio,
      noresolved_verdaccio_s: med(scenarios[1], servers[0].name),
      noresolved_airlock_s: med(scenarios[1], servers[1].name),
      ratio_noresolved: rows[4].vsVerdaccio,
      floor_s: med(scenarios[0], 'floor'),
    },
    packages: lockEntries.length,
    nested,
    tarballs: packages.length,
    tarballBytes: totalBytes,
    reps,
    verdaccio: VERDACCIO_VERSION,
    machine: { before: load, after },
    samplesMs: Object.fromEntries([...times].map(([k, v]) => [k.replace('\0', ' | '), v.map((x) => Math.round(x))])),
    rows,
  });
});
