/**
 * Shared by the Nix and Bazel acceptance tests: network isolation that leaves only the mirror reachable,
 * deterministic fixture tarballs, tool gating and temp-tree removal.
 *
 * Isolation: the build tool runs in a fresh network namespace (`unshare -n`) whose loopback is the only
 * interface; nothing on the host (the fixture upstream included) is reachable from it. The mirror runs on the
 * host as usual; the test exposes it on a UNIX socket (sockets in the filesystem cross network namespaces, TCP
 * ports do not) and a tiny bridge inside the namespace listens on 127.0.0.1:<port> and forwards to that socket.
 * Recipe and the `ip link set lo up` gotcha: util-linux unshare(1); the namespace's lo starts DOWN.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { which } from '@airlock/testkit';

// The tool gate and `which` are shared with every package's tests (@airlock/testkit).
export { toolsAvailable, which } from '@airlock/testkit';

const IP = which('ip');

/** Why `unshare -n` + a loopback cannot be used here (not root, no util-linux/iproute2), or undefined if it can. */
export function networkIsolationProblem(): string | undefined {
  if (!which('unshare')) return 'unshare (util-linux) is not installed';
  if (!IP) return 'ip (iproute2) is not installed';
  const r = spawnSync('unshare', ['-n', IP, 'link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (r.status !== 0)
    return `cannot create a network namespace (unshare -n needs CAP_SYS_ADMIN): ${(r.stderr || String(r.error)).trim()}`;
  return undefined;
}

export interface UnixBridge {
  socketPath: string;
  /** Connections made through the bridge: proof that the isolated tool did (or did not) reach the mirror. */
  connections(): number;
  close(): Promise<void>;
}

/** Host side: a UNIX socket that forwards every connection to `target` (the mirror's `http://127.0.0.1:<port>`). */
export async function startUnixBridge(socketPath: string, target: string): Promise<UnixBridge> {
  // sockaddr_un.sun_path is 108 bytes with its NUL: a long TMPDIR would otherwise fail with a vague EINVAL.
  if (Buffer.byteLength(socketPath) > 107)
    throw new Error(`UNIX socket path too long (${Buffer.byteLength(socketPath)} > 107 bytes): ${socketPath}`);
  const { hostname, port } = new URL(target);
  let count = 0;
  const server: Server = createServer((client) => {
    count++;
    const upstream = connect(Number(port), hostname);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    socketPath,
    connections: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Runs inside the namespace (CommonJS, `node -e`): brings lo up, optionally starts the 127.0.0.1:<port> → UNIX
 * socket bridge, runs the command with inherited stdio and exits with its status.
 */
const INSIDE = String.raw`
const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');
const cfg = JSON.parse(process.env.AIRLOCK_NETNS_CONFIG);
delete process.env.AIRLOCK_NETNS_CONFIG;
const lo = spawnSync(cfg.ip, ['link', 'set', 'lo', 'up'], { stdio: 'inherit' });
if (lo.status !== 0) { console.error('netns: cannot bring lo up'); process.exit(125); }
const run = () => {
  const child = spawn(cfg.command[0], cfg.command.slice(1), { stdio: 'inherit', cwd: cfg.cwd });
  for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => child.kill(s));
  child.on('error', (e) => { console.error('netns: ' + e.message); process.exit(127); });
  child.on('exit', (code, signal) => process.exit(code === null ? 128 + (signal === 'SIGKILL' ? 9 : 15) : code));
};
if (cfg.bridge) {
  const server = net.createServer((c) => {
    const u = net.connect(cfg.bridge.socketPath);
    c.pipe(u); u.pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  });
  server.on('error', (e) => { console.error('netns: bridge: ' + e.message); process.exit(125); });
  server.listen(cfg.bridge.port, '127.0.0.1', run);
} else run();
`;

export interface IsolatedResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface IsolatedOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Expose the host-side bridge's socket inside the namespace on 127.0.0.1:`port`; omit for no network at all. */
  bridge?: { socketPath: string; port: number };
  timeoutMs?: number;
}

/**
 * Runs `command` in a new network namespace. The whole process group is killed on timeout (it is started
 * detached, so the group id is the child's pid and nothing else of ours is in it).
 */
export function runIsolated(command: string[], opts: IsolatedOptions): Promise<IsolatedResult> {
  const config = JSON.stringify({ ip: IP, command, cwd: opts.cwd, bridge: opts.bridge });
  const child = spawn('unshare', ['-n', process.execPath, '-e', INSIDE], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, AIRLOCK_NETNS_CONFIG: config },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(
        new Error(`'${command.join(' ')}' timed out after ${opts.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A deterministic `<dir>.tar.gz` of `parent/dir` (sorted names, mtime 0, numeric root owner, gzip without name
 * or time): the same bytes on every run, so its sha256 can be pinned. GNU tar + gzip, as in Debian's base system.
 */
export function deterministicTarGz(parent: string, dir: string, out: string): Buffer {
  const r = spawnSync(
    'sh',
    [
      '-c',
      'tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w -cf - "$2" | gzip -n -9',
      'sh',
      parent,
      dir,
    ],
    { maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`tar | gzip failed: ${r.stderr.toString()}`);
  writeFileSync(out, r.stdout);
  return r.stdout;
}

/** Removes a temp tree even where tools left it read-only (Nix stores, Bazel output bases). */
export function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    makeWritable(path);
    rmSync(path, { recursive: true, force: true });
  }
}

function makeWritable(path: string): void {
  // lstat: never follow a symlink out of the tree (Bazel output bases are full of them).
  if (!lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
  chmodSync(path, 0o755);
  for (const e of readdirSync(path, { withFileTypes: true })) if (e.isDirectory()) makeWritable(join(path, e.name));
}
