#!/usr/bin/env node
// Transparency log throughput and proof latency.
//  1. Appends/second over HTTP (the server in its own process, dist/serve-main.js; durable group commit: one
//     fdatasync per batch, acknowledged after it) with 1, 8 and 32 concurrent clients, dsse entries (signatures
//     verified with node:crypto on the verifier threads); hashedrekord (@noble/curves) at 8 clients.
//     Peers in the same run: the same server verifying inline on the event loop (--verifier-threads 0; the default
//     below 4 cores), with one verifier thread, without tiles (what publication costs), one commit per entry
//     (--max-batch 1), and raw SQLite (better-sqlite3, synchronous=FULL,
//     one fsynced transaction per batch of 8 rows of the same size: the storage ceiling, no HTTP/crypto).
//     The load comes from lib-tlog-load.mjs in its own process (node:http keep-alive, bodies built before the
//     clock starts); its CPU per append is printed next to the server's. One signing key signs every entry, so
//     the log's cache of parsed verifiers always hits (a signer logging many entries in a row).
//  2. Inclusion / consistency proof latency (median, p99) on a BENCH_TLOG_TREE-entry tree (default 10 million),
//     populated by direct SQLite writes in big transactions (bench-only: real Merkle nodes, placeholder SETs),
//     plus GET /api/v1/log/entries?logIndex=N (entry + proof + checkpoint) over HTTP.
// The load average is printed and recorded: the machine may be shared.
//
// Env: BENCH_TLOG_ENTRIES (max entries per HTTP scenario, default 3000), BENCH_TLOG_WARMUP (untimed appends before
// each HTTP scenario, default 3000), BENCH_TLOG_TREE (default 10000000; 0 skips
// the proofs part), BENCH_TLOG_ONLY (comma-separated scenario names to run, for quick iterations),
// BENCH_TLOG_CPU_PROF (a directory: the server runs with node --cpu-prof writing its profile there),
// BENCH_TLOG_DIST (another build of packages/tlog/dist to measure, e.g. a baseline compiled from an older commit),
// BENCH_TLOG_REPEAT (runs of each headline 8-client scenario, default 3: the median run is reported, with all runs).
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emit, printTable, summarize } from './lib.mjs';

const ENTRIES = Number(process.env.BENCH_TLOG_ENTRIES ?? 3000);
const TREE = Number(process.env.BENCH_TLOG_TREE ?? 10_000_000);
const SCENARIO_BUDGET_MS = 8_000;
// Untimed appends per HTTP scenario before it is measured (see warmUp); 0 = the old 5-request warm-up only.
const CORES = availableParallelism();
const WARMUP = Number(process.env.BENCH_TLOG_WARMUP ?? 6000);
const REPEAT = Number(process.env.BENCH_TLOG_REPEAT ?? 3);
if (!Number.isInteger(REPEAT) || REPEAT < 1) throw new Error('BENCH_TLOG_REPEAT must be a positive integer');
const WARMUP_BUDGET_MS = 8_000;
const ONLY = process.env.BENCH_TLOG_ONLY ? new Set(process.env.BENCH_TLOG_ONLY.split(',')) : undefined;
const CPU_PROF = process.env.BENCH_TLOG_CPU_PROF;
const PROOF_SAMPLES = 2000;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = process.env.BENCH_TLOG_DIST ?? join(root, 'packages', 'tlog', 'dist');
if (process.env.BENCH_TLOG_DIST) console.log(`measuring the build in ${dist}`);
if (!existsSync(join(dist, 'index.js'))) {
  console.error(`tlog bench: ${dist} is missing; build first (npx tsc -b packages/tlog, or npm run bench)`);
  process.exit(1);
}
const { TransparencyLog, MerkleFrontier, hashLeaf, verifyInclusionProof, verifyConsistencyProof } = await import(
  pathToFileURL(join(dist, 'index.js')).href
);
const Database = createRequire(join(root, 'packages', 'tlog', 'package.json'))('better-sqlite3');
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);
const loadAtStart = load();
console.log(`load average at start: ${loadAtStart.join(' ')}`);

const work = mkdtempSync(join(tmpdir(), 'airlock-bench-tlog-'));
const children = new Set();
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

