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
