#!/usr/bin/env node
// Runner overhead against running the same builds directly: the command fixture, and with bwrap/strace/bazel/nix
// present the Bazel and Nix fixtures (cold and warm direct vs runBuild with the seccomp monitor and the strace
// fallback as peers, rebuild-check cost). The measurement lives
// in runner/test/bench/overhead.mjs (it needs the runner's dist); this wrapper runs it for `npm run bench`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const missing = ['bwrap', 'strace', 'git', 'bazel', 'nix-build'].filter(
  (c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0,
);
if (missing.includes('bwrap') || missing.includes('strace') || missing.includes('git')) {
  console.log(`BENCH_SKIP needs ${missing.join(', ')}`);
  process.exit(0);
}
const script = fileURLToPath(new URL('../../runner/test/bench/overhead.mjs', import.meta.url));
const args = [script, process.env.RUNNER_BENCH_RUNS ?? '3', ...(missing.length === 0 ? ['--builders'] : [])];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
