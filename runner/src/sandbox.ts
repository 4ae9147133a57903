import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  createWriteStream,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { RunnerError } from './errors.js';
import { openConfinement, type Confinement, type ConfinementConfig, type LimitExceeded } from './limits/index.js';
import { netmonArgs, straceArgs } from './network-monitor.js';
import { SUPERVISOR_SCRIPT } from './supervisor-script.js';

/**
 * The bubblewrap sandbox every builder runs in (bwrap(1), bubblewrap 0.8):
 * - namespaces: user (the build runs as uid/gid 1000 "builder" with no capabilities), network (only the
 *   sandbox's own loopback), pid, ipc, uts (own hostname), cgroup when available; `--die-with-parent`,
 *   `--new-session` (no TIOCSTI on a terminal);
 * - filesystem: an empty root remounted read-only; the host's /usr (and the /bin, /lib* links or dirs) and a
 *   short list of harmless /etc files read-only; synthetic /etc/passwd, group, hosts, nsswitch.conf; empty
 *   read-only /root and /home; writable only the source (work), output, home and temp directories.
 *   Nothing else of the host is visible — in particular no /root, /home, /run, /var, /etc/ssl or /etc/machine-id.
 *   Host files appear owned by the sandbox user when the runner runs as root, which is why only world-readable,
 *   non-secret paths are ever bound;
 * - environment: exactly `env` (the caller builds it: PATH, HOME, TZ=UTC, LC_ALL=C, SOURCE_DATE_EPOCH, …), and
 *   umask 022 set by the sandbox's first program (see `sandboxCommand`);
 * - network: the mirror, if any, is the host mirror's UNIX socket bound at /airlock/mirror.sock and served on
 *   127.0.0.1:<bridgePort> inside by the supervisor;
 * - a wall-clock limit: the whole process group (setpriv → strace → bwrap) is SIGKILLed; bwrap's pid namespace
 *   then takes every build process with it.
 *
 * Builders that run their own nested sandboxes (Bazel's linux-sandbox, Nix's sandbox) use NESTED_SANDBOX_PROFILE:
 * the same pid namespace and fresh /proc, nested user namespaces allowed, and — when the runner is root — an
 * unprivileged host uid (see `SandboxProfile.unprivilegedHost` for why that is what makes nesting possible).
 */

export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
export const DEFAULT_BRIDGE_PORT = 18080;

/** Host /etc entries that are safe and commonly needed (dynamic linker, alternatives symlinks, protocol tables). */
export const HOST_ETC_READONLY = [
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/alternatives',
  '/etc/protocols',
  '/etc/services',
  '/etc/os-release',
  '/etc/debian_version',
  '/etc/gai.conf',
  '/etc/host.conf',
  '/etc/locale.alias',
  '/etc/magic',
  '/etc/magic.mime',
  '/etc/mime.types',
  '/etc/perl',
];

/** Top-level host entries that hold programs and libraries (merged-/usr systems have them as symlinks). */
const HOST_SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

export interface SandboxProfile {
  /** New pid namespace and a fresh /proc (off for tools that mount their own /proc, e.g. Nix, Bazel). */
  unsharePid: boolean;
  /** Forbid user namespaces inside the sandbox (off for tools with nested sandboxes). */
  disableNestedUserns: boolean;
  /** Extra host paths bound read-only at the same path (toolchains outside /usr). */
  extraReadOnly: string[];
  /**
   * Extra writable directories (sandbox paths, e.g. /nix for a private Nix store), each backed by a fresh host
   * directory per build (`SandboxLayout.extra`, created by the caller).
   */
  writableDirs?: string[];
  /**
   * When the runner is root, run bwrap as a per-run unprivileged host uid/gid instead of root (no effect
   * otherwise: bwrap then already runs unprivileged). Why:
   * - the sandbox user is whatever host uid runs bwrap, and procfs judges files such as /proc/sys/* by that host
   *   uid: as host root the build could write host sysctls (kernel.core_pattern…);
   * - bwrap therefore covers the /proc subdirectories it finds writable with read-only binds, and those covers
   *   make the kernel refuse any nested /proc mount (fs/namespace.c mnt_already_visible: a new procfs needs a
   *   fully visible one), which is exactly what Bazel's linux-sandbox and Nix's sandbox do. As an unprivileged
   *   host uid nothing is writable, nothing is covered, and the nested mount works inside the pid namespace.
   * The writable binds are chowned to that uid and the run directory is opened to its group for the duration.
   */
  unprivilegedHost?: boolean;
}

