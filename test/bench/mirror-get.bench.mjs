#!/usr/bin/env node
// Tarball GET throughput of `airlock mirror serve` (--workers 1 and 2) against nginx (Debian package) serving the
// very same bytes as static files (worker_processes 1 and 2), in one run, over loopback, with `wrk` (else a Node
// keep-alive client). Three request mixes, each cycling through every file:
//   npm      /@scope/name/-/name-1.0.0.tgz   — the npm tarball route (name + version → index → blob)
//   blobs    /blobs/sha256/<hex>              — the same tarballs by digest
//   large    /blobs/sha256/<hex>              — 4 MiB blobs (over the 1 MiB in-memory limit: streamed)
// Reports requests/s, MB/s, latency and airlock/nginx at equal process counts (target ≥ 0.5×).
// airlock verifies on read: a small blob is hashed once and kept in memory keyed by its file's stat token
// (inode, size, mtime, ctime), so each request costs one lstat; a large blob is re-hashed only when its stat
// token changed, then streamed. nginx serves whatever bytes are on disk (sendfile).
//
// Each server is measured ROUNDS times, the server order reversed every round (the machine is shared: load drifts),
// and the median (of two: the mean) is reported.
//
// Env: BENCH_GET_SECONDS (per measurement, default 5), BENCH_GET_WARMUP (s, default 1), BENCH_GET_ROUNDS (2),
//      BENCH_GET_CONNECTIONS (16),
//      BENCH_GET_THREADS (wrk threads, 1), BENCH_GET_PACKAGES (tarballs, 200), BENCH_GET_LARGE (4 MiB blobs, 8).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, printTable, ratio, skip } from './lib.mjs';
import {
  CLI,
  cliImportArgs,
  createScope,
  fetchSha256,
  findNginx,
  flatLockfile,
  generateNpmPackages,
  importBuilt,
  machineLoad,
  median,
  npmTarballPath,
  requireCli,
  round,
  runBench,
  runOk,
  serveNpmPackages,
  sha256Hex,
  startCliJson,
  startNginx,
  startSigning,
  startUpstream,
} from './lib-mirror.mjs';
import { loadGenerator } from './lib-mirror-load.mjs';

const SECONDS = Number(process.env.BENCH_GET_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_GET_WARMUP ?? 1);
const ROUNDS = Math.max(1, Number(process.env.BENCH_GET_ROUNDS ?? 2));
const CONNECTIONS = Number(process.env.BENCH_GET_CONNECTIONS ?? 16);
const THREADS = Number(process.env.BENCH_GET_THREADS ?? 1);
const PACKAGES = Number(process.env.BENCH_GET_PACKAGES ?? 200);
const LARGE = Number(process.env.BENCH_GET_LARGE ?? 8);
const LARGE_BYTES = 4 << 20;
const TARGET = 0.5;

if (!findNginx()) skip('nginx not installed (apt-get install nginx): it is the static file server this benchmark compares against');
requireCli();

