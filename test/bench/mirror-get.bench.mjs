#!/usr/bin/env node
// Tarball GET throughput of `airlock mirror serve` against nginx (Debian package) serving the very same bytes as
// static files, in one run, over loopback, with `wrk` (else a Node keep-alive client). Servers:
//   nginx w1          worker_processes 1
//   nginx auto        worker_processes auto (= the core count)
//   airlock w1        one process (`--workers 1`)
//   airlock wN        N = the core count (`--workers N`: N processes accepting on one socket)
//   floor w1, floor wN  a bare node:http server (lib-mirror-floor.mjs) answering the same paths from memory with
//                     the mirror's headers and its process model: what Node itself reaches here. mirror ÷ floor is
//                     the cost of airlock's own work, floor ÷ nginx the cost of Node.
//   floor+stat wN     the same with one lstat per request compared like the mirror's (lib-mirror-floor.mjs --stat):
//                     the syscall verify-on-read keeps on the hot path. mirror ÷ floor+stat is airlock's work beyond it.
// Request mixes, each cycling through every tarball of one size on the npm tarball route
// (`/@scope/name/-/name-1.0.0.tgz` and `/name/-/name-1.0.0.tgz`: name + version → index → blob):
//   4k       256 × ~4 KiB            64k   256 × ~64 KiB            1m   32 × ~1 MiB
//   1m-cold  80 × ~1 MiB: more than airlock's 64 MiB in-memory cache of verified small blobs, so every request
//            reads and re-hashes its blob (the worst case of verify-on-read; nginx just sendfiles page cache)
//   4m       8 × ~4 MiB: over the 1 MiB in-memory limit, streamed from the file after a stat-token check
// The tarballs are generated npm tarballs (package.json, index.js and an incompressible deterministic payload),
// synced into a signed bundle and imported with `airlock mirror import`; nginx's root holds the same files.
// Reports requests/s, MB/s, latency, and airlock ÷ nginx at equal process counts (w1 ÷ w1) and with all cores
// (wN ÷ nginx auto). Target ≥ 0.5×. Because the load generator and the neighbours share the cores, requests/s
// move a lot from run to run here; each measurement therefore also records the CPU time (user + sys, from
// /proc, all of the server's processes) it cost per request, and cpuEff = nginx's CPU per request ÷ airlock's:
// the requests/s ratio to expect where CPU is the limit.
// airlock verifies on read: a small blob is hashed once and kept in memory keyed by its file's stat token
// (inode, size, mtime, ctime), so each request costs one lstat; a large blob is re-hashed only when its stat
// token changed, then streamed. nginx serves whatever bytes are on disk (sendfile).
//
// Each server is measured ROUNDS times, the server order reversed every round (the machine is shared: load drifts),
// and the median (of two: the mean) is reported. The warm-up runs before each server's first round only.
// Fairness: every server gets the same load generator (wrk, one thread, 16 connections, the same path list in the
// same order), the same files (nginx's root holds the very bytes airlock serves, at the same URL paths), and the
// comparison that decides the target is at equal process counts: airlock --workers <cores> ÷ nginx
// worker_processes auto (= cores). wrk shares the cores with the server, as with every server.
//
// Env: BENCH_GET_SECONDS (per measurement, default 4), BENCH_GET_WARMUP (s, default 3), BENCH_GET_ROUNDS (2),
//      BENCH_GET_CONNECTIONS (16), BENCH_GET_THREADS (wrk threads, 1),
//      BENCH_GET_MIXES (comma-separated subset of 4k,64k,1m,1m-cold,4m; default all),
//      BENCH_GET_BASELINE_CLI=<path to another checkout's packages/cli/dist/bin.js> (also measure that build's
//      mirror, as `base w1`/`base wN`, on the same store in the same rounds: an A/B in the same conditions),
//      BENCH_GET_PROFILE=<dir> (run airlock w1 under `node --cpu-prof`, keep the .cpuprofile in <dir> and print its
//      top self-time functions; profiling slows that server down, so its numbers are not comparable then).
import { createCipheriv, createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, printTable, ratio, skip } from './lib.mjs';
import {
  CLI,
  cliImportArgs,
  createScope,
  fetchSha256,
  findNginx,
  flatLockfile,
  importBuilt,
  machineLoad,
  median,
  npmTarball,
  npmTarballPath,
  requireCli,
  round,
  runBench,
  runOk,
  serveNpmPackages,
  sha1Hex,
  sha256Hex,
  sriSha512,
  startCliJson,
  startJsonChild,
  startNginx,
  startSigning,
  startUpstream,
  cpuTimeMs,
  processTree,
} from './lib-mirror.mjs';
import { loadGenerator } from './lib-mirror-load.mjs';

