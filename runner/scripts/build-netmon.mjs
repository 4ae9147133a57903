// Builds runner/native/netmon (the seccomp user-notification network monitor) with the C compiler, offline: the
// `install` step `npm ci` runs, and what .ci/ensure-built.mjs runs when the binary is missing. Without a compiler
// the runner still works and says so: it falls back to the strace monitor.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(pkgDir, 'native', 'build', 'netmon');
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', out, join(pkgDir, 'native', 'netmon.c')], {
  stdio: 'inherit',
});
if (r.error || r.status !== 0) {
  console.error(
    `@airlock/runner: building the network monitor failed (${r.error?.message ?? `exit ${r.status}`}); needs a C compiler (gcc). The runner will fall back to strace.`,
  );
  process.exitCode = 0; // never fail `npm ci` for it: the fallback is there, and the run says which monitor it used
}