// unprivilegedHost: as root, the sandbox user would be host uid 0, and procfs judges /proc/sys/* by host uid: a
// build could write host sysctls (kernel.core_pattern → host root). Every build runs as a random unprivileged uid.
export const COMMAND_PROFILE: SandboxProfile = {
  unsharePid: true,
  disableNestedUserns: true,
  extraReadOnly: [],
  unprivilegedHost: true,
};

/**
 * For tools with their own sandbox (Bazel linux-sandbox, Nix): nested user namespaces allowed (they need them),
 * but still a pid namespace (no build process — e.g. a Bazel server JVM — outlives the sandbox) with a fresh
 * /proc, made nestable by `unprivilegedHost`.
 */
export const NESTED_SANDBOX_PROFILE: SandboxProfile = {
  unsharePid: true,
  disableNestedUserns: false,
  extraReadOnly: [],
  unprivilegedHost: true,
};

export interface BindDir {
  host: string;
  /** Path inside the sandbox. */
  path: string;
}

export interface SandboxLayout {
  /** Host directory for the runner's per-sandbox files (etc/, plumbing); never writable from inside. */
  plumbingDir: string;
  src: BindDir;
  out: BindDir;
  home: BindDir;
  tmp: BindDir;
  /** Writable directories for `profile.writableDirs` (bound after the others). */
  extra?: BindDir[];
}

export interface SandboxTools {
  bwrap: string;
  /** Node binary for the supervisor (bound at /airlock/bin/node). */
  node: string;
  /** When set, the run is monitored by runner/native/netmon (seccomp notify; preferred over strace). */
  netmon?: string;
  /** When set (and netmon is not), the run is traced (network monitor, toolchain list). */
  strace?: string;
  /** util-linux setpriv, to tie strace/bwrap to the runner's life (--pdeathsig); optional. */
  setpriv?: string;
  /** POSIX shell for the sandbox's first program when there is no mirror (default /bin/sh). */
  shell?: string;
}

export interface SandboxRunOptions {
  tools: SandboxTools;
  layout: SandboxLayout;
  profile: SandboxProfile;
  argv: string[];
  /** Working directory inside the sandbox. */
  cwd: string;
  /** The complete environment of the build. */
  env: Record<string, string>;
  hostname: string;
  /** Host path of the mirror's UNIX socket. */
  mirrorSocket?: string;
  bridgePort?: number;
  /** Prefix for argv inside the sandbox (e.g. faketime for the rebuild). */
  wrap?: string[];
  timeoutMs: number;
  logPath: string;
  maxLogBytes?: number;
  /** Where strace or netmon writes (host side), when tools.strace or tools.netmon is set. */
  tracePath?: string;
  signal?: AbortSignal;
  /** Runner plumbing files (name → content), written to the plumbing dir and bound read-only at /airlock/<name>. */
  files?: Record<string, string>;
  /** Bind the Node binary at /airlock/bin/node even without a mirror (builder drivers are Node scripts). */
  bindNode?: boolean;
  /**
   * The runner-owned directory holding every per-run host path bound into the sandbox (the run directory). With
   * an unprivileged host uid it is opened to that uid's group while the sandbox runs, so bwrap can reach the binds.
   */
  scratchRoot?: string;
  /** Resource limits (runner/src/limits): its own cgroup, or rlimits; the writable binds' disk usage watched. */
  limits?: ConfinementConfig;
}

export interface SandboxRunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  logBytes: number;
  logTruncated: boolean;
  /** The resource limit the build hit (it was killed, or a fork or allocation refused). */
  limitExceeded?: LimitExceeded;
}

export const SUPERVISOR_PATH = '/airlock/supervisor.mjs';
export const SUPERVISOR_CONFIG_PATH = '/airlock/supervisor.json';
export const SANDBOX_NODE_PATH = '/airlock/bin/node';
export const SANDBOX_MIRROR_SOCKET = '/airlock/mirror.sock';
export const SANDBOX_SHELL_PATH = '/airlock/bin/sh';

/** Files under /airlock inside the sandbox are runner plumbing, never part of the build's toolchain. */
export function isPlumbingPath(path: string): boolean {
  return path.startsWith('/airlock/');
}

const PLUMBING_FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,100}$/;
const RESERVED_PLUMBING = new Set(['supervisor.mjs', 'supervisor.json', 'mirror.sock', 'bin', 'etc', 'files']);

