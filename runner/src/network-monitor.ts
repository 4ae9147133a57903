/**
 * Hermeticity monitor. Isolation itself is the network namespace (bwrap --unshare-net): only the sandbox's own
 * loopback exists, so no packet can leave whatever the build does. The monitor only *observes and classifies*
 * attempts, so a build that tried the network fails as a hermeticity violation instead of as a vague build
 * error (or, worse, succeeds after swallowing the error: `exec 3<>/dev/tcp/…` failing does not stop a script).
 *
 * What counts as a violation (every mode):
 *   - connect/sendto to a non-loopback AF_INET/AF_INET6 address: always (it can only fail here);
 *   - a TCP connect to loopback that nothing in the sandbox listens for: the build expected a host service;
 *   - any connect/sendto to port 53 (DNS) other than the mirror bridge: a name lookup that /etc/hosts could not
 *     answer, i.e. an attempt to reach the network;
 *   - connects to the mirror bridge (127.0.0.1:<bridge port>) and AF_UNIX/AF_NETLINK are not violations.
 * Each mode also yields every program the build executed, which becomes the toolchain list.
 *
 * `seccomp` mode (preferred): runner/native/netmon.c runs the sandbox under a seccomp filter whose user
 * notifications only it receives. Only connect, sendto with a destination, sendmsg, sendmmsg, execve(at) and
 * io_uring_setup leave the kernel's fast path, so a JVM's thread churn and file I/O cost nothing. netmon reads the
 * sockaddr (or path) from /proc/PID/mem, writes a JSON line, and lets the call continue
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE): it is evidence, not enforcement, so the usual TOCTOU of seccomp notify (a
 * thread rewriting the sockaddr after netmon read it) can hide an attempt, never open a way out. Because the call
 * continues, netmon does not see its result: it records the facts that decide it (the sandbox's network namespace
 * has only `lo`, so a public address is ENETUNREACH; no TCP listener on that loopback port, so ECONNREFUSED).
 * io_uring_setup is refused (EPERM) and recorded: io_uring network operations would bypass seccomp.
 *
 * `strace` mode (fallback when netmon is missing or seccomp notify is not permitted): `strace -f --seccomp-bpf`
 * *outside* the sandbox (the trace file is on the host, invisible to the build), tracing the syscalls below. Costs
 * a ptrace stop on every clone and exec, which doubles a JVM build.
 *
 * `log` mode (fallback when neither works): a failed build whose log shows a network error (ENETUNREACH,
 * ECONNREFUSED, resolver failures) is classified as a violation. Weaker: a build that swallows the error and
 * succeeds is not caught.
 */

export type NetworkMonitorMode = 'seccomp' | 'strace' | 'log';

/** Syscalls traced: program executions, network attempts, their async results, and process tree edges. */
export const STRACE_SYSCALLS = [
  'execve',
  'execveat',
  'connect',
  'sendto',
  'getsockopt',
  'clone',
  'clone3',
  'fork',
  'vfork',
];

/** Arguments for `strace` that trace the command following them into `traceFile`. */
export function straceArgs(traceFile: string): string[] {
  return [
    '-f',
    '--seccomp-bpf',
    '--pidns-translation',
    '-qq',
    '-e',
    'signal=none',
    '-s',
    '0',
    '-e',
    `trace=${STRACE_SYSCALLS.join(',')}`,
    '-o',
    traceFile,
  ];
}

export type ViolationKind = 'public-address' | 'host-loopback' | 'dns' | 'mirror-request';

export interface NetworkViolation {
  kind: ViolationKind;
  /** 'bridge': a request the mirror bridge refused (a body, another method); `result` says why. */
  syscall: 'connect' | 'sendto' | 'sendmsg' | 'sendmmsg' | 'log' | 'bridge';
  address?: string;
  port?: number;
  /** errno name, e.g. ENETUNREACH; or the log line in log mode. */
  result: string;
  /** Host pid (strace and seccomp modes). */
  pid?: number;
  /** The program that made the attempt (sandbox path), when known. */
  program?: string;
  /** 'bridge' only: the refused request line (method and path). */
  request?: string;
}

export interface TraceAnalysis {
  violations: NetworkViolation[];
  /** Absolute sandbox paths of programs executed successfully inside the sandbox, first-seen order, unique. */
  executed: string[];
}

export interface TraceOptions {
  /** Loopback port of the mirror bridge inside the sandbox (connects to it are allowed). */
  bridgePort?: number;
  /** Programs that are runner plumbing, not the build (e.g. paths under /airlock/). */
  isPlumbing?: (path: string) => boolean;
  /** At most this many violations are kept (the count is still exact). */
  maxViolations?: number;
}

