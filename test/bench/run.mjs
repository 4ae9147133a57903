#!/usr/bin/env node
// Runs the benchmarks: every test/bench/*.bench.mjs, one at a time (they measure throughput, so they must not
// compete with each other for the CPU), each as `node <file>` in its own process group.
//
//   npm run bench                         # all of them
//   npm run bench -- hashing tlog         # only hashing.bench.mjs and tlog.bench.mjs
//   npm run bench -- admission            # the admission webhook (warm / cold p50, p99 at 200 req/s)
//   npm run bench -- mirror-s3            # S3 (a radosgw it starts) vs local-disk store: import and GET, same run
//   npm run bench -- --out results.json   # also write the collected results as JSON
//   npm run bench -- --timeout 300        # per-script timeout in seconds (default 600)
//
// Each script's output is streamed as it runs. The last `BENCH_JSON {...}` line a script prints is its result;
// `BENCH_SKIP <reason>` marks it skipped. A script that exits non-zero, times out, or ends without either line
// has failed, and then this runner exits 1 (after running the rest and printing the summary).
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';
import { formatTable } from './lib.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..', '..');
const SUFFIX = '.bench.mjs';
const KILL_GRACE_MS = 5_000;

function usage(message) {
  if (message) console.error(`bench: ${message}`);
  console.error('usage: node test/bench/run.mjs [--out <file>] [--timeout <seconds>] [--list] [name ...]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { names: [], out: undefined, timeoutMs: 10 * 60_000, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || v === '') usage(`${a} needs a value`);
      return v;
    };
    if (a === '--out' || a.startsWith('--out=')) opts.out = resolve(process.cwd(), value());
    else if (a === '--timeout' || a.startsWith('--timeout=')) {
      const s = Number(value());
      if (!(s > 0)) usage('--timeout must be a positive number of seconds');
      opts.timeoutMs = s * 1000;
    } else if (a === '--list') opts.list = true;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else opts.names.push(a.endsWith(SUFFIX) ? a.slice(0, -SUFFIX.length) : a.replace(/^.*\//, ''));
  }
  return opts;
}

function discover() {
  return readdirSync(benchDir)
    .filter((f) => f.endsWith(SUFFIX))
    .sort()
    .map((f) => ({ name: f.slice(0, -SUFFIX.length), file: join(benchDir, f) }));
}

/** Runs one script; resolves with its outcome. Never rejects. */
function runOne(bench, timeoutMs) {
  return new Promise((done) => {
    const started = performance.now();
    let json;
    let jsonError;
    let skipReason;
    let timedOut = false;
    const partial = { stdout: '', stderr: '' };

    // Own process group (detached) so a timeout also ends whatever the script spawned (openssl, sha256sum, …).
    const child = spawn(process.execPath, [bench.file], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });

    const onLine = (line) => {
      if (line.startsWith('BENCH_JSON ')) {
        try {
          json = JSON.parse(line.slice('BENCH_JSON '.length));
          jsonError = undefined;
        } catch (err) {
          jsonError = `unparseable BENCH_JSON line (${err.message})`;
        }
      } else if (line.startsWith('BENCH_SKIP')) {
        skipReason = line.slice('BENCH_SKIP'.length).trim() || 'no reason given';
      }
    };
    const pump = (stream, key, sink) => {
      stream.setEncoding('utf8');
      stream.on('data', (text) => {
        sink.write(text);
        const lines = (partial[key] + text).split('\n');
        partial[key] = lines.pop();
        if (key === 'stdout') lines.forEach(onLine);
      });
    };
    pump(child.stdout, 'stdout', process.stdout);
    pump(child.stderr, 'stderr', process.stderr);

    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    let hardKill;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`bench: ${bench.name} exceeded ${timeoutMs / 1000}s, terminating it`);
      killGroup('SIGTERM');
      hardKill = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    running.add(killGroup);

    child.on('error', (err) => {
      clearTimeout(timer);
      clearTimeout(hardKill);
      running.delete(killGroup);
      done({ name: bench.name, status: 'failed', reason: `could not start: ${err.message}`, seconds: 0 });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(hardKill);
      running.delete(killGroup);
      if (partial.stdout) onLine(partial.stdout);
      if (partial.stdout && !partial.stdout.endsWith('\n')) process.stdout.write('\n');
      const seconds = Math.round((performance.now() - started) / 100) / 10;
      const base = { name: bench.name, seconds, exitCode: code, ...(signal ? { signal } : {}) };
      if (timedOut) return done({ ...base, status: 'failed', reason: `timed out after ${timeoutMs / 1000}s` });
      if (code !== 0)
        return done({
          ...base,
          status: 'failed',
          reason: signal ? `killed by ${signal}` : `exit code ${code}`,
          result: json,
        });
      if (skipReason !== undefined) return done({ ...base, status: 'skipped', reason: skipReason });
      if (jsonError) return done({ ...base, status: 'failed', reason: jsonError });
      if (json === undefined) return done({ ...base, status: 'failed', reason: 'printed no BENCH_JSON line' });
      done({ ...base, status: 'ok', result: json });
    });
  });
}

/** One short cell of headline numbers: the result's `summary` object if it has one, else its top-level scalars. */
function headline(result) {
  if (!result || typeof result !== 'object') return '';
  const source = result.summary && typeof result.summary === 'object' ? result.summary : result;
  return Object.entries(source)
    .filter(([, v]) => ['number', 'string', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v}`)
    .join(' ');
}

const running = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const kill of running) kill('SIGTERM');
    process.exit(130);
  });
}

const opts = parseArgs(process.argv.slice(2));
const all = discover();
if (opts.list) {
  for (const b of all) console.log(b.name);
  process.exit(0);
}
const unknown = opts.names.filter((n) => !all.some((b) => b.name === n));
if (unknown.length > 0)
  usage(`no benchmark named ${unknown.join(', ')} (have: ${all.map((b) => b.name).join(', ') || 'none'})`);
const selected = opts.names.length > 0 ? [...new Set(opts.names)].map((n) => all.find((b) => b.name === n)) : all;
if (selected.length === 0) {
  console.error(`bench: no *${SUFFIX} files in ${relative(process.cwd(), benchDir) || '.'}`);
  process.exit(1);
}

const outcomes = [];
for (const bench of selected) {
  console.log(`\n=== bench ${bench.name} (${relative(repoRoot, bench.file)}) ===`);
  outcomes.push(await runOne(bench, opts.timeoutMs));
}

console.log('\n=== bench summary ===');
console.log(
  formatTable(
    outcomes.map((o) => ({
      bench: o.name,
      status: o.status,
      seconds: o.seconds,
      result: o.status === 'ok' ? headline(o.result) : o.reason,
    })),
    ['bench', 'status', 'seconds', 'result'],
  ),
);
const report = { generatedAt: new Date().toISOString(), node: process.version, benches: outcomes };
if (opts.out) {
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`results written to ${opts.out}`);
}
const failed = outcomes.filter((o) => o.status === 'failed');
const skipped = outcomes.filter((o) => o.status === 'skipped');
console.log(
  `${outcomes.length - failed.length - skipped.length} passed, ${failed.length} failed, ${skipped.length} skipped`,
);
process.exit(failed.length > 0 ? 1 : 0);
