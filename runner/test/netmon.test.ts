/**
 * The seccomp network monitor (runner/native/netmon.c): the classification of its events (pure), netmon itself on
 * real commands, and real sandboxed builds through `runBuild` with the default monitor. No packet leaves the
 * machine: the builds run in bwrap's empty network namespace, and the direct netmon runs only use loopback and
 * AF_UNIX.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeFor } from '../src/errors.js';
import {
  classifyNetmonEvent,
  NETMON_SYSCALLS,
  NetmonAnalyzer,
  type NetmonEvent,
  type NetworkViolation,
} from '../src/network-monitor.js';
import { runBuild, type RunOptions } from '../src/run.js';
import type { BuildSpec } from '../src/spec.js';
import {
  bwrapProblem,
  gitProblem,
  makeFixtureRepo,
  NETMON,
  netmonProblem,
  processesWith,
  rmrf,
  startFileServer,
  tempDir,
  toolsAvailable,
  type FixtureRepo,
} from './helpers.js';

type NetEvent = Extract<NetmonEvent, { ev: 'net' }>;
const net = (e: Partial<NetEvent>): NetEvent => ({
  ev: 'net',
  call: 'connect',
  pid: 10,
  tgid: 10,
  address: '1.1.1.1',
  port: 80,
  loopback: false,
  exe: '/usr/bin/bash',
  ...e,
});

describe('netmon filter (pure)', () => {
  it('the C filter hands exactly NETMON_SYSCALLS to netmon, sendto only with a destination', () => {
    const c = readFileSync(new URL('../native/netmon.c', import.meta.url), 'utf8');
    const native = c.slice(c.indexOf('static int install_filter'), c.indexOf('#if defined(__x86_64__)\n      /* 18'));
    expect([...native.matchAll(/JEQ\(__NR_(\w+)/g)].map((m) => m[1])).toEqual(NETMON_SYSCALLS);
    expect(native).toMatch(/sendto\(fd, buf, len, flags, dest_addr, addrlen\): a NULL dest/);
  });
});

describe('classifying netmon events (pure)', () => {
  it('a public address is a violation; in a namespace with only lo its result is ENETUNREACH', () => {
    expect(classifyNetmonEvent(net({ onlyLoopback: true }), 18080)).toEqual({
      kind: 'public-address',
      syscall: 'connect',
      address: '1.1.1.1',
      port: 80,
      result: 'ENETUNREACH',
    });
    expect(classifyNetmonEvent(net({ onlyLoopback: false, call: 'sendmsg' }), undefined)).toMatchObject({
      kind: 'public-address',
      syscall: 'sendmsg',
      result: 'attempted',
    });
  });

  it('port 53 anywhere but the bridge is DNS', () => {
    expect(classifyNetmonEvent(net({ call: 'sendto', address: '8.8.8.8', port: 53 }), 18080)).toMatchObject({
      kind: 'dns',
    });
    expect(
      classifyNetmonEvent(net({ call: 'sendto', address: '127.0.0.53', port: 53, loopback: true }), 18080),
    ).toMatchObject({ kind: 'dns', result: 'sent' });
  });

  it('loopback: the bridge and a listening or UDP port are fine; a TCP port nobody listens on is the host loopback', () => {
    const lo = { address: '127.0.0.1', loopback: true } as const;
    expect(classifyNetmonEvent(net({ ...lo, port: 18080, stream: true, listening: false }), 18080)).toBeUndefined();
    expect(classifyNetmonEvent(net({ ...lo, port: 4000, stream: true, listening: true }), 18080)).toBeUndefined();
    expect(classifyNetmonEvent(net({ ...lo, port: 4000, stream: false }), 18080)).toBeUndefined();
    expect(classifyNetmonEvent(net({ ...lo, port: 4000, stream: true, listening: false }), 18080)).toEqual({
      kind: 'host-loopback',
      syscall: 'connect',
      address: '127.0.0.1',
      port: 4000,
      result: 'ECONNREFUSED',
    });
    // SO_TYPE unknown: judged by the listener table like a stream socket
    expect(classifyNetmonEvent(net({ ...lo, port: 4000, stream: null, listening: false }), 18080)).toMatchObject({
      kind: 'host-loopback',
    });
  });

  it('the analyzer keeps found programs (not PATH misses or plumbing), names the program, counts refusals', () => {
    const a = new NetmonAnalyzer({ bridgePort: 18080, isPlumbing: (p) => p.startsWith('/airlock/') });
    const lines = [
      { ev: 'exec', pid: 5, path: '/airlock/bin/sh', found: true },
      { ev: 'exec', pid: 6, path: '/usr/local/bin/bash', found: false },
      { ev: 'exec', pid: 6, path: '/usr/bin/bash', found: true },
      { ev: 'exec', pid: 7, path: '/usr/bin/bash', found: true },
      net({ pid: 8, tgid: 6, onlyLoopback: true, exe: '/usr/bin/bash-exe' }),
      net({ pid: 9, tgid: 9, onlyLoopback: true, exe: '/usr/bin/python3.11' }),
      { ev: 'refused', call: 'io_uring_setup', pid: 9 },
      { ev: 'refused', call: 'io_uring_setup', pid: 9 },
    ].map((l) => JSON.stringify(l));
    for (const l of [...lines, 'not json', '{"ev":"net"']) a.line(l);
    const r = a.result();
    expect(r.executed).toEqual(['/usr/bin/bash']);
    expect(r.violationCount).toBe(2);
    expect(r.violations.map((v) => v.program)).toEqual(['/usr/bin/bash', '/usr/bin/python3.11']);
    expect(r.violations[0]).toMatchObject({ pid: 8, result: 'ENETUNREACH' });
    expect(a.refusedSyscalls()).toEqual({ io_uring_setup: 2 });
  });
});

const haveNetmon = toolsAvailable('netmon (seccomp network monitor)', [netmonProblem()]);
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : undefined;
const dir = tempDir('netmon');
afterAll(() => rmrf(dir));

function events(path: string): NetmonEvent[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as NetmonEvent);
}

describe.runIf(haveNetmon)('netmon on real commands (loopback only)', () => {
  let n = 0;
  const run = (argv: string[]) => {
    const out = join(dir, `events-${++n}.jsonl`);
    const r = spawnSync(NETMON, ['--events', out, '--', ...argv], { encoding: 'utf8', timeout: 60_000 });
    return { ...r, events: events(out) };
  };

  it('exits with the command status and re-raises its signal', () => {
    expect(run(['sh', '-c', 'exit 7']).status).toBe(7);
    const killed = run(['sh', '-c', 'kill -TERM $$']);
    expect(killed.status).toBeNull();
    expect(killed.signal).toBe('SIGTERM');
  });

  it.runIf(python)('records connect, sendto and sendmsg destinations, whether something listens, and execs', () => {
    const py = [
      'import socket',
      'srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(); port = srv.getsockname()[1]',
      'socket.create_connection(("127.0.0.1", port)).close()',
      'free = socket.socket(); free.bind(("127.0.0.1", 0)); fport = free.getsockname()[1]; free.close()',
      'try: socket.create_connection(("127.0.0.1", fport))',
      'except OSError: pass',
      'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'u.sendto(b"x", ("127.0.0.1", 9)); u.sendmsg([b"x"], [], 0, ("127.0.0.2", 10))',
      'r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.3", 0))',
      'c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.connect(r.getsockname()); c.send(b"x")',
      'u.sendto(b"y", ("127.0.0.4", 12))',
      'print(port, fport)',
    ].join('\n');
    const r = run([python!, '-c', py]);
    expect(r.status, r.stderr).toBe(0);
    const [port, fport] = r.stdout.trim().split(' ').map(Number);
    const nets = r.events.filter((e): e is NetEvent => e.ev === 'net');
    expect(nets).toContainEqual(
      expect.objectContaining({ call: 'connect', port, loopback: true, stream: true, listening: true }),
    );
    expect(nets).toContainEqual(
      expect.objectContaining({ call: 'connect', port: fport, stream: true, listening: false }),
    );
    expect(nets).toContainEqual(expect.objectContaining({ call: 'sendto', address: '127.0.0.1', port: 9 }));
    expect(nets).toContainEqual(expect.objectContaining({ call: 'sendmsg', address: '127.0.0.2', port: 10 }));
    // a connected socket's send (sendto with a NULL destination) never reaches netmon: only its connect does
    expect(nets.filter((e) => e.address === '127.0.0.3').map((e) => e.call)).toEqual(['connect']);
    expect(nets).toContainEqual(expect.objectContaining({ call: 'sendto', address: '127.0.0.4', port: 12 }));
    // the command itself is netmon's child (host side, like setpriv/bwrap): only what it runs is recorded
    const sh = run(['sh', '-c', 'true; /bin/true; exec /bin/true']);
    const execs = sh.events.filter((e) => e.ev === 'exec');
    expect(execs.length).toBeGreaterThan(0);
    expect(execs.every((e) => e.ev === 'exec' && e.path === '/bin/true' && e.found)).toBe(true);
  });

  it.runIf(python)('refuses io_uring_setup with EPERM and records it', () => {
    const r = run([python!, '-c', IO_URING_PY]);
    expect(r.stdout.trim()).toBe('EPERM');
    expect(r.events).toContainEqual(expect.objectContaining({ ev: 'refused', call: 'io_uring_setup' }));
  });

  it('its command dies with it (SIGKILL netmon: no leftover process)', async () => {
    const marker = `airlock-netmon-orphan-${process.pid}-${Date.now()}`;
    const cut = marker.lastIndexOf('-');
    const child = spawn(
      NETMON,
      [
        '--events',
        join(dir, 'orphan.jsonl'),
        '--',
        'bash',
        '-c',
        'm="$0-$1"; exec -a "$m" sleep 60',
        marker.slice(0, cut),
        marker.slice(cut + 1),
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 400 && processesWith(marker).length < 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(processesWith(marker)).toHaveLength(1); // positive control
      child.kill('SIGKILL');
      for (let i = 0; i < 100 && processesWith(marker).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(processesWith(marker)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

/** Prints the errno name io_uring_setup(2) fails with (or "ok"); writes it to $AIRLOCK_OUTPUT_DIR/result.txt. */
const IO_URING_PY = [
  'import ctypes, errno, os',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'params = ctypes.create_string_buffer(120)',
  'r = libc.syscall(425, 4, params)',
  'name = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]',
  'print(name)',
  'out = os.environ.get("AIRLOCK_OUTPUT_DIR")',
  'if out: open(out + "/result.txt", "w").write(name + "\\n")',
].join('\n');

