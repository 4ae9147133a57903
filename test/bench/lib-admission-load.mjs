#!/usr/bin/env node
// An open-loop, fixed-rate HTTPS load generator for the admission bench, run in its own process (never on the
// server's or the bench driver's event loop).
//
// Why not autocannon's overallRate: autocannon 9 gives each connection a budget of rate/connections requests per
// second and sends them back to back (closed loop) at the start of each second, then idles. At "200 req/s" over 16
// connections that is a burst of 200 requests at concurrency 16 every second, so the p99 it reports is the queueing
// of that burst (tens of ms even for GET /healthz), not the latency at a steady 200 req/s. wrk has no fixed rate.
//
// Here request i is due at t0 + i/rate. It is sent when due on a keep-alive connection (a new one is opened when
// all are busy, up to maxConnections; beyond that it waits in the agent's queue). Latency is measured from the
// time the request was DUE, not sent, so a late send (a slow server holding every connection, or this process
// being descheduled) counts against the result (no coordinated omission). How late the sends were is reported too.
//
//   node lib-admission-load.mjs '<json config>'   config: { url, method, body?, caPem, rate, seconds,
//                                                           warmupSeconds, maxConnections, expect? }
// Prints one JSON line with the result on stdout.
import { Agent, request } from 'node:https';
import { createSecureContext } from 'node:tls';
import { performance } from 'node:perf_hooks';

const config = JSON.parse(process.argv[2]);
const DRAIN_MS = 30_000;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round = (x) => Math.round(x * 100) / 100;

/**
 * What every request shares, prepared once (the generator runs on the same cores as the server: its own work per
 * request is kept small): the URL's parts, the body's bytes and the headers.
 */
function prepare(url, { method, body, expect }) {
  const u = new URL(url);
  const bytes = body ? Buffer.from(body, 'utf8') : undefined;
  const headers = bytes ? { 'content-type': 'application/json', 'content-length': String(bytes.byteLength) } : {};
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port,
    path: `${u.pathname}${u.search}`,
    method,
    headers,
    bytes,
    expect,
  };
}

/** Sends one request; resolves with { ok, status } when the whole answer has arrived. */
function send(agent, { host, port, path, method, headers, bytes, expect }) {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const ok = res.statusCode === 200 && (!expect || Buffer.concat(chunks).includes(expect));
        resolve({ ok, status: res.statusCode });
      });
      res.on('error', () => resolve({ ok: false, status: 0 }));
    });
    req.on('error', () => resolve({ ok: false, status: 0 }));
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(bytes);
  });
}

const target = prepare(config.url, config);

/** `count` requests due every 1000/rate ms from now; returns their latencies (ms from due time) and send lags. */
async function phase(agent, count) {
  const interval = 1000 / config.rate;
  const latencies = [];
  const lags = [];
  let failed = 0;
  const statuses = {};
  const pending = [];
  const t0 = performance.now() + 5;
  let next = 0;
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      while (next < count && t0 + next * interval <= now) {
        const due = t0 + next * interval;
        next++;
        lags.push(now - due);
        pending.push(
          send(agent, target).then((r) => {
            latencies.push(performance.now() - due);
            if (!r.ok) {
              failed++;
              statuses[r.status] = (statuses[r.status] ?? 0) + 1;
            }
          }),
        );
      }
      if (next < count) setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
      else done();
    };
    tick();
  });
  // A server that cannot keep up leaves a backlog: wait for it at most DRAIN_MS, then count what is still
  // unanswered as failed, with its latency so far (a lower bound).
  let timer;
  await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, DRAIN_MS)))]);
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  const unanswered = count - latencies.length;
  const cutoff = performance.now();
  for (let i = count - unanswered; i < count; i++) latencies.push(cutoff - (t0 + i * interval));
  if (unanswered > 0) statuses.unanswered = unanswered;
  return { latencies, lags, failed: failed + unanswered, statuses, wallMs, answered: count - unanswered };
}

async function main() {
  // One TLS context for every connection: given only `ca`, the agent builds a context (and parses the CA) per
  // connection it opens.
  const secureContext = createSecureContext({ ca: config.caPem });
  const agent = new Agent({ keepAlive: true, maxSockets: config.maxConnections, secureContext });
  let opened = 0; // warm-up included
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (...args) => (opened++, create(...args));
  // Warm-up (discarded): TLS handshakes, JIT, the server's first requests.
  await phase(agent, Math.round(config.rate * config.warmupSeconds));
  const cpu0 = process.cpuUsage();
  const r = await phase(agent, Math.round(config.rate * config.seconds));
  const cpu = process.cpuUsage(cpu0);
  const sockets = Object.values(agent.freeSockets).reduce((n, s) => n + s.length, 0);
  agent.destroy();
  const lat = r.latencies.sort((a, b) => a - b);
  const lags = r.lags.sort((a, b) => a - b);
  const out = {
    p50Ms: round(percentile(lat, 50)),
    p90Ms: round(percentile(lat, 90)),
    p99Ms: round(percentile(lat, 99)),
    maxMs: round(lat[lat.length - 1]),
    reqPerSec: round((r.answered / r.wallMs) * 1000),
    requests: lat.length,
    failed: r.failed,
    statuses: r.statuses,
    connections: sockets,
    sendLagP99Ms: round(percentile(lags, 99)),
    generatorCpuPct: round(((cpu.user + cpu.system) / 1000 / r.wallMs) * 100),
    connectionsOpened: opened,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
process.exit(0);