function plumbingFiles(opts: Pick<SandboxRunOptions, 'files'>): [string, string][] {
  const entries = Object.entries(opts.files ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [name] of entries) {
    if (!PLUMBING_FILE_NAME.test(name) || RESERVED_PLUMBING.has(name))
      throw new RunnerError('RUNNER_INTERNAL', `invalid sandbox plumbing file name '${name}'`);
  }
  return entries;
}

/** Writes the synthetic /etc files (and, with a mirror, the supervisor) into `layout.plumbingDir`. */
export function writeSandboxFiles(opts: SandboxRunOptions): void {
  const { layout } = opts;
  const etc = join(layout.plumbingDir, 'etc');
  mkdirSync(etc, { recursive: true });
  writeFileSync(
    join(etc, 'passwd'),
    `root:x:0:0:root:/root:/usr/sbin/nologin\nbuilder:x:${SANDBOX_UID}:${SANDBOX_GID}:airlock builder:${layout.home.path}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  );
  writeFileSync(join(etc, 'group'), `root:x:0:\nbuilder:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`);
  writeFileSync(
    join(etc, 'hosts'),
    `127.0.0.1\tlocalhost ${opts.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
  );
  writeFileSync(join(etc, 'hostname'), `${opts.hostname}\n`);
  // Without nsswitch.conf glibc would ask DNS before /etc/hosts.
  writeFileSync(
    join(etc, 'nsswitch.conf'),
    'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n',
  );
  const files = plumbingFiles(opts);
  if (files.length > 0) mkdirSync(join(layout.plumbingDir, 'files'), { recursive: true });
  for (const [name, content] of files) writeFileSync(join(layout.plumbingDir, 'files', name), content, { mode: 0o644 });
  if (!opts.mirrorSocket) return;
  writeFileSync(join(layout.plumbingDir, 'supervisor.mjs'), SUPERVISOR_SCRIPT);
  const config = {
    umask: '022',
    cwd: opts.cwd,
    argv: opts.argv,
    ...(opts.wrap && opts.wrap.length > 0 ? { wrap: opts.wrap } : {}),
    bridge: { port: opts.bridgePort ?? DEFAULT_BRIDGE_PORT, socket: SANDBOX_MIRROR_SOCKET },
  };
  writeFileSync(join(layout.plumbingDir, 'supervisor.json'), JSON.stringify(config));
}

/** The bwrap argv (after the program name) for `opts`; a pure function of its input apart from probing the host's /bin-style entries. */
export function bwrapArgs(opts: SandboxRunOptions): string[] {
  const { layout, profile } = opts;
  const a: string[] = [];
  a.push('--unshare-user', '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID));
  a.push('--unshare-net', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try');
  if (profile.unsharePid) a.push('--unshare-pid');
  if (profile.disableNestedUserns) a.push('--disable-userns');
  a.push('--hostname', opts.hostname, '--die-with-parent', '--new-session');
  a.push('--ro-bind', '/usr', '/usr');
  for (const d of HOST_SYSTEM_DIRS) {
    let st;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) a.push('--symlink', readlinkSync(d), d);
    else if (st.isDirectory()) a.push('--ro-bind', d, d);
  }
  // A fresh procfs of the sandbox's pid namespace (without --unshare-pid it would show the host's processes:
  // profiles that turn the pid namespace off must decide about /proc themselves via extraReadOnly).
  if (profile.unsharePid) a.push('--proc', '/proc');
  a.push('--dev', '/dev');
  for (const p of [...HOST_ETC_READONLY, ...profile.extraReadOnly]) a.push('--ro-bind-try', p, p);
  const etc = join(layout.plumbingDir, 'etc');
  for (const f of ['passwd', 'group', 'hosts', 'hostname', 'nsswitch.conf'])
    a.push('--ro-bind', join(etc, f), `/etc/${f}`);
  a.push('--dir', '/root', '--dir', '/home', '--dir', '/var', '--symlink', '../tmp', '/var/tmp');
  a.push('--bind', layout.tmp.host, layout.tmp.path);
  for (const d of [layout.src, layout.out, layout.home, ...(layout.extra ?? [])]) a.push('--bind', d.host, d.path);
  for (const [name] of plumbingFiles(opts))
    a.push('--ro-bind', join(layout.plumbingDir, 'files', name), `/airlock/${name}`);
  if (opts.bindNode && !opts.mirrorSocket) a.push('--ro-bind', opts.tools.node, SANDBOX_NODE_PATH);
  if (opts.mirrorSocket) {
    a.push('--ro-bind', opts.tools.node, SANDBOX_NODE_PATH);
    a.push('--ro-bind', join(layout.plumbingDir, 'supervisor.mjs'), SUPERVISOR_PATH);
    a.push('--ro-bind', join(layout.plumbingDir, 'supervisor.json'), SUPERVISOR_CONFIG_PATH);
    a.push('--ro-bind', opts.mirrorSocket, SANDBOX_MIRROR_SOCKET);
  } else {
    a.push('--ro-bind', realpathSync(opts.tools.shell ?? '/bin/sh'), SANDBOX_SHELL_PATH);
  }
  a.push('--remount-ro', '/');
  a.push('--chdir', opts.cwd);
  a.push('--', ...sandboxCommand(opts));
  return a;
}

/**
 * The first program in the sandbox. Without a mirror it is the host's POSIX shell (bound at /airlock/bin/sh)
 * setting the umask and exec'ing the build argv ("$@": no word splitting or interpretation), which costs ~2 ms;
 * with a mirror it is the Node supervisor, which also runs the loopback bridge (~100 ms of Node start-up).
 */
export function sandboxCommand(opts: Pick<SandboxRunOptions, 'mirrorSocket' | 'argv' | 'wrap'>): string[] {
  if (opts.mirrorSocket) return [SANDBOX_NODE_PATH, SUPERVISOR_PATH];
  return [SANDBOX_SHELL_PATH, '-c', 'umask 022 && exec "$@"', 'airlock-sandbox', ...(opts.wrap ?? []), ...opts.argv];
}

/** Sandboxes still running, killed if the runner process exits first (vitest workers, uncaught errors). */
const live = new Set<number>();
let exitHookInstalled = false;
function track(pid: number): void {
  live.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const p of live) killGroup(p);
    });
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Host uids/gids for `unprivilegedHost` sandboxes: one per sandbox run, random in a range no distribution
 * allocates (system and login users sit below 65536, subordinate-id ranges of rootless containers usually
 * just above), so two concurrent builds never share a uid (they could ptrace each other) and nothing else
 * on the host owns files as it.
 */
