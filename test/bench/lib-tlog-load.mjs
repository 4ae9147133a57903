#!/usr/bin/env node
// Closed-loop append load for the tlog bench, in its own process (never on the server's or the bench driver's
// event loop). `clients` concurrent clients each send the next pre-built request as soon as the previous one was
// answered, over one kept-alive TCP connection each. Every request (head and body) is rendered to one Buffer before
// the clock starts, and the timed loop only writes those bytes and reads the status line and Content-Length of each
// answer: it shares the machine's 2 cores with the server, so it does as little as an HTTP/1.1 client can (node:http
// cost ~0.35 ms of CPU per request here, undici's fetch ~0.3 ms more). The server answers every append with a
// Content-Length (no chunked encoding); an answer without one counts as an error.
//
//   node lib-tlog-load.mjs '<json config>'   config: { url, bodiesFile, clients, budgetMs, expectStatus }
// Prints one JSON line: { done, seconds, latencies: [ms...], cpuMs (this process, user+sys), errors, statuses }.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

const config = JSON.parse(process.argv[2]);
const url = new URL(config.url);
const head = (length) =>
  `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
const requests = readFileSync(config.bodiesFile, 'utf8')
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => {
    const body = Buffer.from(l);
    return Buffer.concat([Buffer.from(head(body.length)), body]);
  });
const expectStatus = config.expectStatus ?? 201;
const HEADER_END = Buffer.from('\r\n\r\n');

/** One kept-alive connection: send(bytes) resolves with the answer's status (0 when the connection failed). */
function connection() {
  let socket;
  let buffered = Buffer.alloc(0);
  let waiting; // { resolve }
  let need = -1; // total bytes of the current answer once its head is parsed
  let status = 0;
  const settle = (s) => {
    const w = waiting;
    waiting = undefined;
    need = -1;
    w?.resolve(s);
  };
  const open = () => {
    socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (need < 0) {
        const end = buffered.indexOf(HEADER_END);
        if (end < 0) return;
        const headText = buffered.subarray(0, end).toString('latin1');
        status = Number(headText.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
        if (!m) {
          socket.destroy();
          return settle(0);
        }
        need = end + 4 + Number(m[1]);
      }
      if (buffered.length < need) return;
      buffered = buffered.subarray(need);
      settle(status);
    });
    const gone = () => {
      socket = undefined;
      settle(0);
    };
    socket.on('error', gone);
    socket.on('close', gone);
  };
  return {
    send(bytes) {
      if (!socket || socket.destroyed) open();
      return new Promise((resolve) => {
        waiting = { resolve };
        socket.write(bytes);
      });
    },
    close: () => socket?.destroy(),
  };
}

const latencies = [];
const statuses = {};
let next = 0;
let errors = 0;
const conns = Array.from({ length: config.clients }, connection);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  conns.map(async (conn) => {
    while (next < requests.length && performance.now() - t0 < config.budgetMs) {
      const bytes = requests[next++];
      const s = performance.now();
      const status = await conn.send(bytes);
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
for (const c of conns) c.close();
process.stdout.write(
  `${JSON.stringify({ done: latencies.length, seconds, latencies, cpuMs: (cpu.user + cpu.system) / 1000, errors, statuses })}\n`,
);