/** What a monitor found: violations (distinct ones kept, all counted) and the programs executed. */
class MonitorFindings {
  private readonly maxViolations: number;
  private readonly violations: NetworkViolation[] = [];
  private readonly seenViolations = new Set<string>();
  private violationCount = 0;
  private readonly executed: string[] = [];
  private readonly seenExec = new Set<string>();

  constructor(protected readonly options: TraceOptions) {
    this.maxViolations = options.maxViolations ?? 100;
  }

  result(): TraceAnalysis & { violationCount: number } {
    return { violations: [...this.violations], violationCount: this.violationCount, executed: [...this.executed] };
  }

  /** Counts every attempt; keeps each distinct (kind, call, address, port, result, program) once. */
  protected add(v: NetworkViolation): void {
    this.violationCount++;
    const key = `${v.kind} ${v.syscall} ${v.address} ${v.port} ${v.result} ${v.program}`;
    if (this.seenViolations.has(key)) return;
    this.seenViolations.add(key);
    if (this.violations.length < this.maxViolations) this.violations.push(v);
  }

  /** A program the build executed (sandbox path), unless it is runner plumbing; first-seen order. */
  protected addExecuted(path: string): void {
    if (this.options.isPlumbing?.(path) || this.seenExec.has(path)) return;
    this.seenExec.add(path);
    this.executed.push(path);
  }
}

interface Pending {
  address: string;
  port: number;
  pid: number;
}

