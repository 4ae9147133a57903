#!/usr/bin/env node
// RFC 3161 timestamps per second: the embedded TSA (@airlock/tsa) answering binary TimeStampReqs over HTTP with
// 8 concurrent clients, and its in-process signing path, against `openssl ts -reply` signing the same query with
// an ECDSA P-256 key of the same kind (one process per reply, as a CLI-based TSA would run), in the same run.
//
// Env: BENCH_TSA_SECONDS (per method, default 5), BENCH_TSA_CLIENTS (default 8).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emit, printTable, ratio, skip, which } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_TSA_SECONDS ?? 5);
const CLIENTS = Number(process.env.BENCH_TSA_CLIENTS ?? 8);
const openssl = which('openssl');
if (!openssl) skip('openssl not installed: `openssl ts -reply` is the reference');
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'tsa', 'dist', 'index.js');
if (!existsSync(dist)) {
  console.error(`tsa bench: ${dist} is missing; build first (npx tsc -b packages/tsa)`);
  process.exit(1);
}
const { loadOrCreateTsaMaterial, startTsaServer, TimestampAuthority, parseTimestampQuery, TSA_DIR } = await import(
  pathToFileURL(dist).href
);

const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-tsa-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const material = await loadOrCreateTsaMaterial(dir);
writeFileSync(join(dir, 'data'), 'bench\n');
execFileSync(openssl, ['ts', '-query', '-data', join(dir, 'data'), '-sha256', '-cert', '-out', join(dir, 'q.tsq')]);
const query = readFileSync(join(dir, 'q.tsq'));

/** Runs `fn` repeatedly for SECONDS with `workers` in parallel; returns completed operations per second. */
async function rate(workers, fn) {
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        await fn();
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

// ---- airlock over HTTP ----
const server = await startTsaServer({ material });
const url = `${server.url}/api/v1/timestamp`;
const http = await rate(CLIENTS, async () => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/timestamp-query' },
    body: query,
  });
  if (res.status !== 201) throw new Error(`TSA answered ${res.status}`);
  await res.arrayBuffer();
});
await server.close();

// ---- airlock in process (sign path only) ----
const tsa = new TimestampAuthority(material);
const req = parseTimestampQuery(query);
const inproc = await rate(1, async () => void tsa.respond(req));

// ---- openssl ts -reply (same key type, same query), 8 processes at a time ----
const conf = join(dir, 'ts.cnf');
const tsaDir = join(dir, TSA_DIR);
writeFileSync(
  conf,
  [
    '[ tsa ]',
    'default_tsa = tsa_config',
    '[ tsa_config ]',
    `serial = ${join(dir, 'serial')}`,
    `signer_cert = ${join(tsaDir, 'tsa.pem')}`,
    `signer_key = ${join(tsaDir, 'tsa-key.pem')}`,
    'signer_digest = sha256',
    'default_policy = 1.3.6.1.4.1.57264.2',
    'digests = sha256',
    'accuracy = secs:1',
    'ess_cert_id_alg = sha256',
    'ess_cert_id_chain = no',
    '',
  ].join('\n'),
);
writeFileSync(join(dir, 'serial'), '01\n');
const { spawn } = await import('node:child_process');
const opensslReply = () =>
  new Promise((resolve, reject) => {
    const p = spawn(openssl, ['ts', '-reply', '-config', conf, '-queryfile', join(dir, 'q.tsq'), '-out', '/dev/null'], {
      stdio: 'ignore',
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ts -reply exited ${code}`))));
  });
const check = spawnSync(openssl, [
  'ts',
  '-reply',
  '-config',
  conf,
  '-queryfile',
  join(dir, 'q.tsq'),
  '-out',
  '/dev/null',
]);
if (check.status !== 0) throw new Error(`openssl ts -reply failed: ${check.stderr}`);
const ossl = await rate(CLIENTS, opensslReply);

const load = loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');
printTable([
  { method: `airlock TSA, HTTP, ${CLIENTS} clients`, 'timestamps/s': Math.round(http) },
  { method: 'airlock TSA, in process (sign only)', 'timestamps/s': Math.round(inproc) },
  { method: `openssl ts -reply, ${CLIENTS} processes`, 'timestamps/s': Math.round(ossl) },
]);
console.log(`airlock HTTP / openssl ts -reply = ${ratio(http, ossl)}  (load average ${load})`);
emit({ httpPerSec: http, inProcessPerSec: inproc, opensslReplyPerSec: ossl, ratio: http / ossl, loadAverage: load });
