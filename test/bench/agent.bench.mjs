#!/usr/bin/env node
// Token issuance latency through the workload attestation agent (issue 10 §2): a real agent on a UNIX socket,
// a real caller (this process), every request doing the full path: SO_PEERCRED + SO_PEERPIDFD pin, /proc reads
// (stat, exe, cgroup), the executable digest (cached by file identity after the first request), the re-check,
// entry matching, an ES256 signature and an audit line written to a file.
//   1. the first request (cold: hashes the node binary)
//   2. N sequential requests: p50 / p99 latency
//   3. N requests from 8 concurrent callers: p50 / p99 and throughput
//   4. baseline: the same signature without the agent (IdentityIssuer.issueToken in process)
// Env: BENCH_AGENT_REQUESTS (default 1000).
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emit, printTable, skip, summarize } from './lib.mjs';

const N = Number(process.env.BENCH_AGENT_REQUESTS ?? 1000);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const agentDist = join(root, 'packages', 'agent', 'dist', 'index.js');
if (process.platform !== 'linux') skip('the agent needs Linux (SO_PEERCRED, pidfd, /proc)');
if (!fs.existsSync(join(root, 'packages', 'agent', 'build', 'Release', 'airlock_peer.node'))) {
  console.error('agent bench: the native addon is not built (npm rebuild @airlock/agent)');
  process.exit(1);
}
const { startAgent, requestAgentToken } = await import(pathToFileURL(agentDist).href);
const { IdentityIssuer } = await import(pathToFileURL(join(root, 'packages', 'identity', 'dist', 'index.js')).href);

const work = fs.mkdtempSync(join(tmpdir(), 'airlock-bench-agent-'));
const RUNNER = 'spiffe://airlock.internal/airlock/runner';
try {
  const signer = await IdentityIssuer.open({
    dataDir: work,
    issuerUrl: 'http://127.0.0.1:9',
    trustDomain: 'airlock.internal',
  });
  const auditFd = fs.openSync(join(work, 'audit.jsonl'), 'a', 0o600);
  const node = fs.realpathSync(process.execPath);
  const agent = await startAgent({
    socketPath: join(work, 'agent.sock'),
    signer,
    entries: [{ spiffeId: RUNNER, selectors: [`unix:uid:${process.getuid()}`, `unix:path:${node}`], ttlSeconds: 300 }],
    log: (r) => fs.writeSync(auditFd, `${JSON.stringify(r)}\n`),
  });
  const ask = () => requestAgentToken(agent.socketPath, { subject: RUNNER });

  let t = performance.now();
  await ask();
  const coldMs = performance.now() - t;

  const seq = [];
  for (let i = 0; i < N; i++) {
    t = performance.now();
    await ask();
    seq.push(performance.now() - t);
  }

  const conc = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    [...Array(8)].map(async () => {
      while (next++ < N) {
        const s = performance.now();
        await ask();
        conc.push(performance.now() - s);
      }
    }),
  );
  const concWallMs = performance.now() - started;

  const base = [];
  for (let i = 0; i < N; i++) {
    t = performance.now();
    await signer.issueToken({ subject: RUNNER, ttlSeconds: 300 });
    base.push(performance.now() - t);
  }
  await agent.close();

  const s = summarize(seq);
  const c = summarize(conc);
  const b = summarize(base);
  printTable(
    [
      { scenario: 'first request (hashes node binary)', n: 1, p50: coldMs, p99: coldMs, 'req/s': '' },
      { scenario: 'sequential, 1 caller', n: N, p50: s.p50, p99: s.p99, 'req/s': (N / (s.totalMs / 1000)).toFixed(0) },
      { scenario: '8 concurrent callers', n: N, p50: c.p50, p99: c.p99, 'req/s': (N / (concWallMs / 1000)).toFixed(0) },
      {
        scenario: 'baseline: issueToken in process',
        n: N,
        p50: b.p50,
        p99: b.p99,
        'req/s': (N / (b.totalMs / 1000)).toFixed(0),
      },
    ],
    ['scenario', 'n', 'p50', 'p99', 'req/s'],
  );
  emit({
    requests: N,
    coldMs,
    sequential: { p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max },
    concurrent8: { p50Ms: c.p50, p99Ms: c.p99, perSecond: N / (concWallMs / 1000) },
    baselineIssueToken: { p50Ms: b.p50, p99Ms: b.p99 },
  });
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
