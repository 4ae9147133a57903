/** Carries out a `CgroupPlan` on the cgroup filesystem: create, read the events, kill leftovers, remove. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import {
  CGROUP_NAME,
  cgroupPlan,
  chooseLayout,
  ownCgroups,
  parseEventCounts,
  type CgroupLayout,
  type CgroupPlan,
  type OwnCgroups,
  type V2State,
} from './cgroup-paths.js';
import type { ResourceLimits } from './limits.js';

export interface CgroupHost {
  /** Contents of /proc/self/mountinfo and /proc/self/cgroup (tests pass a fake tree's). */
  mountinfo: string;
  procCgroup: string;
  cgroupRoot: string;
}

export function readCgroupHost(cgroupRoot: string): CgroupHost {
  return {
    mountinfo: readFileSync('/proc/self/mountinfo', 'utf8'),
    procCgroup: readFileSync('/proc/self/cgroup', 'utf8'),
    cgroupRoot,
  };
}

function words(path: string): string[] | undefined {
  try {
    return readFileSync(path, 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The backend this host offers, or why there is none. */
export function detectLayout(host: CgroupHost): CgroupLayout | string {
  const own = ownCgroups(host.mountinfo, host.procCgroup, host.cgroupRoot);
  let state: V2State | undefined;
  if (own.v2) {
    const controllers = words(join(own.v2, 'cgroup.controllers'));
    const subtreeControl = words(join(own.v2, 'cgroup.subtree_control'));
    if (controllers && subtreeControl) state = { controllers, subtreeControl };
  }
  return chooseLayout(own, state);
}

/** The inode of our pid namespace (`pid:[4026531836]`), '0' when /proc does not say. */
export function pidNamespace(): string {
  try {
    return /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    return '0';
  }
}

export function newCgroupName(): string {
  return `airlock-${pidNamespace()}-${process.pid}-${randomBytes(8).toString('hex')}`;
}

/** One build's cgroup, created from a plan. */
export class BuildCgroup {
  private constructor(readonly plan: CgroupPlan) {}

  /** Creates the child cgroup with its limits; on any failure removes what it made and throws. */
  static create(layout: CgroupLayout, limits: ResourceLimits, name = newCgroupName()): BuildCgroup {
    const plan = cgroupPlan(layout, limits, name);
    for (const w of plan.parentSetup) {
      try {
        writeFileSync(w.file, w.value);
      } catch (err) {
        // cgroup v2's no-internal-process rule: a cgroup holding processes cannot hand controllers to children.
        const busy = (err as NodeJS.ErrnoException).code === 'EBUSY';
        throw new Error(
          `cannot enable '${w.value}' in ${w.file}: ${busy ? 'the runner shares its cgroup with processes; start it in a delegated cgroup of its own (e.g. systemd-run -p Delegate=yes)' : (err as Error).message}`,
          { cause: err },
        );
      }
    }
    const made: string[] = [];
    try {
      for (const d of plan.dirs) {
        mkdirSync(d);
        made.push(d);
      }
      for (const w of plan.writes) {
        try {
          writeFileSync(w.file, w.value);
        } catch (err) {
          if (!(w.optional && (err as NodeJS.ErrnoException).code === 'ENOENT')) throw err;
        }
      }
    } catch (err) {
      for (const d of made.reverse()) tryRmdir(d);
      throw err;
    }
    return new BuildCgroup(plan);
  }

  get procsFiles(): string[] {
    return this.plan.procs;
  }

  /** Which limits the kernel enforced on this cgroup (a counter above zero). */
  hits(): { memory: number; pids: number } {
    const count = (e: { file: string; key: string }) => {
      try {
        return parseEventCounts(readFileSync(e.file, 'utf8'))[e.key] ?? 0;
      } catch {
        return 0;
      }
    };
    return { memory: count(this.plan.events.memory), pids: count(this.plan.events.pids) };
  }

  /** Kills whatever is left in the cgroup and removes its directories. */
  async remove(): Promise<void> {
    await killAndRemove(this.plan.dirs, this.plan.killFile);
  }
}

function pidsIn(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => /^\d+$/.test(l))
      .map(Number);
  } catch {
    return [];
  }
}

function tryRmdir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * SIGKILL every process in `dirs` (cgroup.kill on v2 when present, else pid by pid, repeated: a process may
 * fork while we read the list) until rmdir succeeds; gives up after ~5 s (the directory then stays, and the
 * next start of a runner removes it).
 */
async function killAndRemove(dirs: readonly string[], killFile?: string): Promise<void> {
  if (killFile) {
    try {
      writeFileSync(killFile, '1');
    } catch {
      // Linux < 5.14: no cgroup.kill; the loop below kills by pid
    }
  }
  let pending = [...dirs].reverse();
  for (let i = 0; i < 250 && pending.length > 0; i++) {
    for (const d of pending)
      for (const pid of pidsIn(d)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    pending = pending.filter((d) => !tryRmdir(d));
    if (pending.length > 0) await sleep(20);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Child cgroups left by runners that died (crash, SIGKILL): `airlock-<pidns>-<pid>-…` under our own cgroups
 * whose runner pid (in our pid namespace) no longer exists. Their processes are killed and the directories removed. Returns how many.
 */
export async function removeStaleCgroups(own: OwnCgroups): Promise<number> {
  const parents = [own.v2, own.v1.memory, own.v1.pids, own.v1.cpu].filter((d): d is string => d !== undefined);
  const ns = pidNamespace();
  let removed = 0;
  for (const parent of parents) {
    let names: string[];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = CGROUP_NAME.exec(n);
      // Only our pid namespace's runners: another namespace's pid says nothing here.
      if (!m || m[1] !== ns || Number(m[2]) === process.pid || alive(Number(m[2]))) continue;
      const dir = join(parent, n);
      await killAndRemove([dir], parent === own.v2 ? join(dir, 'cgroup.kill') : undefined);
      removed++;
    }
  }
  return removed;
}
