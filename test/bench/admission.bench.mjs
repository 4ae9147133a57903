#!/usr/bin/env node
// Admission webhook latency and throughput (issue 9 §3): `airlock admission serve` over HTTPS on loopback, each
// server in its own process (never sharing the load generator's event loop), fed
// POST /validate with one AdmissionReview for a Deployment with 3 runner-signed images (3 distinct digests in a real
// docker-registry, signed through a real trust plane), by autocannon at a fixed 200 requests/s for a bounded time:
//   - warm: the verification cache on and primed (every request a cache hit; the policy still re-evaluated), with
//     the images by tag (3 tags resolved in the registry per request) and digest-pinned (no registry at all);
//   - cold: a second server with the cache off, so every request resolves 3 tags in the registry, fetches the
//     referrers and verifies every bundle (the no-cache baseline, in the same run);
//   - floor: GET /healthz on the same server (TLS + HTTP only), to show what the server itself costs.
// Latencies are autocannon's (corrected for coordinated omission at the fixed rate). Targets: warm p99 < 5 ms,
// cold p99 < 100 ms, printed as met / not met. Every verdict is checked before the load: a deny fails the bench.
//
//   npm run bench -- admission          BENCH_ADMISSION_SECONDS=10 (per phase)  BENCH_ADMISSION_CONNECTIONS=16
//   BENCH_ADMISSION_CPU_PROF=DIR        the servers run under node --cpu-prof (profiles written to DIR on exit)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  admissionWorldProblems,
  buildAdmissionWorld,
  makePki,
  opensslProblem,
  startCliProcess,
  workloadReview,
} from '../../packages/testkit/dist/index.js';
import { emit, printTable, skip, time } from './lib.mjs';

const RATE = 200;
const SECONDS = Number(process.env.BENCH_ADMISSION_SECONDS ?? 10);
const MAX_CONNECTIONS = Number(process.env.BENCH_ADMISSION_CONNECTIONS ?? 64);
const WARMUP_SECONDS = 1;
const LOADGEN = fileURLToPath(new URL('./lib-admission-load.mjs', import.meta.url));
const execFileP = promisify(execFile);
const ALLOWED = '"allowed":true';
const TARGETS = { warmP99Ms: 5, coldP99Ms: 100 };
const CLI = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

async function main() {
  const problems = [...admissionWorldProblems(), opensslProblem()].filter(Boolean);
  if (problems.length > 0) skip(`needs ${problems.join('; ')}`);

  const world = await buildAdmissionWorld({ cli: CLI, extraSigned: 2, progress: (m) => console.log(`world: ${m}`) });
  const servers = [];
  try {
    const images = [world.images.signed, ...world.images.extraSigned].map((i) => i.reference);
    const conf = writeConfig(world);
    const warmServer = await serve(conf, { cache: true });
    servers.push(warmServer);
    const coldServer = await serve(conf, { cache: false });
    servers.push(coldServer);
    const body = JSON.stringify(workloadReview('Deployment', { containers: images }, { name: 'bench' }));
    const pinnedImages = [world.images.signed, ...world.images.extraSigned].map((i) => i.pinned);
    const pinnedBody = JSON.stringify(workloadReview('Deployment', { containers: pinnedImages }, { name: 'bench' }));

    // Correctness first: both servers allow the 3 signed images (and the warm one now has them cached).
    for (const s of [warmServer, coldServer]) await expectAllowed(s, body, conf.ca);
    await expectAllowed(warmServer, pinnedBody, conf.ca);

    // Service time without load: one request at a time (queueing excluded), for reading the loaded numbers.
    const alone = {
      warm: await sequential(`${warmServer.url}/validate`, body, conf.ca),
      warmPinned: await sequential(`${warmServer.url}/validate`, pinnedBody, conf.ca),
      cold: await sequential(`${coldServer.url}/validate`, body, conf.ca),
    };
    console.log(
      `one request at a time (p50 / p99 ms of ${SEQUENTIAL}): warm ${fmt(alone.warm)}, warm pinned ${fmt(alone.warmPinned)}, cold ${fmt(alone.cold)}`,
    );
    const loadBefore = loadavg()[0];
    const floor = await load(`${warmServer.url}/healthz`, { method: 'GET', expect: 'ok' }, conf.ca);
    const warm = await load(`${warmServer.url}/validate`, { method: 'POST', body, expect: ALLOWED }, conf.ca);
    const warmPinned = await load(
      `${warmServer.url}/validate`,
      { method: 'POST', body: pinnedBody, expect: ALLOWED },
      conf.ca,
    );
    const cold = await load(`${coldServer.url}/validate`, { method: 'POST', body, expect: ALLOWED }, conf.ca);

    const loadAfter = loadavg()[0];
    const rows = [
      { phase: 'floor (GET /healthz)', ...floor },
      { phase: 'warm (cache hit; 3 tags resolved)', ...warm },
      { phase: 'warm (cache hit; digest-pinned)', ...warmPinned },
      { phase: 'cold (cache off, no-cache baseline)', ...cold },
    ];
    console.log(
      `\nadmission: Deployment with 3 images, ${RATE} req/s for ${SECONDS}s per phase, at most ${MAX_CONNECTIONS} connections, open loop`,
    );
    printTable(rows, [
      'phase',
      'p50Ms',
      'p90Ms',
      'p99Ms',
      'maxMs',
      'reqPerSec',
      'requests',
      'failed',
      'connections',
      'sendLagP99Ms',
      'generatorCpuPct',
      'load1',
    ]);
    // The machine is shared: say how busy it was, or the numbers cannot be read.
    console.log(
      `1-minute load average: ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after (cores: 2 expected)`,
    );
    const met = {
      warm: warm.p99Ms < TARGETS.warmP99Ms && warm.failed === 0,
      cold: cold.p99Ms < TARGETS.coldP99Ms && cold.failed === 0,
    };
    console.log(`target warm p99 < ${TARGETS.warmP99Ms} ms: ${met.warm ? 'met' : 'NOT met'} (${warm.p99Ms} ms)`);
    console.log(
      `target warm p99 < ${TARGETS.warmP99Ms} ms with digest-pinned images: ${warmPinned.p99Ms < TARGETS.warmP99Ms ? 'met' : 'NOT met'} (${warmPinned.p99Ms} ms)`,
    );
    console.log(`target cold p99 < ${TARGETS.coldP99Ms} ms: ${met.cold ? 'met' : 'NOT met'} (${cold.p99Ms} ms)`);
    emit({
      summary: {
        warmP50Ms: warm.p50Ms,
        warmP99Ms: warm.p99Ms,
        warmReqPerSec: warm.reqPerSec,
        warmPinnedP99Ms: warmPinned.p99Ms,
        coldP50Ms: cold.p50Ms,
        coldP99Ms: cold.p99Ms,
        coldReqPerSec: cold.reqPerSec,
        warmTargetMet: met.warm,
        coldTargetMet: met.cold,
      },
      sequential: alone,
      loadAverage: { before: loadBefore, after: loadAfter },
      rate: RATE,
      seconds: SECONDS,
      maxConnections: MAX_CONNECTIONS,
      images: 3,
      targets: TARGETS,
      floor,
      warm,
      warmPinned,
      cold,
    });
  } finally {
    for (const s of servers) await s.stop();
    await world.close();
  }
}

