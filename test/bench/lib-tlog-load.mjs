#!/usr/bin/env node
// Closed-loop append load for the tlog bench, in its own process (never on the server's or the bench driver's
// event loop). `clients` concurrent clients each send the next pre-built request as soon as the previous one was
// answered, over one kept-alive connection each (node:http, no fetch: undici's fetch costs ~0.3 ms of CPU per
// request, as much as the server's share). Request bodies are read from a file (one JSON body per line) and turned
// into Buffers before the clock starts.
//
//   node lib-tlog-load.mjs '<json config>'   config: { url, bodiesFile, clients, budgetMs, expectStatus }
// Prints one JSON line: { done, seconds, latencies: [ms...], cpuMs (this process, user+sys), errors }.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

const config = JSON.parse(process.argv[2]);
const bodies = readFileSync(config.bodiesFile, 'utf8')
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => Buffer.from(l));
const url = new URL(config.url);
const agent = new Agent({ keepAlive: true, maxSockets: config.clients });
const expectStatus = config.expectStatus ?? 201;

function post(body) {
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const latencies = [];
const statuses = {};
let next = 0;
let errors = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  Array.from({ length: config.clients }, async () => {
    while (next < bodies.length && performance.now() - t0 < config.budgetMs) {
      const body = bodies[next++];
      const s = performance.now();
      const status = await post(body);
      if (status !== expectStatus) {
        errors++;
        statuses[status] = (statuses[status] ?? 0) + 1;
        continue;
      }
      latencies.push(performance.now() - s);
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
agent.destroy();
process.stdout.write(
  `${JSON.stringify({ done: latencies.length, seconds, latencies, cpuMs: (cpu.user + cpu.system) / 1000, errors, statuses })}\n`,
);