const enabled = toolsAvailable('runner builds under the seccomp monitor', [
  bwrapProblem(),
  netmonProblem(),
  gitProblem(),
]);

type RunnerFailure = Error & {
  code: string;
  details: { violations?: NetworkViolation[]; monitor?: string; refusedSyscalls?: Record<string, number> };
};

async function failure(p: Promise<unknown>): Promise<RunnerFailure> {
  try {
    await p;
  } catch (err) {
    return err as RunnerFailure;
  }
  throw new Error('expected the build to fail');
}

describe.runIf(enabled && python)('sandboxed builds under the seccomp monitor (the default)', () => {
  let fx: FixtureRepo;
  let mirrorFx: FixtureRepo;
  let n = 0;
  const opts = (extra: Partial<RunOptions> = {}): RunOptions => ({
    outDir: join(dir, `out-${++n}`),
    workRoot: join(dir, 'work'),
    builderId: 'https://airlock.dev/runners/test/v1',
    ...extra,
  });
  beforeAll(() => {
    fx = makeFixtureRepo('network', dir);
    mirrorFx = makeFixtureRepo('mirror-fetch', dir);
  });
  const pySpec = (code: string, outputs = ['result.txt']): BuildSpec => ({
    source: { repo: fx.repo, commit: fx.commit },
    builder: { type: 'command', argv: [python!, '-c', code] },
    outputs,
  });

  it('TCP to a public address: exit 11, detected by seccomp, naming program, address and errno', async () => {
    const e = await failure(
      runBuild({ ...pySpec(''), builder: { type: 'command', argv: ['bash', 'public.sh'] } }, opts()),
    );
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(exitCodeFor(e)).toBe(EXIT_CODES.HERMETICITY_VIOLATION);
    expect(e.details.monitor).toBe('seccomp');
    expect(e.message).toMatch(/detected by seccomp/);
    expect(e.message).toMatch(/\/usr\/bin\/bash \(pid \d+\) connect 1\.1\.1\.1:80 → ENETUNREACH: a public address/);
  });

  it("TCP to the host's loopback (a real host service) is ECONNREFUSED and a violation; a service the build started is fine", async () => {
    const host = await startFileServer({ '/': 'host secret\n' });
    const port = Number(new URL(host.url).port);
    try {
      const e = await failure(
        runBuild({ ...pySpec(''), builder: { type: 'command', argv: ['bash', 'loopback.sh', String(port)] } }, opts()),
      );
      expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
      expect(e.message).toContain(`connect 127.0.0.1:${port} → ECONNREFUSED: the host's loopback`);
      expect(host.requests).toEqual([]);
    } finally {
      await host.close();
    }
    const py = [
      'import os, socket',
      "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()",
      'cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()',
      "cli.sendall(b'local service ok\\n'); data = conn.recv(100)",
      "open(os.environ['AIRLOCK_OUTPUT_DIR'] + '/result.txt', 'wb').write(data)",
    ].join('\n');
    const r = await runBuild(pySpec(py), opts());
    expect(readFileSync(r.artifacts[0]!.path, 'utf8')).toBe('local service ok\n');
    expect(r.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
  });

  it('UDP sendto a public address and a DNS query (sendto port 53) are recorded though the build exits 0', async () => {
    const py = [
      'import os, socket',
      'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'for dest in [("10.1.2.3", 5000), ("9.9.9.9", 53)]:',
      '    try: u.sendto(b"x", dest)',
      '    except OSError: pass',
      'open(os.environ["AIRLOCK_OUTPUT_DIR"] + "/result.txt", "w").write("swallowed\\n")',
    ].join('\n');
    const e = await failure(runBuild(pySpec(py), opts()));
    expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
    expect(e.message).toMatch(/build exited with status 0/);
    expect(e.details.violations).toEqual([
      expect.objectContaining({ kind: 'public-address', syscall: 'sendto', address: '10.1.2.3', port: 5000 }),
      expect.objectContaining({ kind: 'dns', syscall: 'sendto', address: '9.9.9.9', port: 53 }),
    ]);
  });

  it('sendmsg with a destination (unseen by the strace monitor) is recorded too', async () => {
    const py = [
      'import socket',
      'u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
      'try: u.sendmsg([b"x"], [], 0, ("2001:db8::1", 443))',
      'except OSError: pass',
    ].join('\n');
    const e = await failure(runBuild(pySpec(py), opts()));
    expect(e.details.violations).toEqual([
      expect.objectContaining({ kind: 'public-address', syscall: 'sendmsg', address: '2001:db8::1', port: 443 }),
    ]);
  });

  it('refuses io_uring_setup (EPERM) and names it when the build then fails', async () => {
    const ok = await runBuild(pySpec(IO_URING_PY), opts());
    expect(readFileSync(ok.artifacts[0]!.path, 'utf8')).toBe('EPERM\n');
    expect(ok.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
    const e = await failure(runBuild(pySpec(`${IO_URING_PY}\nraise SystemExit(3)`), opts()));
    expect(e.code).toBe('RUNNER_BUILD_FAILED');
    expect(e.message).toContain('the sandbox refused io_uring_setup (1×) with EPERM');
    expect(e.details.refusedSyscalls).toEqual({ io_uring_setup: 1 });
  });

  it('a build that talks only to the mirror passes; the same build also sending to 10.0.0.1 fails naming only that', async () => {
    const body = 'mirror blob contents\n';
    const sha = createHash('sha256').update(body).digest('hex');
    const server = await startFileServer({ [`/sha256/${sha}`]: body });
    const spec = (extra: string): BuildSpec => ({
      source: { repo: mirrorFx.repo, commit: mirrorFx.commit },
      builder: { type: 'command', argv: ['bash', '-c', `bash fetch.sh /sha256/${sha} ${sha} blob.txt${extra}`] },
      outputs: ['blob.txt'],
    });
    try {
      const r = await runBuild(spec(''), opts({ mirrorUrl: server.url }));
      expect(readFileSync(r.artifacts[0]!.path, 'utf8')).toBe(body);
      expect(r.hermeticity).toEqual({ monitor: 'seccomp', violations: 0 });
      const e = await failure(
        runBuild(spec('; (exec 3<>/dev/tcp/10.0.0.1/80) 2>/dev/null; true'), opts({ mirrorUrl: server.url })),
      );
      expect(e.code).toBe('RUNNER_HERMETICITY_VIOLATION');
      expect(e.details.violations).toEqual([
        expect.objectContaining({ kind: 'public-address', address: '10.0.0.1', port: 80 }),
      ]);
    } finally {
      await server.close();
    }
  });

  it('kills netmon and the sandbox on timeout: no leftover process', async () => {
    const marker = `airlock-netmon-timeout-${process.pid}-${Date.now()}`;
    const cut = marker.lastIndexOf('-');
    const e = await failure(
      runBuild(
        {
          ...pySpec(''),
          timeoutSeconds: 1,
          builder: {
            type: 'command',
            argv: ['bash', '-c', 'm="$0-$1"; exec -a "$m" sleep 60', marker.slice(0, cut), marker.slice(cut + 1)],
          },
        },
        opts(),
      ),
    );
    expect(e.code).toBe('RUNNER_BUILD_TIMEOUT');
    expect(processesWith(marker)).toEqual([]);
    expect(processesWith(join(dir, 'work'))).toEqual([]); // netmon's command line names its events file there
  });
});
