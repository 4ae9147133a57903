/**
 * Hermeticity monitor. Isolation itself is the network namespace (bwrap --unshare-net): only the sandbox's own
 * loopback exists, so no packet can leave whatever the build does. The monitor only *observes and classifies*
 * attempts, so a build that tried the network fails as a hermeticity violation instead of as a vague build
 * error (or, worse, succeeds after swallowing the error: `exec 3<>/dev/tcp/…` failing does not stop a script).
 *
 * `strace` mode (preferred): the runner starts `strace -f --seccomp-bpf` *outside* the sandbox (the trace file is
 * on the host, invisible to the build), tracing only the few syscalls below, so overhead is small. The
 * seccomp-bpf filter stops the tracee only on those syscalls.
 *   - connect/sendto to a non-loopback AF_INET/AF_INET6 address: always a violation (it can only fail here);
 *   - connect to loopback refused (ECONNREFUSED directly, or EINPROGRESS followed by getsockopt(SO_ERROR) =
 *     ECONNREFUSED): nothing in the sandbox listens there, so the build expected a host service;
 *   - any connect/sendto to port 53 (DNS) other than the mirror bridge: a name lookup that /etc/hosts could not
 *     answer, i.e. an attempt to reach the network;
 *   - connects to the mirror bridge (127.0.0.1:<bridge port>) and AF_UNIX/AF_NETLINK are not violations.
 * It also yields every program the build executed (successful execve), which becomes the toolchain list.
 *
 * `log` mode (fallback when strace is missing or ptrace is not permitted): a failed build whose log shows a
 * network error (ENETUNREACH, ECONNREFUSED, resolver failures) is classified as a violation. Weaker: a build
 * that swallows the error and succeeds is not caught.
 */

export type NetworkMonitorMode = 'strace' | 'log';

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
  syscall: 'connect' | 'sendto' | 'log' | 'bridge';
  address?: string;
  port?: number;
  /** errno name, e.g. ENETUNREACH; or the log line in log mode. */
  result: string;
  /** Host pid (strace mode). */
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
export class TraceAnalyzer {
  private readonly maxViolations: number;
  private readonly violations: NetworkViolation[] = [];
  private readonly seenViolations = new Set<string>();
  private violationCount = 0;
  private readonly executed: string[] = [];
  private readonly seenExec = new Set<string>();
  private readonly unfinished = new Map<number, string>();
  private readonly tgid = new Map<number, number>(); // tid → thread group id
  private readonly program = new Map<number, string>(); // tgid → last executed program
  private readonly pendingLoopback = new Map<string, Pending>(); // `${tgid}:${fd}` → loopback connect in progress
  private rootPid: number | undefined;

  constructor(private readonly options: TraceOptions = {}) {
    this.maxViolations = options.maxViolations ?? 100;
  }

  result(): TraceAnalysis & { violationCount: number } {
    return { violations: [...this.violations], violationCount: this.violationCount, executed: [...this.executed] };
  }

  private groupOf(pid: number): number {
    return this.tgid.get(pid) ?? pid;
  }

  /** Counts every attempt; keeps each distinct (kind, call, address, port, result, program) once. */
  private add(v: NetworkViolation): void {
    this.violationCount++;
    const key = `${v.kind} ${v.syscall} ${v.address} ${v.port} ${v.result} ${v.program}`;
    if (this.seenViolations.has(key)) return;
    this.seenViolations.add(key);
    if (this.violations.length < this.maxViolations) this.violations.push(v);
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
        if (this.options.isPlumbing?.(decoded)) return;
        if (!this.seenExec.has(decoded)) {
          this.seenExec.add(decoded);
          this.executed.push(decoded);
        }
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
