// Builds @airlock/agent's N-API addon with node-gyp, offline: the `install` step `npm ci` runs, and what
// .ci/ensure-built.mjs runs when the addon is missing. node-gyp would download Node's headers; we point it at the
// headers installed beside this Node (Debian/NodeSource ship them in <prefix>/include/node) unless npm names a
// nodedir. Outside npm, node-gyp is npm's bundled copy.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

function nodeGyp() {
  const onPath = (process.env.PATH ?? '').split(delimiter).find((d) => d && existsSync(join(d, 'node-gyp')));
  if (onPath) return [join(onPath, 'node-gyp')];
  const npm = (process.env.PATH ?? '').split(delimiter).find((d) => d && existsSync(join(d, 'npm')));
  const bundled =
    npm && join(dirname(realpathSync(join(npm, 'npm'))), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return bundled && existsSync(bundled) ? [process.execPath, bundled] : undefined;
}

const gyp = nodeGyp();
if (!gyp) {
  console.error('@airlock/agent: node-gyp not found (it comes with npm); cannot build the SO_PEERCRED/pidfd addon');
  process.exit(1);
}
const r = spawnSync(gyp[0], [...gyp.slice(1), ...args], { stdio: 'inherit', cwd: pkgDir });
if (r.error || r.status !== 0) {
  console.error(
    `@airlock/agent: building the addon failed (${r.error?.message ?? `exit ${r.status}`}); needs g++, make, python3`,
  );
  process.exit(1);
}