// ---- proposals (built before timing) ----
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pemB64 = Buffer.from(publicKey.export({ type: 'spki', format: 'pem' })).toString('base64');
let seq = 0;
function dsseProposal() {
  const payload = Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: `a${seq++}`, digest: { sha256: '00'.repeat(32) } }],
    }),
  );
  const type = 'application/vnd.in-toto+json';
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);
  const envelope = {
    payloadType: type,
    payload: payload.toString('base64'),
    signatures: [{ keyid: '', sig: sign('sha256', pae, privateKey).toString('base64') }],
  };
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: { proposedContent: { envelope: JSON.stringify(envelope), verifiers: [pemB64] } },
  };
}
// Rekor v2 CreateEntryRequest (dsse v0.0.2: logged as hashedrekord 0.0.2 over the PAE digest).
const spkiB64 = Buffer.from(publicKey.export({ type: 'spki', format: 'der' })).toString('base64');
function dsseV2Proposal() {
  const payload = Buffer.from(
    JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: `v2-${seq++}` }] }),
  );
  const type = 'application/vnd.in-toto+json';
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);
  return {
    dsseRequestV002: {
      envelope: {
        payload: payload.toString('base64'),
        payloadType: type,
        signatures: [{ sig: sign('sha256', pae, privateKey).toString('base64'), keyid: '' }],
      },
      verifiers: [{ publicKey: { rawBytes: spkiB64 }, keyDetails: 'PKIX_ECDSA_P256_SHA_256' }],
    },
  };
}
function hashedRekordProposal() {
  const data = Buffer.from(`artifact ${seq++}`);
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(data).digest('hex') } },
      signature: { content: sign('sha256', data, privateKey).toString('base64'), publicKey: { content: pemB64 } },
    },
  };
}

// ---- HTTP appends against a separate server process ----
async function startServer(dataDir, maxBatch, verifierThreads, tiles) {
  const args = [
    ...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []),
    join(dist, 'serve-main.js'),
    '--data',
    dataDir,
    '--port',
    '0',
    ...(maxBatch ? ['--max-batch', String(maxBatch)] : []),
    ...(verifierThreads !== undefined ? ['--verifier-threads', String(verifierThreads)] : []),
    ...(tiles ? ['--tiles', tiles] : []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`serve-main exited with ${code}`)));
  });
  return {
    url: JSON.parse(line).url,
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
        children.delete(child);
      }),
  };
}

async function appendScenario(name, { clients, kind = 'dsse', maxBatch, verifierThreads, tiles }) {
  const make = kind === 'dsse' ? dsseProposal : kind === 'dsse-v2' ? dsseV2Proposal : hashedRekordProposal;
  const count = Math.max(clients * 4, Math.min(ENTRIES, clients * 400));
  const bodies = Array.from({ length: count }, () => JSON.stringify(make()));
  const dir = mkdtempSync(join(work, 'http-'));
  const server = await startServer(dir, maxBatch, verifierThreads, tiles);
  // v1 answers once the batch is durable (tiles follow in the background); v2 once the tiles covering it are readable.
  const url = `${server.url}/api/${kind === 'dsse-v2' ? 'v2' : 'v1'}/log/entries`;
  // warm-up (key load, JIT, connection pool)
  for (let i = 0; i < 5; i++)
    await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(make()),
    }).then((r) => r.arrayBuffer());
  // The load generator runs in its own process (lib-tlog-load.mjs: node:http keep-alive, bodies pre-built).
  const bodiesFile = join(dir, 'bodies.jsonl');
  await warmUp(name, url, dir, make, clients);
  writeFileSync(bodiesFile, bodies.join('\n'));
  const cpu0 = cpuMs(server.pid);
  const split0 = cpuSplit(server.pid);
  const gen = await runLoad({ url, bodiesFile, clients, budgetMs: SCENARIO_BUDGET_MS });
  if (gen.errors > 0) throw new Error(`${name}: ${gen.errors} failed appends ${JSON.stringify(gen.statuses)}`);
  const latencies = gen.latencies;
  const done = gen.done;
  const seconds = gen.seconds;
  const serverCpuMs = cpuMs(server.pid) - cpu0;
  const split = cpuSplit(server.pid, split0);
  await server.stop();
  const lat = summarize(latencies);
  return {
    scenario: name,
    clients,
    kind,
    commit: maxBatch === 1 ? 'per-entry' : 'group',
    verify: verifierThreads === undefined ? 'default' : verifierThreads === 0 ? 'inline' : `${verifierThreads} threads`,
    tiles: tiles === 'off' ? 'off' : 'on',
    entries: done,
    perSec: Math.round(done / seconds),
    p50Ms: lat.p50,
    p99Ms: lat.p99,
    // Load-independent: server CPU (all threads, user+sys) per acknowledged append.
    cpuMsPerEntry: Math.round((serverCpuMs / done) * 100) / 100,
    // Of which: kernel time, and the event-loop thread's share (the rest: libuv pool, GC and verifier threads).
    sysMsPerEntry: Math.round((split.sys / done) * 100) / 100,
    mainMsPerEntry: Math.round((split.main / done) * 100) / 100,
    // The load generator's own CPU per append (it must not be the bottleneck).
    loadGenCpuMsPerEntry: Math.round((gen.cpuMs / done) * 100) / 100,
    // How busy server + load generator kept this machine's cores, and the appends/s their CPU per append would allow
    // at 100 % of every core (server and clients share them): what throughput to expect where CPU is the limit.
    cpuBusyPct: Math.round(((serverCpuMs + gen.cpuMs) / (seconds * 1000 * CORES)) * 100),
    cpuCeilingPerSec: Math.round((CORES * 1000 * done) / (serverCpuMs + gen.cpuMs)),
  };
}