const LINE = /^(\d+) +(.*)$/;
const CALL = /^(\w+)\((.*)$/;
const RESUMED = /^<\.\.\. (\w+) resumed>(.*)$/;
const RESULT = /\) += (-?\d+|\?)(?: \/\* (\d+) in strace's PID NS \*\/)?(?: (E[A-Z0-9]+))?/;

/**
 * Parses strace output (the format `straceArgs` produces) line by line, so a long trace never has to fit in
 * memory. Lines may be split by other processes (`<unfinished ...>` / `<... x resumed>`); those are joined per
 * pid first. Malformed lines are ignored: the build never writes this file (it lives outside the sandbox).
 */
export class TraceAnalyzer extends MonitorFindings {
  private readonly unfinished = new Map<number, string>();
  private readonly tgid = new Map<number, number>(); // tid → thread group id
  private readonly program = new Map<number, string>(); // tgid → last executed program
  private readonly pendingLoopback = new Map<string, Pending>(); // `${tgid}:${fd}` → loopback connect in progress
  private rootPid: number | undefined;

  constructor(options: TraceOptions = {}) {
    super(options);
  }

  private groupOf(pid: number): number {
    return this.tgid.get(pid) ?? pid;
  }

  private who(pid: number): { pid: number; program?: string } {
    const p = this.program.get(this.groupOf(pid));
    return p === undefined ? { pid } : { pid, program: p };
  }

  line(raw: string): void {
    const m = LINE.exec(raw);
    if (!m) return;
    const pid = Number(m[1]);
    let body = m[2]!;
    this.rootPid ??= pid;
    if (body.endsWith('<unfinished ...>')) {
      this.unfinished.set(pid, body.slice(0, -'<unfinished ...>'.length));
      return;
    }
    const resumed = RESUMED.exec(body);
    if (resumed) {
      const head = this.unfinished.get(pid);
      this.unfinished.delete(pid);
      if (head === undefined) return;
      body = head + resumed[2]!;
    }
    const call = CALL.exec(body);
    if (!call) return;
    const name = call[1]!;
    const res = RESULT.exec(body);
    const retRaw = res?.[1];
    const ret = retRaw === undefined || retRaw === '?' ? undefined : Number(res?.[2] ?? retRaw);
    const errno = res?.[3];

    switch (name) {
      case 'clone':
      case 'clone3':
      case 'fork':
      case 'vfork': {
        if (ret === undefined || ret <= 0) return;
        // The child may already have run (and exec'd) before strace prints the parent's clone result: never
        // overwrite what the child's own lines established.
        if (this.tgid.has(ret)) return;
        const isThread = /CLONE_THREAD/.test(body);
        this.tgid.set(ret, isThread ? this.groupOf(pid) : ret);
        const parentProgram = this.program.get(this.groupOf(pid));
        if (!isThread && parentProgram !== undefined && !this.program.has(ret)) this.program.set(ret, parentProgram);
        return;
      }
      case 'execve':
      case 'execveat': {
        if (ret !== 0) return;
        const args = call[2]!;
        const path =
          /^(?:-?\d+|AT_FDCWD), "((?:[^"\\]|\\.)*)"/.exec(args)?.[1] ?? /^"((?:[^"\\]|\\.)*)"/.exec(args)?.[1];
        if (path === undefined || path === '') return;
        const decoded = unescapeC(path);
        // After execve the caller is its own thread group leader.
        this.tgid.set(pid, pid);
        this.program.set(pid, decoded);
        if (pid === this.rootPid) return; // setpriv/bwrap on the host side of the sandbox
        this.addExecuted(decoded);
        return;
      }
      case 'connect':
      case 'sendto': {
        const addr = parseInetAddress(body);
        if (!addr) return;
        if (addr.loopback && this.options.bridgePort !== undefined && addr.port === this.options.bridgePort) return;
        const result = errno ?? (ret === undefined || ret < 0 ? 'unknown' : name === 'connect' ? 'connected' : 'sent');
        const base = { syscall: name, address: addr.address, port: addr.port, result, ...this.who(pid) } as const;
        if (!addr.loopback) this.add({ kind: addr.port === 53 ? 'dns' : 'public-address', ...base });
        else if (addr.port === 53) this.add({ kind: 'dns', ...base });
        else if (name === 'connect' && errno === 'ECONNREFUSED') this.add({ kind: 'host-loopback', ...base });
        else if (name === 'connect' && errno === 'EINPROGRESS') {
          const fd = /^connect\((\d+),/.exec(body)?.[1];
          if (fd !== undefined)
            this.pendingLoopback.set(`${this.groupOf(pid)}:${fd}`, { address: addr.address, port: addr.port, pid });
        }
        return;
      }
      case 'getsockopt': {
        const so = /^getsockopt\((\d+), SOL_SOCKET, SO_ERROR, \[(\w+)\]/.exec(body);
        if (!so) return;
        const key = `${this.groupOf(pid)}:${so[1]}`;
        const pending = this.pendingLoopback.get(key);
        if (!pending) return;
        this.pendingLoopback.delete(key);
        if (so[2] === 'ECONNREFUSED') {
          this.add({
            kind: 'host-loopback',
            syscall: 'connect',
            address: pending.address,
            port: pending.port,
            result: 'ECONNREFUSED',
            ...this.who(pid),
          });
        }
        return;
      }
    }
  }
}

/**
 * The only syscalls runner/native/netmon's seccomp filter hands to it (sendto only with a destination); everything
 * else stays on the kernel's fast path. Kept equal to the filter in netmon.c by a test.
 */
export const NETMON_SYSCALLS = ['connect', 'sendmsg', 'sendmmsg', 'execve', 'execveat', 'io_uring_setup', 'sendto'];

/** Arguments for runner/native/netmon that monitor the command following them, events into `eventsFile`. */
export function netmonArgs(eventsFile: string): string[] {
  return ['--events', eventsFile, '--'];
}

/** One line of netmon's events file (see runner/native/netmon.c). */
export type NetmonEvent =
  | {
      ev: 'net';
      call: 'connect' | 'sendto' | 'sendmsg' | 'sendmmsg';
      pid: number;
      tgid: number;
      address: string;
      port: number;
      loopback: boolean;
      /** Loopback connects: SO_TYPE is SOCK_STREAM (null: unknown). */
      stream?: boolean | null;
      /** Loopback stream connects: something in the sandbox listens on that port. */
      listening?: boolean;
      /** Non-loopback: the sandbox's network namespace has no interface but lo (null: unknown). */
      onlyLoopback?: boolean | null;
      exe: string;
    }
  | { ev: 'exec'; pid: number; path: string; found: boolean }
  | { ev: 'refused'; call: string; pid: number };

/** Syscalls netmon refused (they would bypass the monitor), by name. */
export type RefusedSyscalls = Record<string, number>;

/**
 * Classifies netmon's events like `TraceAnalyzer` classifies a trace, so violations, messages and provenance are the
 * same whichever monitor ran. Malformed lines are ignored: the build never writes this file (netmon, outside the
 * sandbox, does).
 */
export class NetmonAnalyzer extends MonitorFindings {
  private readonly program = new Map<number, string>(); // pid → program it exec'd
  private readonly refused: RefusedSyscalls = {};

  constructor(options: TraceOptions = {}) {
    super(options);
  }

  refusedSyscalls(): RefusedSyscalls {
    return { ...this.refused };
  }

  line(raw: string): void {
    let e: NetmonEvent;
    try {
      e = JSON.parse(raw) as NetmonEvent;
    } catch {
      return;
    }
    if (e.ev === 'exec') {
      if (!e.found) return; // a PATH search's miss, not a program that ran
      this.program.set(e.pid, e.path);
      this.addExecuted(e.path);
    } else if (e.ev === 'refused') {
      this.refused[e.call] = (this.refused[e.call] ?? 0) + 1;
    } else if (e.ev === 'net') {
      const v = classifyNetmonEvent(e, this.options.bridgePort);
      if (v) this.add({ ...v, pid: e.pid, program: this.program.get(e.tgid) ?? e.exe });
    }
  }
}

/** The violation a netmon network event is, if any; `result` is what the kernel answers in this sandbox. */
export function classifyNetmonEvent(
  e: Extract<NetmonEvent, { ev: 'net' }>,
  bridgePort: number | undefined,
): Omit<NetworkViolation, 'pid' | 'program'> | undefined {
  const base = { syscall: e.call, address: e.address, port: e.port } as const;
  if (!e.loopback) {
    const result = e.onlyLoopback === true ? 'ENETUNREACH' : 'attempted';
    return { kind: e.port === 53 ? 'dns' : 'public-address', ...base, result };
  }
  if (bridgePort !== undefined && e.port === bridgePort) return undefined;
  const refused = e.call === 'connect' && e.stream !== false && e.listening === false;
  if (e.port === 53)
    return { kind: 'dns', ...base, result: refused ? 'ECONNREFUSED' : e.call === 'connect' ? 'connected' : 'sent' };
  return refused ? { kind: 'host-loopback', ...base, result: 'ECONNREFUSED' } : undefined;
}

/** Whole-text convenience for `TraceAnalyzer`. */
export function analyzeTrace(text: string, options: TraceOptions = {}): TraceAnalysis & { violationCount: number } {
  const a = new TraceAnalyzer(options);
  for (const line of text.split('\n')) a.line(line);
  return a.result();
}

/** `{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.1.1.1")}` and the AF_INET6 form. */
export function parseInetAddress(body: string): { address: string; port: number; loopback: boolean } | undefined {
  const v4 = /sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([0-9.]+)"\)/.exec(body);
  if (v4) return { address: v4[2]!, port: Number(v4[1]), loopback: isLoopback(v4[2]!) };
  const v6 = /sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([0-9a-fA-F:.]+)"/.exec(body);
  if (v6) return { address: v6[2]!, port: Number(v6[1]), loopback: isLoopback(v6[2]!) };
  return undefined;
}

export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  if (/^127\./.test(a) || a === '0.0.0.0') return true;
  if (a === '::1' || a === '::') return true;
  const mapped = /^::ffff:([0-9.]+)$/.exec(a);
  return mapped ? isLoopback(mapped[1]!) : false;
}

function unescapeC(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const n = s[++i];
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, '\\': 92, '"': 34 };
    if (n !== undefined && simple[n] !== undefined) bytes.push(simple[n]);
    else if (n === 'x') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (n !== undefined && /[0-7]/.test(n)) {
      const oct = /^[0-7]{1,3}/.exec(s.slice(i))![0];
      bytes.push(parseInt(oct, 8));
      i += oct.length - 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const LOG_PATTERNS: { re: RegExp; kind: ViolationKind }[] = [
  { re: /Network is unreachable|ENETUNREACH|EHOSTUNREACH|No route to host/i, kind: 'public-address' },
  {
    re: /Could not resolve host|Temporary failure in name resolution|Name or service not known|EAI_AGAIN|getaddrinfo ENOTFOUND|nodename nor servname/i,
    kind: 'dns',
  },
  { re: /Connection refused|ECONNREFUSED/i, kind: 'host-loopback' },
];

/** Log-mode classification: network error lines in the log of a failed build. */
export function scanLogForViolations(log: string, max = 20): NetworkViolation[] {
  const out: NetworkViolation[] = [];
  for (const line of log.split('\n')) {
    const hit = LOG_PATTERNS.find((p) => p.re.test(line));
    if (hit) out.push({ kind: hit.kind, syscall: 'log', result: line.trim().slice(0, 300) });
    if (out.length >= max) break;
  }
  return out;
}

/** One human line per violation: "bash (pid 7) connect 1.1.1.1:80 → ENETUNREACH: public address". */
export function describeViolation(v: NetworkViolation): string {
  const what: Record<ViolationKind, string> = {
    'public-address': 'a public address (there is no route out of the sandbox)',
    'host-loopback': "the host's loopback (the sandbox has its own; nothing listens there)",
    dns: 'DNS (name lookups cannot leave the sandbox)',
    'mirror-request': 'the mirror is read-only: bodiless GET and HEAD only',
  };
  if (v.syscall === 'bridge') return `mirror bridge refused ${v.request ?? 'a request'}: ${v.result} (${what[v.kind]})`;
  if (v.syscall === 'log') return `log: "${v.result}" (${what[v.kind]})`;
  const who = v.program
    ? `${v.program}${v.pid !== undefined ? ` (pid ${v.pid})` : ''}`
    : v.pid !== undefined
      ? `pid ${v.pid}`
      : 'the build';
  const host = v.address?.includes(':') ? `[${v.address}]` : v.address;
  return `${who} ${v.syscall} ${host}:${v.port} → ${v.result}: ${what[v.kind]}`;
}
