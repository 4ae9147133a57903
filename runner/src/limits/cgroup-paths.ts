/**
 * Pure planning for the per-build cgroup: where the runner's own cgroups are (from /proc/self/mountinfo and
 * /proc/self/cgroup), and which directories and values a build's child cgroup gets (cgroup v2 or the v1
 * memory/pids/cpu hierarchies). No file is written here; `cgroup.ts` carries the plan out.
 */
import { join } from 'node:path';
import type { ResourceLimits } from './limits.js';

export interface CgroupMount {
  fstype: 'cgroup' | 'cgroup2';
  /** Where it is mounted. */
  mountPoint: string;
  /** Which cgroup of the hierarchy the mount shows at its mount point. */
  root: string;
  /** v1: the controllers of the hierarchy (super options); v2: empty. */
  controllers: string[];
}

/** The cgroup mounts listed in /proc/self/mountinfo (proc(5)). */
export function parseMountinfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if ((fstype !== 'cgroup' && fstype !== 'cgroup2') || pre.length < 5) continue;
    mounts.push({
      fstype,
      root: unescapeMountPath(pre[3]!),
      mountPoint: unescapeMountPath(pre[4]!),
      controllers: fstype === 'cgroup' ? superOpts.split(',').filter((o) => V1_CONTROLLERS.has(o)) : [],
    });
  }
  return mounts;
}

const V1_CONTROLLERS = new Set(['memory', 'pids', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'devices', 'freezer']);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface ProcCgroups {
  /** The cgroup v2 path ("0::/path"), if any. */
  unified?: string;
  /** v1 controller → cgroup path. */
  v1: Map<string, string>;
}

/** /proc/self/cgroup: `hierarchy-id:controller,list:/path` per line (cgroups(7)). */
export function parseProcCgroup(text: string): ProcCgroups {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') unified = m[3];
    else for (const c of m[2]!.split(',')) if (c !== '') v1.set(c, m[3]!);
  }
  return { ...(unified !== undefined ? { unified } : {}), v1 };
}

/** The directory of cgroup `path` in `mount`, or undefined when the mount does not show it. */
export function cgroupDir(mount: CgroupMount, path: string): string | undefined {
  if (path.split('/').some((c) => c === '..' || c === '.')) return undefined;
  const root = mount.root === '/' ? '' : mount.root.replace(/\/$/, '');
  if (path !== root && !path.startsWith(`${root}/`)) return undefined;
  const dir = join(mount.mountPoint, path.slice(root.length));
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}

function under(p: string, root: string): boolean {
  const r = root.replace(/\/+$/, '');
  return p === r || p.startsWith(`${r}/`);
}

/** The runner's own cgroups: a v2 directory and/or the v1 memory, pids and cpu directories. */
export interface OwnCgroups {
  v2?: string;
  v1: { memory?: string; pids?: string; cpu?: string };
}

/** Where the runner's own cgroups are, among the mounts at or below `cgroupRoot`. */
export function ownCgroups(mountinfo: string, procCgroup: string, cgroupRoot: string): OwnCgroups {
  const mounts = parseMountinfo(mountinfo).filter((m) => under(m.mountPoint, cgroupRoot));
  const self = parseProcCgroup(procCgroup);
  const own: OwnCgroups = { v1: {} };
  const v2 = mounts.find((m) => m.fstype === 'cgroup2');
  if (v2 && self.unified !== undefined) {
    const d = cgroupDir(v2, self.unified);
    if (d) own.v2 = d;
  }
  for (const c of ['memory', 'pids', 'cpu'] as const) {
    const m = mounts.find((x) => x.fstype === 'cgroup' && x.controllers.includes(c));
    const path = self.v1.get(c);
    if (!m || path === undefined) continue;
    const d = cgroupDir(m, path);
    if (d) own.v1[c] = d;
  }
  return own;
}

/** The interface files of a v2 cgroup directory the planner needs to read (their contents). */
export interface V2State {
  /** `cgroup.controllers` of the runner's cgroup: what it may hand to children. */
  controllers: string[];
  /** `cgroup.subtree_control` of the runner's cgroup: what children already get. */
  subtreeControl: string[];
}

export type CgroupLayout = { version: 'v2'; own: string; state: V2State } | { version: 'v1'; own: OwnCgroups['v1'] };

/** Choose the backend: v2 when it offers memory and pids, else v1 with memory and pids hierarchies. */
export function chooseLayout(own: OwnCgroups, v2State: V2State | undefined): CgroupLayout | string {
  if (own.v2 && v2State && ['memory', 'pids'].every((c) => v2State.controllers.includes(c)))
    return { version: 'v2', own: own.v2, state: v2State };
  if (own.v1.memory && own.v1.pids) return { version: 'v1', own: own.v1 };
  const v2Note = own.v2
    ? `cgroup v2 at ${own.v2} offers [${v2State?.controllers.join(' ') ?? 'unreadable'}], not memory and pids`
    : 'no cgroup v2 hierarchy';
  return `${v2Note}; no cgroup v1 memory and pids hierarchies`;
}

export interface CgroupWrite {
  file: string;
  value: string;
  /** Missing file (a kernel without swap accounting, oom.group…) is fine. */
  optional?: boolean;
}