export const UNPRIVILEGED_HOST_ID_BASE = 1_500_000_000;
export const UNPRIVILEGED_HOST_ID_COUNT = 1 << 24;

/** The host uid/gid the sandbox will run as, when the profile asks for an unprivileged host user and the runner is root. */
function unprivilegedHostId(opts: SandboxRunOptions): number | undefined {
  if (opts.profile.unprivilegedHost !== true || process.getuid?.() !== 0) return undefined;
  return UNPRIVILEGED_HOST_ID_BASE + randomInt(UNPRIVILEGED_HOST_ID_COUNT);
}

/** lchown every entry under `dir` (symlinks themselves, never their targets). */
function chownTree(dir: string, id: number): void {
  const stack = [dir];
  while (stack.length > 0) {
    const p = stack.pop()!;
    const st = lstatSync(p);
    lchownSync(p, id, id);
    if (st.isDirectory()) for (const n of readdirSync(p)) stack.push(join(p, n));
  }
}

/**
 * Hands the writable binds to `id` and opens the run directory (mkdtemp: 0700) to its group, so bwrap running as
 * `id` can reach every bind below it; returns the function that closes the run directory again.
 */
function prepareUnprivilegedHost(opts: SandboxRunOptions, writable: readonly BindDir[], id: number): () => void {
  if (!opts.tools.setpriv) {
    throw new RunnerError(
      'RUNNER_TOOL_MISSING',
      'setpriv (util-linux) is needed to run this builder as an unprivileged host user (the runner is root)',
    );
  }
  const root = opts.scratchRoot;
  if (root) {
    // Above the run directory nothing is changed: the work root must already be searchable by anyone.
    for (let d = dirname(root); ; d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0) {
        throw new RunnerError(
          'RUNNER_SPEC_INVALID',
          `workRoot: ${d} is not searchable by other users (mode ${(statSync(d).mode & 0o777).toString(8)}); this builder's sandbox runs as an unprivileged host user and must reach the run directory: use a workRoot under /tmp or /var/tmp`,
        );
      }
      if (d === dirname(d)) break;
    }
  }
  for (const d of writable) chownTree(d.host, id);
  if (!root) return () => undefined;
  const st = statSync(root);
  chownSync(root, st.uid, id);
  chmodSync(root, 0o710);
  // The bridge socket the runner opened in the run directory: connecting needs write permission on it.
  if (opts.mirrorSocket && opts.mirrorSocket.startsWith(`${root}/`)) lchownSync(opts.mirrorSocket, id, id);
  return () => {
    try {
      chownSync(root, st.uid, st.gid);
      chmodSync(root, st.mode & 0o7777);
    } catch {
      // the run directory may already be gone
    }
  };
}