const FLOOR_SCRIPT = new URL('./lib-mirror-floor.mjs', import.meta.url).pathname;

const SECONDS = Number(process.env.BENCH_GET_SECONDS ?? 4);
// Long enough for a freshly forked worker to compile its hot path and fill its verified-blob cache on a loaded
// machine (1 s measured the workers' warm-up: airlock w2 ran at a tenth of w1 in its first seconds).
const WARMUP = Number(process.env.BENCH_GET_WARMUP ?? 3);
const ROUNDS = Math.max(1, Number(process.env.BENCH_GET_ROUNDS ?? 2));
const CONNECTIONS = Number(process.env.BENCH_GET_CONNECTIONS ?? 16);
const THREADS = Number(process.env.BENCH_GET_THREADS ?? 1);
const CORES = cpus().length;
const BASELINE_CLI = process.env.BENCH_GET_BASELINE_CLI ? resolve(process.env.BENCH_GET_BASELINE_CLI) : undefined;
const PROFILE = process.env.BENCH_GET_PROFILE ? resolve(process.env.BENCH_GET_PROFILE) : undefined;
const TARGET = 0.8; // issue 12: airlock --workers <cores> ≥ 0.8× nginx worker_processes auto
// worker_processes auto is 1 on a single core: then nginx w1 is that server.
const NGINX_AUTO = CORES > 1 ? 'nginx auto' : 'nginx w1';
const KiB = 1024;
const MiB = 1024 * KiB;
const ALL_MIXES = [
  { id: '4k', size: 4 * KiB, count: 256 },
  { id: '64k', size: 64 * KiB, count: 256 },
  { id: '1m', size: MiB, count: 32 },
  { id: '1m-cold', size: MiB, count: 80, note: 'working set over airlock 64 MiB memory cache' },
  { id: '4m', size: 4 * MiB, count: 8, note: 'streamed (over the 1 MiB in-memory limit)' },
];
const wanted = process.env.BENCH_GET_MIXES?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const MIXES = wanted ? ALL_MIXES.filter((m) => wanted.includes(m.id)) : ALL_MIXES;
if (wanted && MIXES.length !== wanted.length) {
  console.error(
    `mirror-get: BENCH_GET_MIXES=${wanted.join(',')}: known mixes are ${ALL_MIXES.map((m) => m.id).join(', ')}`,
  );
  process.exit(2);
}

if (!findNginx())
  skip('nginx not installed (apt-get install nginx): it is the static file server this benchmark compares against');
requireCli();

const { syncToBundle } = await importBuilt('mirror-sync');
const scope = createScope('get');