export interface CgroupPlan {
  version: 'v1' | 'v2';
  /** Writes to the runner's own cgroup before the child is made (v2: delegate controllers). */
  parentSetup: CgroupWrite[];
  /** Child directories to create (removed again after the build). */
  dirs: string[];
  writes: CgroupWrite[];
  /** cgroup.procs files the sandbox's first process writes its pid into, before anything else runs. */
  procs: string[];
  /** Where a hit limit shows: `key N` lines, N > 0 meaning hit. */
  events: { memory: { file: string; key: string }; pids: { file: string; key: string } };
  /** v2 only: writing 1 kills every process of the cgroup (Linux ≥ 5.14). */
  killFile?: string;
  /** The limits the plan could not express on this host (e.g. no cpu controller). */
  unenforced: string[];
}

/** CFS period: 100 ms, the kernel default; the quota is cores × period. */
export const CPU_PERIOD_US = 100_000;

/**
 * A child cgroup name: the runner's pid namespace (inode) and pid, to find the stale ones of dead runners (a pid
 * is only meaningful in its own namespace: v1 hierarchies can be shared with runners in other containers), and
 * random hex.
 */
export const CGROUP_NAME = /^airlock-(\d+)-(\d+)-[0-9a-f]{8,32}$/;

export function cgroupPlan(layout: CgroupLayout, limits: ResourceLimits, name: string): CgroupPlan {
  if (!CGROUP_NAME.test(name)) throw new Error(`invalid cgroup name '${name}'`);
  const quota = limits.cpuCores === undefined ? undefined : Math.max(1000, Math.round(limits.cpuCores * CPU_PERIOD_US));
  return layout.version === 'v2' ? planV2(layout, limits, name, quota) : planV1(layout.own, limits, name, quota);
}

function planV2(
  layout: Extract<CgroupLayout, { version: 'v2' }>,
  limits: ResourceLimits,
  name: string,
  quota: number | undefined,
): CgroupPlan {
  const dir = join(layout.own, name);
  const hasCpu = layout.state.controllers.includes('cpu');
  const wanted = ['memory', 'pids', ...(quota !== undefined && hasCpu ? ['cpu'] : [])];
  const missing = wanted.filter((c) => !layout.state.subtreeControl.includes(c));
  return {
    version: 'v2',
    parentSetup:
      missing.length > 0
        ? [{ file: join(layout.own, 'cgroup.subtree_control'), value: missing.map((c) => `+${c}`).join(' ') }]
        : [],
    dirs: [dir],
    writes: [
      { file: join(dir, 'memory.max'), value: String(limits.memoryBytes) },
      // No swap: the memory limit is the build's whole footprint.
      { file: join(dir, 'memory.swap.max'), value: '0', optional: true },
      // An OOM kill takes the whole build, not one random process of it.
      { file: join(dir, 'memory.oom.group'), value: '1', optional: true },
      { file: join(dir, 'pids.max'), value: String(limits.pids) },
      ...(quota !== undefined && hasCpu ? [{ file: join(dir, 'cpu.max'), value: `${quota} ${CPU_PERIOD_US}` }] : []),
    ],
    procs: [join(dir, 'cgroup.procs')],
    events: {
      memory: { file: join(dir, 'memory.events'), key: 'oom_kill' },
      pids: { file: join(dir, 'pids.events'), key: 'max' },
    },
    killFile: join(dir, 'cgroup.kill'),
    unenforced: quota !== undefined && !hasCpu ? ['cpu (no cpu controller in cgroup v2)'] : [],
  };
}

function planV1(own: OwnCgroups['v1'], limits: ResourceLimits, name: string, quota: number | undefined): CgroupPlan {
  const mem = join(own.memory!, name);
  const pids = join(own.pids!, name);
  const cpu = quota !== undefined && own.cpu ? join(own.cpu, name) : undefined;
  return {
    version: 'v1',
    parentSetup: [],
    dirs: [mem, pids, ...(cpu ? [cpu] : [])],
    writes: [
      { file: join(mem, 'memory.limit_in_bytes'), value: String(limits.memoryBytes) },
      // memory+swap = memory: no swap (only present with swap accounting; must come after limit_in_bytes).
      { file: join(mem, 'memory.memsw.limit_in_bytes'), value: String(limits.memoryBytes), optional: true },
      { file: join(pids, 'pids.max'), value: String(limits.pids) },
      ...(cpu
        ? [
            { file: join(cpu, 'cpu.cfs_period_us'), value: String(CPU_PERIOD_US) },
            { file: join(cpu, 'cpu.cfs_quota_us'), value: String(quota) },
          ]
        : []),
    ],
    procs: [mem, pids, ...(cpu ? [cpu] : [])].map((d) => join(d, 'cgroup.procs')),
    events: {
      // oom_kill: a counter in memory.oom_control since Linux 4.13.
      memory: { file: join(mem, 'memory.oom_control'), key: 'oom_kill' },
      pids: { file: join(pids, 'pids.events'), key: 'max' },
    },
    unenforced: quota !== undefined && !own.cpu ? ['cpu (no cgroup v1 cpu hierarchy)'] : [],
  };
}

/** `key value` lines (memory.events, pids.events, memory.oom_control) → counters. */
export function parseEventCounts(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\d+)$/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * The sandbox's first program: a POSIX shell that writes its own pid into every cgroup.procs file, then execs
 * the real argv. Done by the process itself before it execs anything, so no build process can be forked
 * outside the cgroup (moving a pid after spawn() would race with its first fork). Exit 125 if a write fails:
 * the build never runs unconfined.
 */
export function cgroupEnterArgv(shell: string, procs: readonly string[], argv: readonly string[]): string[] {
  const script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';
  return [shell, '-c', script, 'airlock-cgroup', String(procs.length), ...procs, ...argv];
}