/** The admission policy (runner identity and builder id), the registries file (the world's registry) and TLS. */
function writeConfig(w) {
  const dir = join(w.dir, 'admission');
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, 'admission.policy.yaml');
  writeFileSync(
    policy,
    `apiVersion: airlock.dev/admission-policy/v1
policies:
  - name: runner-built
    images: ['${w.registry.host}/acme/**']
    release:
      inline:
        apiVersion: airlock.dev/policy/v1
        authorities:
          runner: { keyless: { subject: '${w.identities.runner}', issuer: '${w.issuer}' } }
        provenance:
          authorities: [runner]
          builderIds: ['${w.builderIds.runner}']
`,
  );
  const registries = join(dir, 'registries.yaml');
  writeFileSync(registries, `registries:\n  '${w.registry.host}': { plainHttp: true }\n`);
  const pki = makePki(dir);
  return { dir, policy, registries, trustedRoot: w.trustedRootPath, pki, ca: readFileSync(pki.caFile) };
}

/** `airlock admission serve` (cache on, or --no-cache) on 127.0.0.1:0 in its own process, until stop(). */
async function serve(conf, { cache }) {
  const args = ['admission', 'serve', '--policy', conf.policy, '--trusted-root', conf.trustedRoot];
  args.push('--registry-config', conf.registries, '--tls-cert', conf.pki.certFile, '--tls-key', conf.pki.keyFile);
  args.push('--listen', '127.0.0.1:0', '--json', ...(cache ? [] : ['--no-cache']));
  // BENCH_ADMISSION_CPU_PROF=DIR: each server runs under `node --cpu-prof` and writes its profile there on exit.
  const prof = process.env.BENCH_ADMISSION_CPU_PROF;
  const p = prof
    ? await startCliProcess(`--cpu-prof-dir=${prof}`, ['--cpu-prof', CLI, ...args], (o) => o.trim().endsWith('}'))
    : await startCliProcess(CLI, args, (o) => o.trim().endsWith('}'));
  return { url: JSON.parse(p.stdout()).url, stop: p.stop };
}

const SEQUENTIAL = 40;
const fmt = (t) => `${t.p50.toFixed(1)} / ${t.p99.toFixed(1)}`;

async function sequential(url, body, ca) {
  const t = await time(
    async () => {
      const r = await post(url, body, ca);
      if (r.status !== 200 || !JSON.parse(r.text).response?.allowed) throw new Error(`not allowed: ${r.text}`);
    },
    { iterations: SEQUENTIAL, warmup: 2 },
  );
  return {
    p50: Math.round(t.p50 * 100) / 100,
    p99: Math.round(t.p99 * 100) / 100,
    mean: Math.round(t.mean * 100) / 100,
  };
}

function post(url, body, ca) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function expectAllowed(server, body, ca) {
  const r = await post(`${server.url}/validate`, body, ca);
  const response = r.status === 200 ? JSON.parse(r.text).response : undefined;
  if (!response?.allowed)
    throw new Error(`the bench Deployment was not allowed (HTTP ${r.status}): ${r.text.slice(0, 2000)}`);
}

/**
 * RATE req/s for SECONDS against `url` from lib-admission-load.mjs in its own process (open loop, latency from
 * each request's due time); ms. `expect`: a substring every good answer contains.
 */
async function load(url, { method, body, expect }, ca) {
  const config = { url, method, body, expect, caPem: ca.toString('utf8'), rate: RATE, seconds: SECONDS };
  Object.assign(config, { warmupSeconds: WARMUP_SECONDS, maxConnections: MAX_CONNECTIONS });
  const before = loadavg()[0];
  const { stdout } = await execFileP(process.execPath, [LOADGEN, JSON.stringify(config)], {
    maxBuffer: 1 << 20,
    timeout: (SECONDS + WARMUP_SECONDS + 30) * 1000,
  });
  return { ...JSON.parse(stdout.trim().split('\n').pop()), load1: Math.round(((before + loadavg()[0]) / 2) * 10) / 10 };
}

await main();