const { syncToBundle } = await importBuilt('mirror-sync');
const scope = createScope('get');

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(`machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`);

  // ---- the files: generated npm tarballs + a few large blobs, synced (signed), imported ----
  const t0 = performance.now();
  const { packages } = await generateNpmPackages({ count: PACKAGES, twoVersions: 0, roots: PACKAGES });
  const large = Array.from({ length: LARGE }, () => randomBytes(LARGE_BYTES));
  const up = await startUpstream();
  serveNpmPackages(up, packages);
  large.forEach((b, i) => up.body(`/files/large-${i}.bin`, b));
  const lockfile = join(scope.root, 'package-lock.json');
  writeFileSync(lockfile, JSON.stringify(flatLockfile(packages, up.url), null, 2));
  const list = join(scope.root, 'list.json');
  writeFileSync(list, JSON.stringify(large.map((b, i) => ({ url: `${up.url}/files/large-${i}.bin`, sha256: sha256Hex(b) }))));
  const signing = await startSigning(scope, scope.dir('plane'));
  const bundle = join(scope.root, 'bundle.tar');
  const synced = await syncToBundle({
    inputs: [
      { path: lockfile, kind: 'npm-lock' },
      { path: list, kind: 'generic' },
    ],
    out: bundle,
    signer: signing.signer,
    quiet: true,
    progress: 'none',
  });
  await up.close();
  const store = join(scope.root, 'store');
  await runOk(process.execPath, [CLI, ...cliImportArgs(bundle, store, signing)], { scope });
  const tarballBytes = packages.reduce((n, p) => n + p.tarball.length, 0);
  console.log(
    `setup: ${packages.length} tarballs (${(tarballBytes / 1e6).toFixed(1)} MB, mean ${(tarballBytes / packages.length / 1e3).toFixed(1)} kB) + ${LARGE} × 4 MiB blobs; ` +
      `sync ${(synced.durationMs / 1000).toFixed(1)} s, bundle ${(synced.bytes / 1e6).toFixed(1)} MB, whole setup ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // ---- nginx's document root: the same bytes at the same URL paths ----
  const www = scope.dir('www');
  const put = (path, bytes) => {
    mkdirSync(dirname(join(www, path)), { recursive: true });
    writeFileSync(join(www, path), bytes);
  };
  const mixes = [
    { route: 'npm', files: packages.map((p) => ({ path: npmTarballPath(p.name, p.version), bytes: p.tarball })) },
    { route: 'blobs', files: packages.map((p) => ({ path: `/blobs/sha256/${p.sha256}`, bytes: p.tarball })) },
    { route: 'large', files: large.map((b) => ({ path: `/blobs/sha256/${sha256Hex(b)}`, bytes: b })) },
  ].filter((m) => m.files.length > 0);
  for (const m of mixes) for (const f of m.files) put(f.path, f.bytes);

  // ---- the servers ----
  const servers = [];
  for (const workers of [1, 2]) {
    const n = await startNginx(scope, www, { workers });
    servers.push({ name: `nginx w${workers}`, kind: 'nginx', workers, url: n.url });
  }
  for (const workers of [1, 2]) {
    const a = await startCliJson(scope, ['mirror', 'serve', '--store', store, '--listen', '127.0.0.1:0', '--workers', String(workers), '--json']);
    servers.push({ name: `airlock w${workers}`, kind: 'airlock', workers, url: a.json.url });
  }

  // Every server returns exactly the expected bytes for every path (this also warms airlock's verified cache).
  for (const s of servers) {
    for (const m of mixes) {
      for (const f of m.files) {
        const got = await fetchSha256(`${s.url}${f.path}`);
        if (got !== sha256Hex(f.bytes)) throw new Error(`${s.name} ${f.path}: served sha256 ${got}, expected ${sha256Hex(f.bytes)}`);
      }
    }
  }
  console.log(`checked: all ${servers.length} servers return the right bytes for all ${mixes.reduce((n, m) => n + m.files.length, 0)} paths`);

  const gen = loadGenerator(scope.dir('load'), { connections: CONNECTIONS, threads: THREADS });
  console.log(`load: ${gen.name}, ${WARMUP} s warm-up + ${SECONDS} s measured per server and mix; servers and client share the cores`);
  console.log(`${ROUNDS} round(s), server order reversed each round; median per server`);
  const rows = [];
  for (const m of mixes) {
    const paths = m.files.map((f) => f.path);
    const samples = new Map(servers.map((s) => [s.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of round % 2 ? [...servers].reverse() : servers) {
        if (WARMUP > 0) await gen.run(s.url, paths, WARMUP);
        const r = await gen.run(s.url, paths, SECONDS);
        if (r.errors > 0) throw new Error(`${s.name} ${m.route}: ${r.errors} failed requests (non-2xx, timeouts or socket errors)`);
        samples.get(s.name).push(r);
        console.log(`  ${m.route.padEnd(5)} ${s.name.padEnd(10)} ${String(r.reqPerSec).padStart(7)} req/s ${String(r.mbPerSec).padStart(7)} MB/s  p50 ${r.p50Ms} ms`);
      }
    }
    for (const s of servers) {
      const rs = samples.get(s.name);
      const med = (k) => median(rs.map((r) => r[k]));
      rows.push({
        route: m.route,
        server: s.name,
        kind: s.kind,
        workers: s.workers,
        reqPerSec: Math.round(med('reqPerSec')),
        mbPerSec: round(med('mbPerSec'), 1),
        p50Ms: round(med('p50Ms'), 3),
        p99Ms: round(med('p99Ms'), 3),
        requests: rs.reduce((n, r) => n + r.requests, 0),
        rounds: rs.map((r) => r.reqPerSec),
      });
    }
  }
  for (const r of rows) {
    const peer = rows.find((x) => x.route === r.route && x.kind === 'nginx' && x.workers === r.workers);
    r.vsNginx = r.kind === 'airlock' ? ratio(r.reqPerSec, peer.reqPerSec) : 1;
  }
  console.log('');
  printTable(rows, ['route', 'server', 'reqPerSec', 'mbPerSec', 'p50Ms', 'p99Ms', 'requests', 'vsNginx']);
  console.log(`\nvsNginx = airlock req/s ÷ nginx req/s at the same process count (target ≥ ${TARGET}×).`);
  console.log('airlock verifies on read: small blobs are hashed once and then served from memory while their stat token');
  console.log('(inode, size, mtime, ctime) is unchanged — one lstat per request; large blobs are streamed after the same');
  console.log('token check. nginx does no verification.');

  const ratios = Object.fromEntries(rows.filter((r) => r.kind === 'airlock').map((r) => [`${r.route}_w${r.workers}`, r.vsNginx]));
  const after = await machineLoad();
  emit({
    summary: {
      npm_w1_rps: rows.find((r) => r.route === 'npm' && r.server === 'airlock w1')?.reqPerSec,
      npm_nginx_w1_rps: rows.find((r) => r.route === 'npm' && r.server === 'nginx w1')?.reqPerSec,
      ...Object.fromEntries(Object.entries(ratios).map(([k, v]) => [`ratio_${k}`, v])),
      worst_ratio: Math.min(...Object.values(ratios)),
    },
    target: TARGET,
    loadGenerator: gen.name,
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    files: { tarballs: packages.length, tarballBytes, large: LARGE, largeBytes: LARGE_BYTES },
    machine: { before: load, after },
    rows,
  });
});
