#!/usr/bin/env node
// Runner overhead for the `good` command fixture: the same `sh build.sh` run directly, in the sandbox (without a
// monitor, with the seccomp monitor netmon, with the strace fallback), and through the whole runBuild (checkout + sandbox + outputs + attestations),
// with and without the rebuild check. Median of RUNS runs each. Needs the runner built (npx tsc -b runner),
// bwrap, strace and git. Usage: node runner/test/bench/overhead.mjs [RUNS] [--builders]
// --builders adds the Bazel and Nix fixtures (fixtures/runner/bazel-ws, nix-fod): the tool run directly on the
// host (fresh output root / store, archive pre-placed) vs runBuild cold (sandbox + monitor + mirror) with the seccomp
// monitor (the default) and the strace fallback as peers in the same run, and the rebuild check's cost with each;
// at most 3 runs each (a cold Bazel build is several seconds). RUNNER_BENCH_NIX=0 skips Nix.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_PROFILE, NETMON_PATH, runBuild, runSandboxed } from '../../dist/index.js';

// A peer that cannot run is named, never silently dropped: the seccomp monitor is a binary `npm ci` builds.
if (!existsSync(NETMON_PATH)) {
  console.error(
    `runner overhead: the seccomp network monitor is not built (${NETMON_PATH}); build it with ` +
      '`node runner/scripts/build-netmon.mjs` (needs gcc: apt-get install gcc), or run `npm run bench`, which does',
  );
  process.exit(1);
}
const RUNS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 7);
const BUILDERS = process.argv.includes('--builders');
const fixture = fileURLToPath(new URL('../../../fixtures/runner/good/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'airlock-runner-bench-'));
// As root every sandbox runs as an unprivileged host uid, which must reach the directories under root.
chmodSync(root, 0o711);
const which = (c) => execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();

const env = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'b',
  GIT_AUTHOR_EMAIL: 'b@x',
  GIT_COMMITTER_NAME: 'b',
  GIT_COMMITTER_EMAIL: 'b@x',
  GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z',
  GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z',
};
const work = join(root, 'src');
cpSync(fixture, work, { recursive: true });
execFileSync('git', ['init', '-q'], { cwd: work, env });
execFileSync('git', ['add', '-A'], { cwd: work, env });
execFileSync('git', ['commit', '-qm', 'bench'], { cwd: work, env });
const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: work, encoding: 'utf8' }).trim();
const sde = '1704164645';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function measure(name, fn, runs = RUNS) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const r = { name, medianMs: Math.round(median(times) * 10) / 10, minMs: Math.round(Math.min(...times) * 10) / 10 };
  // Printed as measured too, so a long run that fails later still shows what it measured.
  console.log(`measured: ${name}: median ${r.medianMs} ms, min ${r.minMs} ms (${runs} runs)`);
  return r;
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
    const r = spawnSync('sh', ['build.sh'], {
      cwd: work,
      env: {
        PATH: process.env.PATH,
        HOME: out,
        TZ: 'UTC',
        LC_ALL: 'C',
        SOURCE_DATE_EPOCH: sde,
        AIRLOCK_OUTPUT_DIR: out,
      },
      stdio: 'ignore',
    });
    if (r.status !== 0) throw new Error('direct build failed');
  }),
);
for (const monitor of ['none', 'seccomp', 'strace']) {
  const tools = {
    bwrap: which('bwrap'),
    node: process.execPath,
    setpriv: which('setpriv'),
    ...(monitor === 'strace' ? { strace: which('strace') } : {}),
    ...(monitor === 'seccomp' ? { netmon: NETMON_PATH } : {}),
  };
  const traced = monitor !== 'none';
  results.push(
    await measure(`sandboxed${traced ? ` + ${monitor} monitor` : ''}: sh build.sh`, async () => {
      const d = fresh('sbx');
      // A copy per run: as root the writable binds are handed to the sandbox's unprivileged uid (chowned).
      const src = fresh('src');
      cpSync(fixture, src, { recursive: true });
      const layout = {
        plumbingDir: fresh('plumb'),
        src: { host: src, path: '/build/src' },
        out: { host: fresh('out'), path: '/build/out' },
        home: { host: fresh('home'), path: '/build/home' },
        tmp: { host: fresh('tmp'), path: '/tmp' },
      };
      const r = await runSandboxed({
        tools,
        layout,
        profile: COMMAND_PROFILE,
        argv: ['sh', 'build.sh'],
        cwd: '/build/src',
        env: {
          PATH: '/usr/local/bin:/usr/bin:/bin',
          HOME: '/build/home',
          TZ: 'UTC',
          LC_ALL: 'C',
          SOURCE_DATE_EPOCH: sde,
          AIRLOCK_OUTPUT_DIR: '/build/out',
          TMPDIR: '/tmp',
        },
        hostname: 'airlock-build',
        timeoutMs: 60_000,
        logPath: join(d, 'log'),
        ...(traced ? { tracePath: join(d, 'trace') } : {}),
      });
      if (r.exitCode !== 0) throw new Error('sandboxed build failed');
    }),
  );
}
const spec = {
  source: { repo: work, commit },
  builder: { type: 'command', argv: ['sh', 'build.sh'] },
  outputs: ['hello.txt', 'lib/*.tar.gz', 'build-date.txt'],
};
results.push(
  await measure('runBuild (checkout + sandbox + outputs + provenance/SBOM)', () =>
    runBuild(spec, {
      outDir: join(root, `rb-${k++}`),
      workRoot: join(root, 'work'),
      builderId: 'https://airlock.dev/bench',
    }),
  ),
);
results.push(
  await measure('runBuild reproducible: true (adds checkout + rebuild + compare)', () =>
    runBuild(
      { ...spec, reproducible: true },
      { outDir: join(root, `rb-${k++}`), workRoot: join(root, 'work'), builderId: 'https://airlock.dev/bench' },
    ),
  ),
);

