// `npm ci` install step for @airlock/agent: builds the N-API addon with node-gyp, offline. node-gyp would download
// Node's headers; we point it at the headers installed beside this Node (Debian/NodeSource ship them in
// <prefix>/include/node) unless npm already names a nodedir.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const prefix = dirname(dirname(process.execPath));
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const r = spawnSync('node-gyp', args, {
  stdio: 'inherit',
  cwd: join(dirname(new URL(import.meta.url).pathname), '..'),
});
if (r.error) {
  console.error(`@airlock/agent: cannot run node-gyp (${r.error.message}); install g++, make and python3`);
  process.exit(1);
}
process.exit(r.status ?? 1);