/**
 * Untimed appends under the scenario's own load before the clock starts: a fresh server spends its first few
 * thousand appends compiling (V8's background threads used ~0.2 ms of CPU per append more over the first 3,000
 * than over the next ones), which is start-up, not the cost of an append on a running log.
 */
async function warmUp(name, url, dir, make, clients) {
  if (WARMUP === 0) return;
  const file = join(dir, 'warmup.jsonl');
  writeFileSync(file, Array.from({ length: WARMUP }, () => JSON.stringify(make())).join('\n'));
  const gen = await runLoad({ url, bodiesFile: file, clients, budgetMs: WARMUP_BUDGET_MS });
  if (gen.errors > 0) throw new Error(`${name} warm-up: ${gen.errors} failed appends ${JSON.stringify(gen.statuses)}`);
}

/** Runs lib-tlog-load.mjs in its own process; resolves with its JSON result line. */
function runLoad(config) {
  const child = spawn(
    process.execPath,
    [join(dirname(fileURLToPath(import.meta.url)), 'lib-tlog-load.mjs'), JSON.stringify(config)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      children.delete(child);
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

/** User+system CPU time of a process, all threads (ms; Linux /proc, clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The server's CPU split (ms): kernel time of all threads, and user+sys of the event-loop thread (tid = pid).
 * Threads that exit between two readings are missed by `main`, not by `sys` (the process total).
 */
function cpuSplit(pid, since = { sys: 0, main: 0 }) {
  const ticks = (path) => readFileSync(path, 'utf8').split(') ')[1].split(' ');
  const proc = ticks(`/proc/${pid}/stat`);
  const main = ticks(`/proc/${pid}/task/${pid}/stat`);
  return {
    sys: Number(proc[12]) * 10 - since.sys,
    main: (Number(main[11]) + Number(main[12])) * 10 - since.main,
  };
}

/**
 * The headline 8-client scenarios run `repeat` times (fresh server each time): one run on this VM can differ from the
 * next by 20 %. The row is the run with the median appends/s; `runs` lists every run's appends/s.
 */
async function repeated(name, { repeat = 1, ...opts }) {
  const runs = [];
  for (let i = 0; i < repeat; i++) runs.push(await appendScenario(name, opts));
  runs.sort((a, b) => a.perSec - b.perSec);
  return { ...runs[Math.floor((runs.length - 1) / 2)], runs: runs.map((r) => r.perSec).join('/') };
}

const appendRows = [];
for (const [name, opts] of [
  ['dsse x1', { clients: 1 }],
  ['dsse x8', { clients: 8, repeat: REPEAT }],
  ['dsse x32', { clients: 32 }],
  ['v2 dsse x1', { clients: 1, kind: 'dsse-v2' }],
  ['v2 dsse x8', { clients: 8, kind: 'dsse-v2', repeat: REPEAT }],
  ['v2 dsse x32', { clients: 32, kind: 'dsse-v2' }],
  ['hashedrekord x8', { clients: 8, kind: 'hashedrekord', repeat: REPEAT }],
  ['dsse x8 inline verify (peer)', { clients: 8, verifierThreads: 0 }],
  ['dsse x8 1 verifier thread (peer)', { clients: 8, verifierThreads: 1 }],
  ['dsse x8 tiles off (peer)', { clients: 8, tiles: 'off' }],
  ['dsse x8 per-entry commit (peer)', { clients: 8, maxBatch: 1 }],
]) {
  if (ONLY && !ONLY.has(name)) continue;
  const row = await repeated(name, opts);
  appendRows.push(row);
  const all = row.runs.includes('/') ? `, runs ${row.runs}/s` : '';
  console.log(`${name}: ${row.perSec}/s (${row.entries} entries, p50 ${row.p50Ms.toFixed(1)} ms${all})`);
}
console.log('\nHTTP appends (durable: acknowledged after an fsynced commit)');
printTable(appendRows, [
  'scenario',
  'clients',
  'kind',
  'commit',
  'verify',
  'tiles',
  'entries',
  'perSec',
  'runs',
  'p50Ms',
  'p99Ms',
  'cpuMsPerEntry',
  'sysMsPerEntry',
  'mainMsPerEntry',
  'loadGenCpuMsPerEntry',
  'cpuBusyPct',
  'cpuCeilingPerSec',
]);

if (ONLY || TREE === 0) {
  // Quick iteration: the appends only (no peers summary, no proofs).
  console.log(`load average at end: ${load().join(' ')} (start: ${loadAtStart.join(' ')})`);
  emit({ appends: appendRows, loadAverage: { start: loadAtStart, end: load() } });
  process.exit(0);
}

// Raw SQLite peer: the same table shape, one synchronous=FULL transaction (fsync) per batch of 8 rows.
function rawSqlitePeer(rows = 2000, batch = 8) {
  const db = new Database(join(mkdtempSync(join(work, 'raw-')), 'raw.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE entries (log_index INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL)');
  const put = db.prepare('INSERT INTO entries VALUES (?, ?, ?)');
  const body = Buffer.alloc(1100, 7); // about a dsse entry body with its verifier PEM
  const commit = db.transaction((start) => {
    for (let i = start; i < start + batch; i++) put.run(i, createHash('sha256').update(String(i)).digest(), body);
  });
  const t0 = performance.now();
  for (let start = 0; start < rows; start += batch) commit.immediate(start);
  const seconds = (performance.now() - t0) / 1000;
  db.close();
  return { rows, batch, perSec: Math.round(rows / seconds), fsyncsPerSec: Math.round(rows / batch / seconds) };
}
const raw = rawSqlitePeer();
console.log(
  `raw SQLite peer: ${raw.perSec} rows/s in fsynced transactions of ${raw.batch} (${raw.fsyncsPerSec} commits/s)`,
);

// ---- proofs at a big tree (bench-only bulk populate: direct SQLite writes in big transactions) ----
const treeDir = mkdtempSync(join(work, 'tree-'));
await (await TransparencyLog.open({ dataDir: treeDir, logName: 'bench' })).close(); // schema, key, tree ID
const tPop = performance.now();
{
  const db = new Database(join(treeDir, 'tlog.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // bench-only: the tree is rebuilt if the bench dies
  db.pragma('cache_size = -1000000');
  const putEntry = db.prepare(
    "INSERT INTO entries (log_index, leaf_hash, body, integrated_time, kind, api_version, set_sig) VALUES (?, ?, ?, 0, 'dsse', '0.0.1', x'00')",
  );
  const putNode = db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)');
  const frontier = MerkleFrontier.empty();
  const CHUNK = 200_000;
  const chunk = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const body = Buffer.from(`{"i":${i}}`);
      const leaf = hashLeaf(body);
      putEntry.run(i, leaf, body);
      const created = frontier.append(leaf);
      for (let k = 1; k < created.length; k++) putNode.run(created[k].level, created[k].index, created[k].hash);
    }
  });
  for (let from = 0; from < TREE; from += CHUNK) {
    chunk(from, Math.min(TREE, from + CHUNK));
    if ((from / CHUNK) % 10 === 9) console.log(`  populated ${from + CHUNK} …`);
  }
  db.prepare("UPDATE meta SET value = ? WHERE key = 'tree_size'").run(String(TREE));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}
const populateSeconds = (performance.now() - tPop) / 1000;
console.log(
  `\npopulated ${TREE} entries by direct SQLite writes in ${populateSeconds.toFixed(1)} s (${Math.round(TREE / populateSeconds)}/s)`,
);
const log = await TransparencyLog.open({ dataDir: treeDir, logName: 'bench' });
const size = log.size;
const rootN = await log.rootAt(size);
const rand = (n) => Math.floor(Math.random() * n);
const inclusion = [];
const consistency = [];
for (let s = 0; s < PROOF_SAMPLES; s++) {
  const i = rand(size);
  let t = performance.now();
  const proof = await log.inclusionProof(i, size);
  inclusion.push(performance.now() - t);
  if (
    s % 50 === 0 &&
    !verifyInclusionProof(hashLeaf(Buffer.from((await log.getByIndex(i)).body, 'base64')), i, size, proof, rootN)
  ) {
    throw new Error(`inclusion proof for ${i} does not verify`);
  }
  const m = 1 + rand(size - 1);
  t = performance.now();
  const cproof = await log.consistencyProof(m, size);
  consistency.push(performance.now() - t);
  if (s % 50 === 0 && !verifyConsistencyProof(m, size, await log.rootAt(m), rootN, cproof))
    throw new Error(`consistency proof ${m}→${size} does not verify`);
}
const inc = summarize(inclusion);
const con = summarize(consistency);
await log.close();

// The same over HTTP: GET an entry (stored SET + fresh inclusion proof + cached checkpoint). Tiles off: publishing
// 10M entries' tiles at startup is not what this measures.
const server = await startServer(treeDir, undefined, undefined, 'off');
const httpGet = [];
for (let s = 0; s < 500; s++) {
  const t = performance.now();
  const res = await fetch(`${server.url}/api/v1/log/entries?logIndex=${rand(size)}`);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET entry: HTTP ${res.status}`);
  httpGet.push(performance.now() - t);
}
await server.stop();
const get = summarize(httpGet);
const proofRows = [
  { operation: `inclusionProof(random, ${size})`, samples: inc.iterations, p50Ms: inc.p50, p99Ms: inc.p99 },
  { operation: `consistencyProof(random, ${size})`, samples: con.iterations, p50Ms: con.p50, p99Ms: con.p99 },
  { operation: 'HTTP GET entry by logIndex', samples: get.iterations, p50Ms: get.p50, p99Ms: get.p99 },
];
console.log('\nproofs at a', size, 'entry tree');
printTable(proofRows, ['operation', 'samples', 'p50Ms', 'p99Ms']);

console.log(`load average at end: ${load().join(' ')} (start: ${loadAtStart.join(' ')})`);
const by = (name) => appendRows.find((r) => r.scenario === name);
emit({
  summary: {
    loadAvg1Start: loadAtStart[0],
    appendsPerSec1: by('dsse x1').perSec,
    appendsPerSec8: by('dsse x8').perSec,
    appendsPerSec32: by('dsse x32').perSec,
    v2PerSec1: by('v2 dsse x1').perSec,
    v2PerSec8: by('v2 dsse x8').perSec,
    v2PerSec32: by('v2 dsse x32').perSec,
    hashedrekordPerSec8: by('hashedrekord x8').perSec,
    p99Ms8: by('dsse x8').p99Ms,
    cpuMsPerEntry8: by('dsse x8').cpuMsPerEntry,
    loadGenCpuMsPerEntry8: by('dsse x8').loadGenCpuMsPerEntry,
    cpuBusyPct8: by('dsse x8').cpuBusyPct,
    cpuCeilingPerSec8: by('dsse x8').cpuCeilingPerSec,
    inlineVerifyPerSec8: by('dsse x8 inline verify (peer)').perSec,
    ratioVsInline8: Math.round((by('dsse x8').perSec / by('dsse x8 inline verify (peer)').perSec) * 100) / 100,
    oneVerifierThreadPerSec8: by('dsse x8 1 verifier thread (peer)').perSec,
    oneVerifierThreadCpuMsPerEntry8: by('dsse x8 1 verifier thread (peer)').cpuMsPerEntry,
    tilesOffCpuMsPerEntry8: by('dsse x8 tiles off (peer)').cpuMsPerEntry,
    perEntryCommitPerSec8: by('dsse x8 per-entry commit (peer)').perSec,
    rawSqliteBatch8PerSec: raw.perSec,
    inclusionP50Ms: inc.p50,
    inclusionP99Ms: inc.p99,
    consistencyP50Ms: con.p50,
    consistencyP99Ms: con.p99,
  },
  appends: appendRows,
  rawSqlitePeer: raw,
  loadAverage: { start: loadAtStart, end: load() },
  treeSize: size,
  populatePerSec: Math.round(TREE / populateSeconds),
  proofs: proofRows,
});
