import { describe, expect, it } from 'vitest';
import {
  analyzeTrace,
  describeViolation,
  isLoopback,
  parseInetAddress,
  scanLogForViolations,
} from '../src/network-monitor.js';
import { isPlumbingPath } from '../src/sandbox.js';

// Lines in the shape strace 6.1 prints with `-f --seccomp-bpf --pidns-translation -qq -s 0` (recorded from real runs).
const HEADER = [
  '100 execve("/usr/bin/setpriv", [...], 0x7ffd8a12fb08 /* 12 vars */) = 0',
  '100 execve("/usr/bin/bwrap", [...], 0x7ffd8a12fb08 /* 12 vars */) = 0',
  '100 clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) = 101',
  "101 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7fef06d61490) = 2 /* 102 in strace's PID NS */",
  '102 execve("/airlock/bin/node", [...], 0x7ffdd48b3080 /* 12 vars */) = 0',
  "102 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f07da452a10) = 3 /* 103 in strace's PID NS */",
  '103 execve("/usr/local/bin/bash", [...], 0x55f24f465db0 /* 12 vars */) = -1 ENOENT (No such file or directory)',
  '103 execve("/usr/bin/bash", [...], 0x55f24f465db0 /* 12 vars */) = 0',
];
const opts = { bridgePort: 18080, isPlumbing: isPlumbingPath };

