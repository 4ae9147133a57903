import { describe, expect, it } from 'vitest';
import { bwrapArgs, COMMAND_PROFILE, sandboxCommand, type SandboxRunOptions } from '../src/sandbox.js';

const base: SandboxRunOptions = {
  tools: { bwrap: '/usr/bin/bwrap', node: '/usr/bin/node' },
  layout: {
    plumbingDir: '/w/run/sandbox',
    src: { host: '/w/run/src', path: '/build/src' },
    out: { host: '/w/run/out', path: '/build/out' },
    home: { host: '/w/run/home', path: '/build/home' },
    tmp: { host: '/w/run/tmp', path: '/tmp' },
  },
  profile: COMMAND_PROFILE,
  argv: ['sh', '-c', 'echo "$HOME"; rm -rf /'],
  cwd: '/build/src',
  env: {},
  hostname: 'airlock-build',
  timeoutMs: 1000,
  logPath: '/w/log',
};

/** [flag, arg1, arg2] triples for the two-argument mount flags. */
function mounts(args: string[], flag: string): [string, string][] {
  const out: [string, string][] = [];
  args.forEach((a, i) => {
    if (a === flag) out.push([args[i + 1]!, args[i + 2]!]);
  });
  return out;
}

describe('bwrapArgs', () => {
  it('isolates every namespace, drops to uid 1000 and forbids nested user namespaces for command builds', () => {
    const a = bwrapArgs(base);
    for (const f of [
      '--unshare-user',
      '--unshare-net',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--die-with-parent',
      '--new-session',
      '--disable-userns',
    ]) {
      expect(a, f).toContain(f);
    }
    expect(a.slice(a.indexOf('--uid'), a.indexOf('--uid') + 4)).toEqual(['--uid', '1000', '--gid', '1000']);
    expect(a.slice(a.indexOf('--hostname'), a.indexOf('--hostname') + 2)).toEqual(['--hostname', 'airlock-build']);
  });

  it('binds writable only the source, output, home and temp directories, and remounts the root read-only last', () => {
    const a = bwrapArgs(base);
    expect(mounts(a, '--bind')).toEqual([
      ['/w/run/tmp', '/tmp'],
      ['/w/run/src', '/build/src'],
      ['/w/run/out', '/build/out'],
      ['/w/run/home', '/build/home'],
    ]);
    expect(mounts(a, '--dev-bind')).toEqual([]);
    const ro = mounts(a, '--ro-bind').map(([, to]) => to);
    expect(ro).toContain('/usr');
    expect(ro.filter((p) => /^\/(root|home|run|var|proc)\b/.test(p))).toEqual([]);
    expect(ro).not.toContain('/etc/ssl');
    expect(
      mounts(a, '--ro-bind-try')
        .map(([from]) => from)
        .every((p) => p.startsWith('/etc/') && !p.startsWith('/etc/ssl') && p !== '/etc/shadow'),
    ).toBe(true);
    const remount = a.indexOf('--remount-ro');
    expect(a[remount + 1]).toBe('/');
    expect(a.lastIndexOf('--bind')).toBeLessThan(remount);
    expect(a.lastIndexOf('--ro-bind')).toBeLessThan(remount);
  });

  it('passes argv after "--" to a shell that only sets the umask and execs "$@" (no interpretation)', () => {
    const a = bwrapArgs(base);
    const cmd = a.slice(a.indexOf('--') + 1);
    expect(cmd).toEqual([
      '/airlock/bin/sh',
      '-c',
      'umask 022 && exec "$@"',
      'airlock-sandbox',
      'sh',
      '-c',
      'echo "$HOME"; rm -rf /',
    ]);
    expect(sandboxCommand({ ...base, wrap: ['/usr/bin/faketime', '-f', '+1d'] })).toEqual([
      '/airlock/bin/sh',
      '-c',
      'umask 022 && exec "$@"',
      'airlock-sandbox',
      '/usr/bin/faketime',
      '-f',
      '+1d',
      ...base.argv,
    ]);
  });

  it('runs the Node supervisor and binds the mirror socket only when there is a mirror', () => {
    const a = bwrapArgs({ ...base, mirrorSocket: '/w/run/mirror.sock', bridgePort: 18080 });
    expect(mounts(a, '--ro-bind')).toEqual(
      expect.arrayContaining([
        ['/w/run/mirror.sock', '/airlock/mirror.sock'],
        ['/usr/bin/node', '/airlock/bin/node'],
      ]),
    );
    expect(a.slice(a.indexOf('--') + 1)).toEqual(['/airlock/bin/node', '/airlock/supervisor.mjs']);
    expect(mounts(bwrapArgs(base), '--ro-bind').find(([, to]) => to === '/airlock/mirror.sock')).toBeUndefined();
  });

  it('lets a nested-sandbox profile keep the host pid namespace and user namespaces', () => {
    const a = bwrapArgs({
      ...base,
      profile: { unsharePid: false, disableNestedUserns: false, extraReadOnly: ['/etc/java-17-openjdk'] },
    });
    expect(a).not.toContain('--unshare-pid');
    expect(a).not.toContain('--disable-userns');
    expect(a).not.toContain('--proc');
    expect(mounts(a, '--ro-bind-try')).toContainEqual(['/etc/java-17-openjdk', '/etc/java-17-openjdk']);
  });
});
