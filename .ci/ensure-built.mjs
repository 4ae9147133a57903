#!/usr/bin/env node
// Makes `npm test`, `npm run demo` and `npm run bench` work from a fresh clone: installs the locked
// dependencies when node_modules is missing or older than the lockfile, then builds (tsc -b is incremental).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`airlock: '${cmd} ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
};
const lock = join(root, 'package-lock.json');
const marker = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  console.error('airlock: installing locked dependencies (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
run('npx', ['--no-install', 'tsc', '-b']);
// The agent's native addon is built by `npm ci`; a tree installed before it existed (or with --ignore-scripts) lacks it.
if (!existsSync(join(root, 'packages', 'agent', 'build', 'Release', 'airlock_peer.node'))) {
  run(process.execPath, [join(root, 'packages', 'agent', 'scripts', 'build-addon.mjs')]);
}
// Likewise the runner's seccomp network monitor (runner/native/netmon.c).
if (!existsSync(join(root, 'runner', 'native', 'build', 'netmon'))) {
  run(process.execPath, [join(root, 'runner', 'scripts', 'build-netmon.mjs')]);
}

// `--system-tools`: the demo's hermetic build needs bubblewrap (the sandbox), git (the checkout) and strace (the
// network monitor); its admission stage needs docker-registry (Debian's CNCF Distribution, on loopback). On a fresh
// Debian machine as root they are installed from Debian; otherwise the demo explains what is missing and skips only
// the stage that needs it.
if (process.argv.includes('--system-tools')) {
  const needed = {
    bwrap: ['bubblewrap', 'the hermetic build'],
    git: ['git', 'the hermetic build'],
    strace: ['strace', 'the hermetic build'],
    'docker-registry': ['docker-registry', 'the admission stage'],
  };
  const onPath = (cmd) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, cmd)));
  const missing = Object.entries(needed)
    .filter(([cmd]) => !onPath(cmd))
    .map(([, need]) => need);
  const pkgs = missing.map(([pkg]) => pkg);
  const stages = [...new Set(missing.map(([, stage]) => stage))].join(' and ');
  if (missing.length > 0) {
    if (process.getuid?.() === 0 && onPath('apt-get')) {
      console.error(`airlock: installing ${pkgs.join(' ')} from Debian for the demo (${stages})…`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const apt = (args) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
      if (!(apt(['update', '-qq']) && apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]))) {
        console.error(`airlock: could not install ${pkgs.join(' ')}; the demo will skip ${stages}`);
      }
    } else {
      console.error(
        `airlock: ${pkgs.join(', ')} not installed (apt-get install ${pkgs.join(' ')} as root); the demo will skip ${stages}`,
      );
    }
  }
}
