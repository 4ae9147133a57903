// Small helpers shared by the `*.bench.mjs` scripts. A bench script prints what it likes, and ends with one
// `BENCH_JSON {...}` line (emit) that test/bench/run.mjs collects, or `BENCH_SKIP <reason>` (skip) when it cannot
// run here (a missing tool). Benchmarks are not tests: they report numbers; correctness checks inside them fail loudly.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Runs `fn` repeatedly and returns the per-call wall times (ms) with summary statistics. Stop after `iterations`
 * calls, or after `durationMs` of measured time (at least `minIterations`), whichever is given (default 10 calls).
 * `warmup` calls run first and are not measured.
 */
export async function time(fn, { iterations, durationMs, minIterations = 1, warmup = 0 } = {}) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const samples = [];
  const started = performance.now();
  const target = iterations ?? (durationMs === undefined ? 10 : Infinity);
  for (let i = 0; i < target; i++) {
    const t0 = performance.now();
    await fn(i);
    samples.push(performance.now() - t0);
    if (
      durationMs !== undefined &&
      iterations === undefined &&
      samples.length >= minIterations &&
      performance.now() - started >= durationMs
    )
      break;
  }
  return summarize(samples);
}

/** Summary statistics of a list of durations (ms). */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const total = samples.reduce((a, b) => a + b, 0);
  return {
    samples,
    iterations: samples.length,
    totalMs: total,
    mean: samples.length ? total / samples.length : NaN,
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
  };
}

/** The p-th percentile (0–100) of an ascending-sorted list, linearly interpolated; NaN when empty. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0];
  if (p >= 100) return sorted[sorted.length - 1];
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** a / b, rounded to `digits` decimals; NaN when either is not a positive finite number. */
export function ratio(a, b, digits = 3) {
  if (!(Number.isFinite(a) && Number.isFinite(b)) || b === 0) return NaN;
  const f = 10 ** digits;
  return Math.round((a / b) * f) / f;
}

/** Throughput in decimal MB/s (10^6 bytes, as `openssl speed` and `dd` count) for `bytes` processed in `ms`. */
export function mbPerSec(bytes, ms) {
  return ms > 0 ? Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10 : NaN;
}

/** Renders rows (objects) as an aligned text table; `columns` picks and orders the keys (default: all seen). */
export function formatTable(rows, columns) {
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => (v === undefined || v === null ? '' : typeof v === 'number' ? formatNumber(v) : String(v));
  const body = rows.map((r) => cols.map((c) => cell(r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...body.map((r) => r[i].length)));
  const numeric = cols.map((c) => rows.length > 0 && rows.every((r) => r[c] === undefined || typeof r[c] === 'number'));
  const line = (cells) =>
    cells
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(cols), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function printTable(rows, columns) {
  console.log(formatTable(rows, columns));
}

function formatNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

/** Prints the machine-readable result line that run.mjs collects (the last one printed wins). */
export function emit(json) {
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
}

/** Reports that this benchmark cannot run here (e.g. a tool is missing) and exits successfully. */
export function skip(reason) {
  console.log(`BENCH_SKIP ${reason.replace(/\s+/g, ' ')}`);
  process.exit(0);
}

/** Absolute path of an executable on PATH (like `which`), or null. */
export function which(cmd) {
  const candidates = cmd.includes('/')
    ? [cmd]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return isAbsolute(c) ? c : join(process.cwd(), c);
    } catch {
      // not here
    }
  }
  return null;
}