describe('strace trace analysis', () => {
  it('lists programs the build executed, not the host-side setpriv/bwrap or the /airlock plumbing', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '104 execve("/usr/bin/tar", [...], 0x1 /* 3 vars */) = 0',
        '105 execve("/usr/bin/bash", [...], 0x1 /* 3 vars */) = 0',
      ].join('\n'),
      opts,
    );
    expect(r.executed).toEqual(['/usr/bin/bash', '/usr/bin/tar']);
    expect(r.violationCount).toBe(0);
  });

  it('flags a connect to a public address and names the program', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '103 connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.1.1.1")}, 16) = -1 ENETUNREACH (Network is unreachable)',
      ].join('\n'),
      opts,
    );
    expect(r.violations).toEqual([
      {
        kind: 'public-address',
        syscall: 'connect',
        address: '1.1.1.1',
        port: 80,
        result: 'ENETUNREACH',
        pid: 103,
        program: '/usr/bin/bash',
      },
    ]);
    expect(describeViolation(r.violations[0]!)).toBe(
      '/usr/bin/bash (pid 103) connect 1.1.1.1:80 → ENETUNREACH: a public address (there is no route out of the sandbox)',
    );
  });

  it('flags IPv6 public connects and UDP sendto', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '103 connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2606:4700::1111", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH (Network is unreachable)',
        '103 sendto(4, ""..., 29, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(123), sin_addr=inet_addr("9.9.9.9")}, 16) = -1 ENETUNREACH (Network is unreachable)',
      ].join('\n'),
      opts,
    );
    expect(r.violations.map((v) => [v.kind, v.address, v.port, v.syscall])).toEqual([
      ['public-address', '2606:4700::1111', 443, 'connect'],
      ['public-address', '9.9.9.9', 123, 'sendto'],
    ]);
    expect(describeViolation(r.violations[0]!)).toContain('[2606:4700::1111]:443');
  });

  it('flags a refused loopback connect (the host loopback is not there) but allows the mirror bridge and successful loopback', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '103 connect(3, {sa_family=AF_INET, sin_port=htons(18080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '103 connect(4, {sa_family=AF_INET, sin_port=htons(9000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '103 connect(5, {sa_family=AF_INET, sin_port=htons(45678), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)',
        '103 connect(6, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)',
      ].join('\n'),
      opts,
    );
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatchObject({
      kind: 'host-loopback',
      address: '127.0.0.1',
      port: 45678,
      result: 'ECONNREFUSED',
    });
  });

  it('resolves non-blocking loopback connects through getsockopt(SO_ERROR), across threads of one process', () => {
    const lines = [
      ...HEADER,
      '106 execve("/usr/bin/node", [...], 0x1 /* 3 vars */) = 0',
      "106 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0} => {parent_tid=[4 /* 107 in strace's PID NS */]}, 88) = 4 /* 107 in strace's PID NS */",
      '106 connect(19, {sa_family=AF_INET, sin_port=htons(45678), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)',
      '106 connect(20, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)',
      '107 getsockopt(19, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0',
      '106 getsockopt(20, SOL_SOCKET, SO_ERROR, [0], [4]) = 0',
    ];
    const r = analyzeTrace(lines.join('\n'), opts);
    expect(r.violations).toEqual([
      {
        kind: 'host-loopback',
        syscall: 'connect',
        address: '127.0.0.1',
        port: 45678,
        result: 'ECONNREFUSED',
        pid: 107,
        program: '/usr/bin/node',
      },
    ]);
  });

  it('flags DNS lookups, including to the sandbox loopback (no resolv.conf: glibc asks 127.0.0.1:53)', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '108 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
      ].join('\n'),
      opts,
    );
    expect(r.violations[0]).toMatchObject({ kind: 'dns', port: 53 });
    expect(describeViolation(r.violations[0]!)).toContain('DNS');
  });

  it('joins lines split by other processes (<unfinished ...> / resumed)', () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '103 connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("8.8.8.8")}, 16 <unfinished ...>',
        '104 execve("/usr/bin/sleep", [...], 0x1 /* 3 vars */) = 0',
        '103 <... connect resumed>) = -1 ENETUNREACH (Network is unreachable)',
      ].join('\n'),
      opts,
    );
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatchObject({ address: '8.8.8.8', result: 'ENETUNREACH' });
    expect(r.executed).toContain('/usr/bin/sleep');
  });

  it('ignores garbage lines and keeps an exact count beyond the kept violations', () => {
    const flood = Array.from(
      { length: 150 },
      (_, i) =>
        `103 connect(3, {sa_family=AF_INET, sin_port=htons(${1000 + i}), sin_addr=inet_addr("1.2.3.4")}, 16) = -1 ENETUNREACH (x)`,
    );
    const r = analyzeTrace([...HEADER, 'not a trace line', '12 ???', ...flood].join('\n'), opts);
    expect(r.violationCount).toBe(150);
    expect(r.violations).toHaveLength(100);
  });

  it("attributes attempts to the child's program even when the parent's clone result is printed after the child ran", () => {
    const r = analyzeTrace(
      [
        ...HEADER,
        '110 execve("/usr/bin/getent", [...], 0x1 /* 3 vars */) = 0',
        '110 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        "103 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x1) = 9 /* 110 in strace's PID NS */",
        '110 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
      ].join('\n'),
      opts,
    );
    // two attempts, one distinct violation, attributed to getent (not the forking shell)
    expect(r.violationCount).toBe(2);
    expect(r.violations).toEqual([
      {
        kind: 'dns',
        syscall: 'connect',
        address: '127.0.0.1',
        port: 53,
        result: 'connected',
        pid: 110,
        program: '/usr/bin/getent',
      },
    ]);
  });

  it('decodes C escapes in executed paths', () => {
    const r = analyzeTrace(
      [...HEADER, '109 execve("/usr/bin/odd\\x20name\\303\\251", [...], 0x1 /* 1 var */) = 0'].join('\n'),
      opts,
    );
    expect(r.executed).toContain('/usr/bin/odd nameé');
  });
});

describe('address helpers and log mode', () => {
  it('knows loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '0.0.0.0'])
      expect(isLoopback(a), a).toBe(true);
    for (const a of ['1.1.1.1', '10.0.0.1', '::ffff:8.8.8.8', '2001:db8::1']) expect(isLoopback(a), a).toBe(false);
    expect(parseInetAddress('connect(3, {sa_family=AF_UNIX, sun_path="/x"}, 110) = 0')).toBeUndefined();
  });

  it('classifies network errors in a failed build log', () => {
    const v = scanLogForViolations(
      'compiling\ncurl: (6) Could not resolve host: example.com\nbash: connect: Network is unreachable\nconnect ECONNREFUSED 127.0.0.1:9\nok\n',
    );
    expect(v.map((x) => x.kind)).toEqual(['dns', 'public-address', 'host-loopback']);
    expect(describeViolation(v[0]!)).toContain('Could not resolve host');
    expect(scanLogForViolations('all good\n')).toEqual([]);
  });
});
