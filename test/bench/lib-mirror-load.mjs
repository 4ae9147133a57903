// HTTP load generation for the mirror benchmarks: `wrk` (Debian package `wrk`) when installed, driven by a Lua
// script that cycles through a list of paths and prints its summary as JSON; otherwise a keep-alive Node client
// with the same number of connections (slower than wrk: its own CPU cost lowers every server's numbers alike).
import { request, Agent } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run, round } from './lib-mirror.mjs';
import { which } from './lib.mjs';

const WRK_SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do
  if #line > 0 then paths[#paths + 1] = line end
end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"bytes":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** Which load generator this machine has: { name, run(baseUrl, paths, seconds) → result }. */
export function loadGenerator(workDir, { connections = 16, threads = 1 } = {}) {
  const wrk = which('wrk');
  if (wrk) {
    const script = join(workDir, 'paths.lua');
    writeFileSync(script, WRK_SCRIPT);
    let n = 0;
    return {
      name: `wrk -t${threads} -c${connections}`,
      async run(baseUrl, paths, seconds) {
        const list = join(workDir, `paths-${++n}.txt`);
        writeFileSync(list, `${paths.join('\n')}\n`);
        const r = await run(
          wrk,
          [
            `-t${threads}`,
            `-c${connections}`,
            `-d${Math.max(1, Math.round(seconds))}s`,
            '--timeout',
            '10s',
            '-s',
            script,
            baseUrl,
          ],
          {
            env: { ...process.env, WRK_PATHS: list },
            timeoutMs: (seconds + 30) * 1000,
          },
        );
        const line = r.stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
        if (r.code !== 0 || !line) throw new Error(`wrk failed (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
        const j = JSON.parse(line.slice('WRK_JSON '.length));
        return toResult(
          j.requests,
          j.bytes,
          j.durationUs / 1e3,
          j.p50Us / 1e3,
          j.p99Us / 1e3,
          j.connect + j.read + j.write + j.status + j.timeout,
        );
      },
    };
  }
  return {
    name: `node keep-alive client, ${connections} connections (wrk not installed)`,
    run: (baseUrl, paths, seconds) => nodeLoad(baseUrl, paths, seconds, connections),
  };
}

function toResult(requests, bytes, ms, p50Ms, p99Ms, errors) {
  return {
    requests,
    reqPerSec: round(requests / (ms / 1000), 0),
    mbPerSec: round(bytes / 1e6 / (ms / 1000), 1),
    p50Ms: round(p50Ms, 3),
    p99Ms: round(p99Ms, 3),
    errors,
  };
}

async function nodeLoad(baseUrl, paths, seconds, connections) {
  const u = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies = [];
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const one = (path) =>
    new Promise((resolve) => {
      const s = performance.now();
      const req = request({ host: u.hostname, port: u.port, path, agent }, (res) => {
        if (res.statusCode !== 200) errors++;
        res.on('data', (c) => (bytes += c.length));
        res.on('end', () => {
          latencies.push(performance.now() - s);
          resolve();
        });
        res.on('error', () => {
          errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        await one(paths[next++ % paths.length]);
        requests++;
      }
    }),
  );
  const ms = performance.now() - t0;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return toResult(requests, bytes, ms, pct(50), pct(99), errors);
}
