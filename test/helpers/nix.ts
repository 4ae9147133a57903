/**
 * Real Nix (Debian's nix-bin 2.8) for the mirror acceptance test, kept off the host's /nix:
 * - a *chroot store* (`--store <dir>`): store paths stay `/nix/store/…` (so hashes equal a real store's) while
 *   the files live under `<dir>/nix/store`; it always builds in Nix's sandbox;
 * - a private HOME, NIX_CONF_DIR (our own nix.conf, not /etc/nix) and TMPDIR;
 * - no substituters: nothing but the `hashed-mirrors` we pass can provide a fixed-output file.
 * Settings: https://github.com/NixOS/nix/blob/2.8.0/src/libstore/globals.hh
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { which } from './netns.js';

export function nixProblem(): string | undefined {
  for (const tool of ['nix-build', 'nix-instantiate', 'nix'])
    if (!which(tool)) return `${tool} is not installed (Debian: nix-bin)`;
  const v = spawnSync('nix-build', ['--version'], { encoding: 'utf8' });
  if (v.status !== 0 || !/\b2\.\d+/.test(v.stdout)) return `nix-build --version failed: ${v.stdout}${v.stderr}`;
  return undefined;
}

export interface NixSandbox {
  /** Environment for every nix command: private HOME, config and temp dirs. */
  env: NodeJS.ProcessEnv;
  /** The chroot store's root (`--store`); the files are under `<store>/nix/store`. */
  store: string;
}

/**
 * Host tools a non-fixed-output builder may use inside the sandbox: Debian's Nix maps nothing in by default
 * (empty `sandbox-paths`, no bundled busybox), so `/bin/sh` must be mapped to dash and its libraries made visible.
 */
function sandboxPaths(): string {
  const sh = existsSync('/usr/bin/dash') ? '/usr/bin/dash' : realpathSync('/bin/sh');
  const paths = [`/bin/sh=${sh}`, '/usr'];
  for (const p of ['/lib', '/lib64']) if (existsSync(p)) paths.push(`${p}=${realpathSync(p)}`);
  if (existsSync('/etc/ld.so.cache')) paths.push('/etc/ld.so.cache');
  return paths.join(' ');
}

/** A fresh, empty Nix setup under `dir` (created). */
export function makeNixSandbox(dir: string): NixSandbox {
  for (const d of ['home', 'conf', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'conf', 'nix.conf'),
    [
      'substituters =',
      'sandbox = true',
      // Builds run as the invoking user (root here), so the test does not depend on nixbld users existing.
      'build-users-group =',
      `sandbox-paths = ${sandboxPaths()}`,
      'experimental-features = nix-command',
      '',
    ].join('\n'),
  );
  return {
    store: join(dir, 'store'),
    env: {
      HOME: join(dir, 'home'),
      NIX_CONF_DIR: join(dir, 'conf'),
      XDG_CACHE_HOME: join(dir, 'home', '.cache'),
      TMPDIR: join(dir, 'tmp'),
      NIX_PATH: '',
    },
  };
}

/** `--argstr` pairs for an expression's function arguments. */
export function argstr(args: Record<string, string>): string[] {
  return Object.entries(args).flatMap(([k, v]) => ['--argstr', k, v]);
}

function runNix(sb: NixSandbox, cmd: string, args: string[]): string {
  const r = spawnSync(cmd, ['--store', sb.store, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...sb.env },
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Evaluates `file` into a .drv (offline: evaluation fetches nothing) and returns the .drv path. */
export function nixInstantiate(sb: NixSandbox, file: string, args: Record<string, string>): string {
  return runNix(sb, 'nix-instantiate', [file, ...argstr(args)]).trim();
}

/** `nix show-derivation -r <drv>`: the JSON of the derivation and its whole input closure. */
export function nixShowDerivationRecursive(sb: NixSandbox, drv: string): string {
  return runNix(sb, 'nix', ['show-derivation', '-r', drv]);
}

/** The `nix-build` argv that fetches through `hashed-mirrors` only, for runIsolated. */
export function nixBuildCommand(
  sb: NixSandbox,
  file: string,
  args: Record<string, string>,
  hashedMirror: string,
  extra: string[] = [],
): string[] {
  return [
    'nix-build',
    '--store',
    sb.store,
    '--no-out-link',
    '--option',
    'hashed-mirrors',
    hashedMirror,
    ...extra,
    file,
    ...argstr(args),
  ];
}

/** Where a logical `/nix/store/…` path of the chroot store is on disk. */
export function storeFile(sb: NixSandbox, storePath: string): string {
  return join(sb.store, storePath);
}