/** Runs `opts.argv` in the sandbox; stdout and stderr go (interleaved, bounded) to `opts.logPath`. */
export async function runSandboxed(opts: SandboxRunOptions): Promise<SandboxRunResult> {
  const writable = [opts.layout.src, opts.layout.out, opts.layout.home, opts.layout.tmp, ...(opts.layout.extra ?? [])];
  for (const d of writable) {
    if (!existsSync(d.host)) throw new RunnerError('RUNNER_INTERNAL', `sandbox directory ${d.host} does not exist`);
  }
  writeSandboxFiles(opts);
  const hostId = unprivilegedHostId(opts);
  const release = hostId === undefined ? undefined : prepareUnprivilegedHost(opts, writable, hostId);
  let confinement: Confinement | undefined;
  try {
    if (opts.limits)
      confinement = await openConfinement(
        opts.limits,
        writable.map((d) => d.host),
        opts.tools.shell ?? '/bin/sh',
      );
    const result = await spawnSandbox(opts, hostId, confinement);
    const limitExceeded = await confinement?.finish();
    return limitExceeded ? { ...result, limitExceeded } : result;
  } finally {
    // Also on a failed spawn: the cgroup goes (finish is idempotent).
    await confinement?.finish();
    release?.();
  }
}

async function spawnSandbox(
  opts: SandboxRunOptions,
  hostId: number | undefined,
  confinement?: Confinement,
): Promise<SandboxRunResult> {
  const bwrap = [opts.tools.bwrap, ...bwrapArgs(opts)];
  // setpriv --pdeathsig KILL: if the runner dies, netmon/strace (and then bwrap, and then the sandbox) die too.
  const guard = (argv: string[]) =>
    opts.tools.setpriv ? [opts.tools.setpriv, '--pdeathsig', 'KILL', '--', ...argv] : argv;
  // An unprivileged host user: setpriv switches uid/gid (clearing supplementary groups and, with them, every
  // capability) right before bwrap; strace stays root outside and keeps tracing across the switch.
  const drop = hostId === undefined ? [] : ['--reuid', String(hostId), '--regid', String(hostId), '--clear-groups'];
  let argv =
    hostId === undefined ? guard(bwrap) : [opts.tools.setpriv!, ...drop, '--pdeathsig', 'KILL', '--', ...bwrap];
  if (opts.tools.netmon || opts.tools.strace) {
    if (!opts.tracePath) throw new RunnerError('RUNNER_INTERNAL', 'tracePath is required with a monitor');
    // netmon stays outside the sandbox like strace: the filter it installs is inherited by setpriv, bwrap and the build.
    argv = opts.tools.netmon
      ? guard([opts.tools.netmon, ...netmonArgs(opts.tracePath), ...argv])
      : guard([opts.tools.strace!, ...straceArgs(opts.tracePath), ...argv]);
  }
  if (confinement) argv = confinement.wrap(argv);
  const maxLog = opts.maxLogBytes ?? 64 << 20;
  const log = createWriteStream(opts.logPath, { flags: 'wx', mode: 0o644 });
  const started = Date.now();
  return new Promise<SandboxRunResult>((resolvePromise, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let logBytes = 0;
    let truncated = false;
    let timedOut = false;
    let aborted = false;
    const onData = (chunk: Buffer) => {
      if (truncated) return;
      if (logBytes + chunk.length > maxLog) {
        log.write(chunk.subarray(0, maxLog - logBytes));
        log.write(`\n[airlock: log truncated at ${maxLog} bytes]\n`);
        logBytes = maxLog;
        truncated = true;
        return;
      }
      logBytes += chunk.length;
      log.write(chunk);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    if (child.pid !== undefined) track(child.pid);
    if (child.pid !== undefined) confinement?.started(() => killGroup(child.pid!));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid);
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      if (child.pid !== undefined) killGroup(child.pid);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    child.on('error', (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      log.end();
      reject(
        new RunnerError('RUNNER_TOOL_MISSING', `cannot start the sandbox (${argv[0]}): ${e.message}`, { cause: e }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (child.pid !== undefined) {
        // Anything left in the group (it should be empty: bwrap's pid namespace is gone) goes too.
        killGroup(child.pid);
        live.delete(child.pid);
      }
      log.end(() =>
        resolvePromise({
          exitCode: code,
          signal,
          timedOut,
          aborted,
          durationMs: Date.now() - started,
          logBytes,
          logTruncated: truncated,
        }),
      );
    });
  });
}