if (BUILDERS) results.push(...(await builderBenchmarks()));

const base = results[0].medianMs;
const byName = (prefix) => results.find((r) => r.name.startsWith(prefix))?.medianMs;
const summary = {};
for (const tool of BUILDERS ? ['bazel', 'nix'] : []) {
  const direct = byName(`${tool} direct: cold`) ?? byName(`${tool} direct: nix-store`);
  const warm = byName(`${tool} direct: warm`);
  const runner = byName(`${tool} runBuild: cold (`);
  if (direct && runner) {
    Object.assign(summary, {
      [`${tool}_direct_cold_s`]: +(direct / 1000).toFixed(2),
      [`${tool}_direct_warm_s`]: warm !== undefined ? +(warm / 1000).toFixed(2) : null,
      [`${tool}_runner_s`]: +(runner / 1000).toFixed(2),
      [`${tool}_runner_vs_cold`]: +(runner / direct).toFixed(2),
      [`${tool}_overhead_s`]: +((runner - direct) / 1000).toFixed(2),
      [`${tool}_target_met`]: runner <= direct * 1.1 + 2000,
      [`${tool}_rebuild_check_s`]: +((byName(`${tool} rebuild check cost`) ?? NaN) / 1000).toFixed(2),
    });
    const strace = byName(`${tool} runBuild: cold, strace`);
    if (strace) {
      Object.assign(summary, {
        [`${tool}_runner_strace_s`]: +(strace / 1000).toFixed(2),
        [`${tool}_runner_strace_vs_cold`]: +(strace / direct).toFixed(2),
        [`${tool}_seccomp_vs_strace`]: +(runner / strace).toFixed(2),
        [`${tool}_rebuild_check_strace_s`]: +((byName(`${tool} rebuild check cost, strace`) ?? NaN) / 1000).toFixed(2),
      });
    }
  }
}
summary.command_runbuild_ms = byName('runBuild (checkout');
summary.command_direct_ms = base;
for (const r of results)
  console.log(
    `${r.name.padEnd(66)} median ${String(r.medianMs).padStart(7)} ms  min ${String(r.minMs).padStart(7)} ms  (+${Math.round((r.medianMs - base) * 10) / 10} ms, x${(r.medianMs / base).toFixed(1)})`,
  );
rmSync(root, { recursive: true, force: true });
console.log(
  'target: runner ≤ 1.1 × direct cold + 2 s (the runner is always cold: fresh work dir and output root per run)',
);
console.log(`BENCH_JSON ${JSON.stringify({ summary, results })}`);