/** `n` deterministic incompressible bytes (AES-128-CTR keystream of a seed): the same tarballs every run. */
function payload(seed, n) {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** `count` npm tarballs of close to (never more than) `size` bytes each. */
async function tarballsOfSize(mix) {
  const out = [];
  for (let i = 0; i < mix.count; i++) {
    const id = String(i).padStart(3, '0');
    const name = i % 2 ? `bench-get-${mix.id}-${id}` : `@bench-get-${mix.id}/pkg-${id}`;
    const version = '1.0.0';
    const manifest = {
      name,
      version,
      description: `mirror-get benchmark tarball (${mix.id})`,
      main: 'index.js',
      license: 'MIT',
    };
    const build = (n) =>
      npmTarball(
        {
          'package.json': `${JSON.stringify(manifest, null, 2)}\n`,
          'index.js': `module.exports = ${JSON.stringify(`${name}@${version}`)};\n`,
          'data.bin': payload(`${mix.id}/${id}`, n),
        },
        { level: 1 },
      );
    // The framing (tar headers compress well; deflate adds a few bytes per stored block) is measured, not guessed.
    let n = mix.size - 512;
    let tarball = await build(n);
    for (let tries = 0; tries < 4 && tarball.length !== mix.size; tries++) {
      n += mix.size - tarball.length;
      tarball = await build(n);
    }
    while (tarball.length > mix.size) tarball = await build((n -= 64));
    out.push({
      name,
      version,
      manifest,
      tarball,
      integrity: sriSha512(tarball),
      shasum: sha1Hex(tarball),
      sha256: sha256Hex(tarball),
    });
  }
  return out;
}

/** Top self-time functions of a V8 .cpuprofile, as rows. */
function profileTop(file, n = 20) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const total = prof.endTime - prof.startTime; // µs
  const byId = new Map(prof.nodes.map((x) => [x.id, x]));
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const node = byId.get(prof.samples[i]);
    const f = node.callFrame;
    const where = f.url
      ? `${f.url.replace(/^file:\/\/.*\/(packages|node_modules)\//, '$1/').replace(/^node:/, 'node:')}:${f.lineNumber + 1}`
      : '';
    const k = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(k, (self.get(k) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  // Percentages of the busy time: the server idles while the other servers are measured.
  const idle = self.get('(idle)') ?? 0;
  self.delete('(idle)');
  const busy = total - idle;
  return [
    { selfPct: undefined, selfMs: Math.round(idle / 1000), function: '(idle: not counted in selfPct)' },
    ...[...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, us]) => ({ selfPct: round((us / busy) * 100, 1), selfMs: Math.round(us / 1000), function: fn })),
  ];
}

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(
    `machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`,
  );

  // ---- the tarballs, synced (signed) and imported ----
  const t0 = performance.now();
  const mixes = [];
  for (const m of MIXES) mixes.push({ ...m, packages: await tarballsOfSize(m) });
  const packages = mixes.flatMap((m) => m.packages);
  const up = await startUpstream();
  serveNpmPackages(up, packages);
  const lockfile = join(scope.root, 'package-lock.json');
  writeFileSync(lockfile, JSON.stringify(flatLockfile(packages, up.url), null, 2));
  const signing = await startSigning(scope, scope.dir('plane'));
  const bundle = join(scope.root, 'bundle.tar');
  const synced = await syncToBundle({
    inputs: [{ path: lockfile, kind: 'npm-lock' }],
    out: bundle,
    signer: signing.signer,
    quiet: true,
    progress: 'none',
  });
  await up.close();
  const store = join(scope.root, 'store');
  const imp = await runOk(process.execPath, [CLI, ...cliImportArgs(bundle, store, signing)], { scope });
  const totalBytes = packages.reduce((n, p) => n + p.tarball.length, 0);
  console.log(
    `setup: ${packages.length} tarballs, ${(totalBytes / 1e6).toFixed(1)} MB; sync ${(synced.durationMs / 1000).toFixed(1)} s, ` +
      `import ${(imp.ms / 1000).toFixed(1)} s, whole setup ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // ---- nginx's document root: the same bytes at the same URL paths ----
  const www = scope.dir('www');
  for (const p of packages) {
    const file = join(www, npmTarballPath(p.name, p.version));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, p.tarball);
  }

  // ---- the servers ----
  const nginxServer = async (name, workers) => {
    const n = await startNginx(scope, www, { workers });
    return { name, kind: 'nginx', workers: workers === 'auto' ? CORES : workers, url: n.url, child: n.child };
  };
  const servers = [await nginxServer('nginx w1', 1)];
  if (CORES > 1) servers.push(await nginxServer(NGINX_AUTO, 'auto'));
  const floorFiles = join(scope.root, 'floor-files.json');
  writeFileSync(
    floorFiles,
    JSON.stringify(
      packages.map((p) => {
        const path = npmTarballPath(p.name, p.version);
        return { path, file: join(www, path), sha256: p.sha256 };
      }),
    ),
  );
  for (const workers of [...new Set([1, CORES])]) {
    const f = await startJsonChild(scope, process.execPath, [FLOOR_SCRIPT, floorFiles, String(workers)]);
    servers.push({ name: `floor w${workers}`, kind: 'floor', workers, url: f.json.url, child: f.child });
  }
  {
    const f = await startJsonChild(scope, process.execPath, [FLOOR_SCRIPT, floorFiles, String(CORES), '--stat']);
    servers.push({ name: `floor+stat w${CORES}`, kind: 'floor-stat', workers: CORES, url: f.json.url, child: f.child });
  }
  for (const workers of [...new Set([1, CORES])]) {
    const args = [
      'mirror',
      'serve',
      '--store',
      store,
      '--listen',
      '127.0.0.1:0',
      '--workers',
      String(workers),
      '--json',
    ];
    // Profiled: the primary process of airlock w1 only (worker processes are forked without the flag).
    const profileDir = PROFILE && workers === 1 ? scope.dir('cpu-prof') : undefined;
    const a = profileDir
      ? await startJsonChild(scope, process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, CLI, ...args])
      : await startCliJson(scope, args);
    servers.push({
      name: `airlock w${workers}`,
      kind: 'airlock',
      workers,
      url: a.json.url,
      child: a.child,
      profileDir,
    });
  }
  if (BASELINE_CLI) {
    for (const workers of [...new Set([1, CORES])]) {
      const args = ['mirror', 'serve', '--store', store, '--listen', '127.0.0.1:0', '--workers', String(workers)];
      const b = await startJsonChild(scope, process.execPath, [BASELINE_CLI, ...args, '--json']);
      servers.push({ name: `base w${workers}`, kind: 'baseline', workers, url: b.json.url, child: b.child });
    }
  }

  // Every server returns exactly the expected bytes for every path.
  for (const s of servers) {
    for (const p of packages) {
      const got = await fetchSha256(`${s.url}${npmTarballPath(p.name, p.version)}`);
      if (got !== p.sha256)
        throw new Error(`${s.name} ${p.name}@${p.version}: served sha256 ${got}, expected ${p.sha256}`);
    }
  }
  console.log(`checked: all ${servers.length} servers return the right bytes for all ${packages.length} tarball paths`);

  const gen = loadGenerator(scope.dir('load'), { connections: CONNECTIONS, threads: THREADS });
  console.log(
    `load: ${gen.name}, ${WARMUP} s warm-up + ${SECONDS} s measured per server and mix; servers and client share the ${CORES} cores`,
  );
  console.log(`${ROUNDS} round(s), server order reversed each round; median per server`);
  const rows = [];
  for (const m of mixes) {
    const paths = m.packages.map((p) => npmTarballPath(p.name, p.version));
    const mean = m.packages.reduce((n, p) => n + p.tarball.length, 0) / m.packages.length;
    const samples = new Map(servers.map((s) => [s.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 ? [...servers].reverse() : servers) {
        if (WARMUP > 0 && r === 0) await gen.run(s.url, paths, WARMUP);
        const pids = processTree(s.child.pid); // nginx master + workers; airlock primary + forked workers
        const cpu0 = cpuTimeMs(pids);
        const res = await gen.run(s.url, paths, SECONDS);
        const cpu1 = cpuTimeMs(pids);
        res.userUs = ((cpu1.user - cpu0.user) * 1000) / res.requests;
        res.sysUs = ((cpu1.system - cpu0.system) * 1000) / res.requests;
        res.cpuUs = res.userUs + res.sysUs;
        if (res.errors > 0)
          throw new Error(`${s.name} ${m.id}: ${res.errors} failed requests (non-2xx, timeouts or socket errors)`);
        samples.get(s.name).push(res);
        console.log(
          `  ${m.id.padEnd(7)} ${s.name.padEnd(10)} ${String(res.reqPerSec).padStart(7)} req/s ${String(res.mbPerSec).padStart(7)} MB/s  p50 ${res.p50Ms} ms  ` +
            `CPU ${res.cpuUs.toFixed(0)} µs/request (user ${res.userUs.toFixed(0)}, sys ${res.sysUs.toFixed(0)})`,
        );
      }
    }
    for (const s of servers) {
      const rs = samples.get(s.name);
      const med = (k) => median(rs.map((x) => x[k]));
      rows.push({
        mix: m.id,
        files: m.packages.length,
        meanKiB: round(mean / KiB, 1),
        server: s.name,
        kind: s.kind,
        workers: s.workers,
        reqPerSec: Math.round(med('reqPerSec')),
        mbPerSec: round(med('mbPerSec'), 1),
        p50Ms: round(med('p50Ms'), 3),
        p99Ms: round(med('p99Ms'), 3),
        requests: rs.reduce((n, x) => n + x.requests, 0),
        cpuUs: round(med('cpuUs'), 1),
        userUs: round(med('userUs'), 1),
        sysUs: round(med('sysUs'), 1),
        rounds: rs.map((x) => x.reqPerSec),
      });
    }
  }
  for (const r of rows) {
    const same = rows.find((x) => x.mix === r.mix && x.kind === 'nginx' && x.workers === r.workers);
    const auto = rows.find((x) => x.mix === r.mix && x.server === NGINX_AUTO);
    const floor = rows.find((x) => x.mix === r.mix && x.kind === 'floor' && x.workers === r.workers);
    r.vsNginxSame = r.kind !== 'nginx' && same ? ratio(r.reqPerSec, same.reqPerSec) : undefined;
    r.vsNginxAuto = ratio(r.reqPerSec, auto.reqPerSec);
    r.vsFloor =
      (r.kind === 'airlock' || r.kind === 'baseline') && floor ? ratio(r.reqPerSec, floor.reqPerSec) : undefined;
    // Per-request CPU efficiency against the cheaper nginx: what the ratio of requests/s would be if every server
    // had the same CPU to itself (the load generator and the neighbours' work removed).
    const cheapest = Math.min(...rows.filter((x) => x.mix === r.mix && x.kind === 'nginx').map((x) => x.cpuUs));
    r.cpuEff = r.kind !== 'nginx' ? ratio(cheapest, r.cpuUs) : undefined;
    r.cpuVsFloor = (r.kind === 'airlock' || r.kind === 'baseline') && floor ? ratio(floor.cpuUs, r.cpuUs) : undefined;
    const floorStat = rows.find((x) => x.mix === r.mix && x.kind === 'floor-stat' && x.workers === r.workers);
    r.vsFloorStat =
      (r.kind === 'airlock' || r.kind === 'baseline') && floorStat
        ? ratio(r.reqPerSec, floorStat.reqPerSec)
        : undefined;
  }
  console.log('');
  printTable(rows, [
    'mix',
    'files',
    'meanKiB',
    'server',
    'reqPerSec',
    'mbPerSec',
    'p50Ms',
    'p99Ms',
    'cpuUs',
    'userUs',
    'sysUs',
    'vsNginxSame',
    'vsNginxAuto',
    'vsFloor',
    'vsFloorStat',
    'cpuEff',
    'cpuVsFloor',
  ]);
  console.log(
    `\nvsNginxSame = airlock req/s ÷ nginx req/s at the same process count; vsNginxAuto = ÷ nginx worker_processes auto`,
  );
  console.log(`(${CORES}). Target ≥ ${TARGET}×. The load generator runs on the same ${CORES} cores as the servers.`);
  console.log(
    'vsFloor = airlock req/s ÷ the bare node:http floor at the same process count; cpuVsFloor = floor cpuUs ÷ airlock cpuUs.',
  );
  console.log('vsFloorStat = airlock req/s ÷ the floor with one lstat per request (floor+stat), same process count.');
  console.log(
    "cpuUs = CPU time (user + sys, all the server's processes) per request; cpuEff = the cheaper nginx's cpuUs ÷",
  );
  console.log(
    "airlock's: the requests/s ratio to expect when CPU, not the shared machine or the load generator, is the limit.",
  );
  for (const m of mixes.filter((x) => x.note)) console.log(`${m.id}: ${m.note}`);
  console.log(
    'airlock verifies on read: small blobs are hashed once and then served from memory while their stat token',
  );
  console.log(
    '(inode, size, mtime, ctime) is unchanged — one lstat per request; large blobs are streamed after the same',
  );
  console.log('token check. nginx does no verification.');

  let profile;
  const profiled = servers.find((s) => s.profileDir);
  if (profiled) {
    await scope.stop(profiled.child); // SIGTERM: the CLI closes and exits, and V8 writes the profile
    const file = readdirSync(profiled.profileDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile written in ${profiled.profileDir}`);
    mkdirSync(PROFILE, { recursive: true });
    const kept = join(PROFILE, `airlock-w1-${mixes.map((m) => m.id).join('+')}.cpuprofile`);
    copyFileSync(join(profiled.profileDir, file), kept);
    profile = profileTop(kept);
    console.log(
      `\nCPU profile of ${profiled.name} (whole run: setup checks + every mix; idle included), kept as ${kept}:`,
    );
    printTable(profile, ['selfPct', 'selfMs', 'function']);
  }

  const airlockRow = (mix, w) => rows.find((r) => r.mix === mix && r.server === `airlock w${w}`);
  const nginxAuto = (mix) => rows.find((r) => r.mix === mix && r.server === NGINX_AUTO);
  const summary = {};
  for (const m of mixes) {
    const best = [airlockRow(m.id, 1), airlockRow(m.id, CORES)]
      .filter(Boolean)
      .sort((a, b) => b.reqPerSec - a.reqPerSec)[0];
    summary[`${m.id}_airlock_rps`] = best.reqPerSec;
    summary[`${m.id}_nginx_rps`] = nginxAuto(m.id).reqPerSec;
    summary[`${m.id}_ratio`] = ratio(best.reqPerSec, nginxAuto(m.id).reqPerSec);
    summary[`${m.id}_cpu_eff`] = airlockRow(m.id, 1).cpuEff;
  }
  summary.worst_ratio = Math.min(...mixes.map((m) => summary[`${m.id}_ratio`]));
  const floorRow = (mix, w) => rows.find((r) => r.mix === mix && r.server === `floor w${w}`);
  for (const m of mixes) {
    summary[`${m.id}_floor_rps`] = floorRow(m.id, CORES).reqPerSec;
    summary[`${m.id}_floor_vs_nginx_auto`] = floorRow(m.id, CORES).vsNginxAuto;
    summary[`${m.id}_wN_vs_floor`] = airlockRow(m.id, CORES).vsFloor;
    const withStat = rows.find((r) => r.mix === m.id && r.kind === 'floor-stat');
    summary[`${m.id}_floor_stat_vs_nginx_auto`] = withStat.vsNginxAuto;
    summary[`${m.id}_wN_vs_floor_stat`] = airlockRow(m.id, CORES).vsFloorStat;
    summary[`${m.id}_stat_cpu_us`] = round(withStat.cpuUs - floorRow(m.id, CORES).cpuUs, 1);
  }
  for (const m of mixes) summary[`${m.id}_wN_vs_nginx_auto`] = airlockRow(m.id, CORES).vsNginxAuto;
  summary.target_met = mixes.every((m) => summary[`${m.id}_wN_vs_nginx_auto`] >= TARGET);
  console.log(
    `\nbest airlock variant ÷ nginx auto, req/s, per mix: ${mixes.map((m) => `${m.id} ${summary[`${m.id}_ratio`]}×`).join(', ')}`,
  );
  console.log(
    `airlock w1 CPU efficiency vs nginx, per mix:        ${mixes.map((m) => `${m.id} ${summary[`${m.id}_cpu_eff`]}×`).join(', ')}`,
  );
  console.log(
    `target (airlock w${CORES} ÷ nginx auto ≥ ${TARGET}×): ${mixes.map((m) => `${m.id} ${summary[`${m.id}_wN_vs_nginx_auto`]}×`).join(', ')} → ${summary.target_met ? 'met' : 'NOT met'}`,
  );
  console.log(
    `floor w${CORES} (bare node:http) ÷ nginx auto, req/s: ${mixes.map((m) => `${m.id} ${summary[`${m.id}_floor_vs_nginx_auto`]}×`).join(', ')}; ` +
      `airlock w${CORES} ÷ floor w${CORES}: ${mixes.map((m) => `${m.id} ${summary[`${m.id}_wN_vs_floor`]}×`).join(', ')}`,
  );
  console.log(
    `floor+stat w${CORES} ÷ nginx auto: ${mixes.map((m) => `${m.id} ${summary[`${m.id}_floor_stat_vs_nginx_auto`]}×`).join(', ')}; ` +
      `airlock w${CORES} ÷ floor+stat w${CORES}: ${mixes.map((m) => `${m.id} ${summary[`${m.id}_wN_vs_floor_stat`]}×`).join(', ')}; ` +
      `the lstat's CPU per request (floor+stat − floor): ${mixes.map((m) => `${m.id} ${summary[`${m.id}_stat_cpu_us`]} µs`).join(', ')}`,
  );
  const belowFloor = mixes.filter((m) => summary[`${m.id}_floor_vs_nginx_auto`] < TARGET).map((m) => m.id);
  if (belowFloor.length > 0)
    console.log(
      `FINDING: at ${belowFloor.join(', ')} a bare node:http server with the same workers answering from memory stays ` +
        `below ${TARGET}× nginx on this machine, so the target there is out of reach for any Node server as measured.`,
    );
  const after = await machineLoad();
  emit({
    summary,
    target: TARGET,
    loadGenerator: gen.name,
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    cores: CORES,
    mixes: mixes.map((m) => ({
      id: m.id,
      files: m.packages.length,
      bytes: m.packages.reduce((n, p) => n + p.tarball.length, 0),
      note: m.note,
    })),
    machine: { before: load, after },
    rows,
    ...(profile ? { profile } : {}),
  });
});
