#!/usr/bin/env node
// Runner overhead for the `good` command fixture: the same `sh build.sh` run directly, in the sandbox (with and
// without the strace monitor), and through the whole runBuild (checkout + sandbox + outputs + attestations),
// with and without the rebuild check. Median of RUNS runs each. Needs the runner built (npx tsc -b runner),
// bwrap, strace and git. Usage: node runner/test/bench/overhead.mjs [RUNS]
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_PROFILE, runBuild, runSandboxed } from '../../dist/index.js';

const RUNS = Number(process.argv[2] ?? 7);
const fixture = fileURLToPath(new URL('../../../fixtures/runner/good/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'airlock-runner-bench-'));
const which = (c) => execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();

const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@x', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@x', GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z' };
const work = join(root, 'src');
cpSync(fixture, work, { recursive: true });
execFileSync('git', ['init', '-q'], { cwd: work, env });
execFileSync('git', ['add', '-A'], { cwd: work, env });
execFileSync('git', ['commit', '-qm', 'bench'], { cwd: work, env });
const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: work, encoding: 'utf8' }).trim();
const sde = '1704164645';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function measure(name, fn) {
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { name, medianMs: Math.round(median(times) * 10) / 10, minMs: Math.round(Math.min(...times) * 10) / 10 };
}

let k = 0;
const fresh = (name) => {
  const d = join(root, `${name}-${k++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

const results = [];
results.push(
  await measure('direct: sh build.sh', () => {
    const out = fresh('direct-out');
    const r = spawnSync('sh', ['build.sh'], { cwd: work, env: { PATH: process.env.PATH, HOME: out, TZ: 'UTC', LC_ALL: 'C', SOURCE_DATE_EPOCH: sde, AIRLOCK_OUTPUT_DIR: out }, stdio: 'ignore' });
    if (r.status !== 0) throw new Error('direct build failed');
  }),
);
for (const traced of [false, true]) {
  const tools = { bwrap: which('bwrap'), node: process.execPath, setpriv: which('setpriv'), ...(traced ? { strace: which('strace') } : {}) };
  results.push(
    await measure(`sandboxed${traced ? ' + strace monitor' : ''}: sh build.sh`, async () => {
      const d = fresh('sbx');
      const layout = { plumbingDir: fresh('plumb'), src: { host: work, path: '/build/src' }, out: { host: fresh('out'), path: '/build/out' }, home: { host: fresh('home'), path: '/build/home' }, tmp: { host: fresh('tmp'), path: '/tmp' } };
      const r = await runSandboxed({
        tools,
        layout,
        profile: COMMAND_PROFILE,
        argv: ['sh', 'build.sh'],
        cwd: '/build/src',
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/build/home', TZ: 'UTC', LC_ALL: 'C', SOURCE_DATE_EPOCH: sde, AIRLOCK_OUTPUT_DIR: '/build/out', TMPDIR: '/tmp' },
        hostname: 'airlock-build',
        timeoutMs: 60_000,
        logPath: join(d, 'log'),
        ...(traced ? { tracePath: join(d, 'trace') } : {}),
      });
      if (r.exitCode !== 0) throw new Error('sandboxed build failed');
    }),
  );
}
const spec = { source: { repo: work, commit }, builder: { type: 'command', argv: ['sh', 'build.sh'] }, outputs: ['hello.txt', 'lib/*.tar.gz', 'build-date.txt'] };
results.push(await measure('runBuild (checkout + sandbox + outputs + provenance/SBOM)', () => runBuild(spec, { outDir: join(root, `rb-${k++}`), workRoot: join(root, 'work'), builderId: 'https://airlock.dev/bench' })));
results.push(await measure('runBuild reproducible: true (adds checkout + rebuild + compare)', () => runBuild({ ...spec, reproducible: true }, { outDir: join(root, `rb-${k++}`), workRoot: join(root, 'work'), builderId: 'https://airlock.dev/bench' })));

const base = results[0].medianMs;
for (const r of results) console.log(`${r.name.padEnd(66)} median ${String(r.medianMs).padStart(7)} ms  min ${String(r.minMs).padStart(7)} ms  (+${Math.round((r.medianMs - base) * 10) / 10} ms, x${(r.medianMs / base).toFixed(1)})`);
rmSync(root, { recursive: true, force: true });