/** Bazel and Nix: direct vs runBuild (cold), and the rebuild check (runBuild reproducible minus plain). */
async function builderBenchmarks() {
  const { createHash } = await import('node:crypto');
  const { createServer } = await import('node:http');
  const { readFileSync, readdirSync, renameSync, writeFileSync } = await import('node:fs');
  const { RULES_CC_STUB } = await import('../../dist/bazel-builder.js');
  const { nixSandboxPaths } = await import('../../dist/nix-builder.js');
  const runs = Math.min(RUNS, 3);
  // As root the Bazel/Nix sandboxes run as an unprivileged host uid, which must reach the work root.
  chmodSync(root, 0o711);
  const out = [];
  const fixtures = fileURLToPath(new URL('../../../fixtures/runner/', import.meta.url));
  const blobs = {};
  const server = createServer((req, res) => {
    const m = /^\/sha256\/([0-9a-f]{64})/.exec(req.url ?? '');
    const b = m && blobs[m[1]];
    if (b) res.writeHead(200, { 'content-length': b.length }).end(req.method === 'HEAD' ? undefined : b);
    else res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const mirrorUrl = `http://127.0.0.1:${server.address().port}`;
  const prepare = (fixture) => {
    const archive = execFileSync(
      'sh',
      ['-c', 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - greet-2.0 | gzip -n -9'],
      { cwd: join(fixtures, fixture, 'upstream') },
    );
    const pin = createHash('sha256').update(archive).digest('hex');
    blobs[pin] = archive;
    const ws = fresh(`${fixture}-ws`);
    cpSync(join(fixtures, fixture, 'workspace'), ws, { recursive: true });
    for (const n of readdirSync(ws))
      if (n.endsWith('.in')) {
        writeFileSync(join(ws, n.slice(0, -3)), readFileSync(join(ws, n), 'utf8').replaceAll('@GREET_SHA256@', pin));
        renameSync(join(ws, n), join(root, `${fixture}-${n}`));
      }
    execFileSync('git', ['init', '-q'], { cwd: ws, env });
    execFileSync('git', ['add', '-A'], { cwd: ws, env });
    execFileSync('git', ['commit', '-qm', 'bench'], { cwd: ws, env });
    return {
      ws,
      pin,
      archive,
      commit: execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ws, encoding: 'utf8' }).trim(),
    };
  };
  const time = async (name, fn) => {
    const r = await measure(name, fn, runs);
    out.push(r);
    return r;
  };
  const timedRunBuild = async (spec, networkMonitor = 'auto') => {
    const r = await runBuild(spec, {
      outDir: join(root, `rb-${k++}`),
      workRoot: join(root, 'work'),
      builderId: 'https://airlock.dev/bench',
      networkMonitor,
      // The operator approves the mirror; the spec only selects it (without this the run refuses the spec).
      mirrorUrl,
    });
    if (r.hermeticity.monitor !== (networkMonitor === 'auto' ? 'seccomp' : networkMonitor))
      throw new Error(`expected the ${networkMonitor} monitor, the run used ${r.hermeticity.monitor}`);
    return r;
  };
  const sh = (argv, cwd, extraEnv = {}) => {
    const r = spawnSync(argv[0], argv.slice(1), {
      cwd,
      env: { ...process.env, ...extraEnv },
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  };
  try {
    // Bazel
    const bz = prepare('bazel-ws');
    /** A fresh output root with the rules_cc stub and the pinned archive in a repository cache; build and shutdown argv. */
    const bazelDirect = (d) => {
      for (const [n, text] of Object.entries(RULES_CC_STUB)) {
        mkdirSync(join(d, 'rules_cc', n, '..'), { recursive: true });
        writeFileSync(join(d, 'rules_cc', n), text);
      }
      mkdirSync(join(d, 'cache', 'content_addressable', 'sha256', bz.pin), { recursive: true });
      writeFileSync(join(d, 'cache', 'content_addressable', 'sha256', bz.pin, 'file'), bz.archive);
      const startup = [
        'bazel',
        '--ignore_all_rc_files',
        '--install_base=/usr/share/bazel',
        '--trust_install_base',
        `--output_user_root=${join(d, 'out')}`,
        '--host_jvm_args=-XX:-UsePerfData',
      ];
      const build = [
        ...startup,
        'build',
        `--override_repository=rules_cc=${join(d, 'rules_cc')}`,
        '--override_repository=rules_java=/usr/share/bazel/rules/java',
        `--repository_cache=${join(d, 'cache')}`,
        '--experimental_repository_disable_download',
        '--host_javabase=@local_jdk//:jdk',
        '--spawn_strategy=linux-sandbox',
        '--incompatible_strict_action_env',
        '--symlink_prefix=/',
        '//:hello',
        '//:bundle',
      ];
      return { build, shutdown: [...startup, 'shutdown'] };
    };
    await time('bazel direct: cold bazel build (host, linux-sandbox) + shutdown', () => {
      const { build, shutdown } = bazelDirect(fresh('bazel-direct'));
      sh(build, bz.ws);
      sh(shutdown, bz.ws);
    });
    {
      // Warm direct: the same output root with the server up and outputs present (an incremental no-op build). The
      // runner has no warm state by design (fresh work dir and output root per run), so it is always "cold".
      const { build, shutdown } = bazelDirect(fresh('bazel-warm'));
      sh(build, bz.ws);
      try {
        await time('bazel direct: warm (server up, outputs present: no-op build)', () => sh(build, bz.ws));
      } finally {
        sh(shutdown, bz.ws);
      }
    }
    const bzSpec = {
      source: { repo: bz.ws, commit: bz.commit },
      builder: { type: 'bazel', targets: ['//:hello', '//:bundle'] },
      outputs: ['hello', 'bundle.tar'],
      mirror: { url: mirrorUrl },
    };
    const bzPlain = await time('bazel runBuild: cold (sandbox + seccomp monitor + query + mirror fetch)', () =>
      timedRunBuild(bzSpec),
    );
    const bzStrace = await time('bazel runBuild: cold, strace monitor (the fallback)', () =>
      timedRunBuild(bzSpec, 'strace'),
    );
    await time('bazel runBuild: cold, log monitor (no syscall monitor at all)', () => timedRunBuild(bzSpec, 'log'));
    const bzRepro = await time('bazel runBuild reproducible: true (+ rebuild + compare)', () =>
      timedRunBuild({ ...bzSpec, reproducible: true }),
    );
    const bzReproStrace = await time('bazel runBuild reproducible: true, strace monitor', () =>
      timedRunBuild({ ...bzSpec, reproducible: true }, 'strace'),
    );
    out.push({
      name: 'bazel rebuild check cost (difference of medians)',
      medianMs: Math.round((bzRepro.medianMs - bzPlain.medianMs) * 10) / 10,
      minMs: NaN,
    });
    out.push({
      name: 'bazel rebuild check cost, strace (difference of medians)',
      medianMs: Math.round((bzReproStrace.medianMs - bzStrace.medianMs) * 10) / 10,
      minMs: NaN,
    });
    if (process.env.RUNNER_BENCH_NIX === '0') return out;
    // Nix
    const nx = prepare('nix-fod');
    /** A fresh private store with the archive added as the fixed output, then the build; returns the rebuild. */
    const nixDirect = (d) => {
      const store = `local?store=${join(d, 'nix', 'store')}&state=${join(d, 'nix', 'var')}&log=${join(d, 'nix', 'log')}`;
      const opts = [
        '--store',
        store,
        '--option',
        'substituters',
        '',
        '--option',
        'sandbox',
        'true',
        '--option',
        'sandbox-fallback',
        'false',
        '--option',
        'sandbox-paths',
        nixSandboxPaths(),
        '--option',
        'build-users-group',
        '',
      ];
      mkdirSync(join(d, 'in'));
      writeFileSync(join(d, 'in', 'greet-2.0.tar.gz'), nx.archive);
      const e = { HOME: d, TMPDIR: d };
      const build = () => sh(['nix-build', ...opts, '--no-out-link', 'default.nix', '-A', 'greet'], nx.ws, e);
      sh(['nix-store', ...opts, '--add-fixed', 'sha256', join(d, 'in', 'greet-2.0.tar.gz')], nx.ws, e);
      build();
      return build;
    };
    await time(
      'nix direct: nix-store --add-fixed + nix-build (fresh store, sandbox)',
      () => void nixDirect(fresh('nix-direct')),
    );
    const nixWarm = nixDirect(fresh('nix-warm'));
    await time('nix direct: warm (output already in the store)', nixWarm);
    const nxSpec = {
      source: { repo: nx.ws, commit: nx.commit },
      builder: { type: 'nix', file: 'default.nix', attribute: 'greet' },
      outputs: ['bin/greet'],
      mirror: { url: mirrorUrl },
    };
    const nxPlain = await time('nix runBuild: cold (sandbox + seccomp monitor + instantiate + mirror fetch)', () =>
      timedRunBuild(nxSpec),
    );
    const nxRepro = await time('nix runBuild reproducible: true (+ rebuild + compare)', () =>
      timedRunBuild({ ...nxSpec, reproducible: true }),
    );
    out.push({
      name: 'nix rebuild check cost (difference of medians)',
      medianMs: Math.round((nxRepro.medianMs - nxPlain.medianMs) * 10) / 10,
      minMs: NaN,
    });
  } finally {
    server.close();
  }
  return out;
}
