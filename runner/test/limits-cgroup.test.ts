/**
 * The security-critical builders of the resource limits, without a sandbox: size parsing, where the runner's own
 * cgroups are (mountinfo + /proc/self/cgroup), which directories and values a build's cgroup gets on v1 and v2,
 * the first program that enters the cgroup, and the disk walk. The v1/v2 planners run against a fake
 * /sys/fs/cgroup tree in a temp dir (v2 has no controllers on the test machines); everything else is real.
 */
import { spawnSync } from 'node:child_process';
import {
  linkSync,
  mkdirSync,
  symlinkSync,
  openSync,
  closeSync,
  ftruncateSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BuildCgroup, detectLayout } from '../src/limits/cgroup.js';
import {
  cgroupDir,
  cgroupEnterArgv,
  cgroupPlan,
  ownCgroups,
  parseEventCounts,
  parseMountinfo,
  parseProcCgroup,
  type CgroupLayout,
} from '../src/limits/cgroup-paths.js';
import { diskUsage } from '../src/limits/disk.js';
import { rlimitArgv } from '../src/limits/rlimit.js';
import { DEFAULT_LIMITS, parseCores, parseCount, parseSize, resolveLimits } from '../src/limits/limits.js';
import { rmrf, tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const dir = tempDir('limits-unit');
afterAll(() => rmrf(dir));

describe('limit values', () => {
  it('parses sizes with binary units', () => {
    expect(parseSize('8G', 'x')).toBe(8 * GiB);
    expect(parseSize('512M', 'x')).toBe(512 * MiB);
    expect(parseSize('64MiB', 'x')).toBe(64 * MiB);
    expect(parseSize('1.5g', 'x')).toBe(1.5 * GiB);
    expect(parseSize('20G', 'x')).toBe(20 * GiB);
    expect(parseSize('4096', 'x')).toBe(4096);
    expect(parseSize('1T', 'x')).toBe(1024 * GiB);
  });

  it('refuses what is not a positive size, naming the option', () => {
    for (const bad of ['', '8X', '-1G', '0', '0M', 'G', '1e9', '8 G B', '9999999999T'])
      expect(() => parseSize(bad, '--memory-limit')).toThrow(/--memory-limit/);
    expect(() => parseCount('0', '--pids-limit')).toThrow(/--pids-limit must be a positive/);
    expect(() => parseCount('12abc', '--pids-limit')).toThrow(/not a number/);
    expect(() => parseCores('0.001', '--cpu-limit')).toThrow(/at least 0.01 cores/);
    expect(() => parseCores('two', '--cpu-limit')).toThrow(/not a number of cores/);
    expect(parseCores('0.5', 'x')).toBe(0.5);
  });

  it('defaults to 8 GiB, 4096 pids, all cores, 20 GiB; a CPU limit of all cores or more is no quota', () => {
    expect(resolveLimits(undefined)).toEqual({ memoryBytes: 8 * GiB, pids: 4096, diskBytes: 20 * GiB });
    expect(DEFAULT_LIMITS.memoryBytes).toBe(8 * GiB);
    expect(resolveLimits({ cpuCores: availableParallelism() }).cpuCores).toBeUndefined();
    expect(resolveLimits({ cpuCores: 0.5 }).cpuCores).toBe(0.5);
    expect(() => resolveLimits({ memoryBytes: 1.5 })).toThrow(/limits\.memoryBytes/);
    expect(() => resolveLimits({ pids: -4 })).toThrow(/limits\.pids/);
  });
});

// This machine's cgroup mounts (cgroup v1 controllers + an empty cgroup2), as /proc/self/mountinfo lists them.
const MOUNTINFO = (root: string) =>
  [
    `30 22 0:27 / ${root} rw,relatime - tmpfs tmpfs rw,mode=755`,
    `31 30 0:28 / ${root}/cpu rw,relatime - cgroup cgroup rw,cpu`,
    `32 30 0:29 / ${root}/cpuacct rw,relatime - cgroup cgroup rw,cpuacct`,
    `34 30 0:31 / ${root}/memory rw,relatime - cgroup cgroup rw,memory`,
    `38 30 0:35 / ${root}/pids rw,relatime - cgroup cgroup rw,pids`,
    `39 30 0:36 / ${root}/systemd rw,relatime - cgroup cgroup rw,name=systemd`,
    `40 30 0:37 / ${root}/unified rw,relatime - cgroup2 cgroup2 rw`,
    '41 22 0:40 / /tmp\\040dir rw - tmpfs tmpfs rw',
  ].join('\n');
const PROC_CGROUP = [
  '9:name=systemd:/',
  '8:pids:/',
  '4:memory:/process_api/72fc186e',
  '1:cpu:/',
  '0::/runner.service',
].join('\n');

describe('where the runner’s cgroups are', () => {
  it('parses mountinfo (controllers from the super options, escaped paths) and /proc/self/cgroup', () => {
    const mounts = parseMountinfo(MOUNTINFO('/sys/fs/cgroup'));
    expect(mounts.map((m) => [m.fstype, m.mountPoint, m.controllers.join(',')])).toEqual([
      ['cgroup', '/sys/fs/cgroup/cpu', 'cpu'],
      ['cgroup', '/sys/fs/cgroup/cpuacct', 'cpuacct'],
      ['cgroup', '/sys/fs/cgroup/memory', 'memory'],
      ['cgroup', '/sys/fs/cgroup/pids', 'pids'],
      ['cgroup', '/sys/fs/cgroup/systemd', ''],
      ['cgroup2', '/sys/fs/cgroup/unified', ''],
    ]);
    const co = parseMountinfo('31 30 0:28 / /a\\040b rw - cgroup cgroup rw,cpu,cpuacct');
    expect(co[0]).toMatchObject({ mountPoint: '/a b', controllers: ['cpu', 'cpuacct'] });
    const self = parseProcCgroup(PROC_CGROUP);
    expect(self.unified).toBe('/runner.service');
    expect(self.v1.get('memory')).toBe('/process_api/72fc186e');
    expect(self.v1.get('pids')).toBe('/');
  });

  it('maps cgroup paths into a mount, respecting its root, and refuses dot components', () => {
    const m = { fstype: 'cgroup2' as const, mountPoint: '/sys/fs/cgroup', root: '/ns', controllers: [] };
    expect(cgroupDir(m, '/ns/a')).toBe('/sys/fs/cgroup/a');
    expect(cgroupDir(m, '/ns')).toBe('/sys/fs/cgroup');
    expect(cgroupDir(m, '/other/a')).toBeUndefined();
    expect(cgroupDir(m, '/nsx')).toBeUndefined();
    expect(cgroupDir(m, '/ns/../etc')).toBeUndefined();
  });

  it('finds its own v1 and v2 directories, only among mounts under the configured root', () => {
    expect(ownCgroups(MOUNTINFO('/sys/fs/cgroup'), PROC_CGROUP, '/sys/fs/cgroup')).toEqual({
      v2: '/sys/fs/cgroup/unified/runner.service',
      v1: {
        memory: '/sys/fs/cgroup/memory/process_api/72fc186e',
        pids: '/sys/fs/cgroup/pids',
        cpu: '/sys/fs/cgroup/cpu',
      },
    });
    expect(ownCgroups(MOUNTINFO('/sys/fs/cgroup'), PROC_CGROUP, '/nonexistent')).toEqual({ v1: {} });
    expect(ownCgroups(MOUNTINFO('/sys/fs/cgroup'), PROC_CGROUP, '/sys/fs/cgroupX')).toEqual({ v1: {} });
  });
});

/** A fake /sys/fs/cgroup under `root`: the v1 directories of PROC_CGROUP and a v2 one with `controllers`. */
function fakeTree(name: string, controllers: string, subtree = ''): { root: string; layout: CgroupLayout | string } {
  const root = join(dir, name, 'sys/fs/cgroup');
  for (const d of ['memory/process_api/72fc186e', 'pids', 'cpu', 'unified/runner.service'])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'unified/runner.service/cgroup.controllers'), `${controllers}\n`);
  writeFileSync(join(root, 'unified/runner.service/cgroup.subtree_control'), `${subtree}\n`);
  const layout = detectLayout({ mountinfo: MOUNTINFO(root), procCgroup: PROC_CGROUP, cgroupRoot: root });
  return { root, layout };
}

const read = (p: string) => readFileSync(p, 'utf8');

describe('cgroup v2 plan (fake tree)', () => {
  const limits = { memoryBytes: 64 * MiB, pids: 50, cpuCores: 1.5, diskBytes: GiB };

  it('delegates the controllers, creates the child and writes memory.max, pids.max, cpu.max', () => {
    const { root, layout } = fakeTree('v2', 'cpuset cpu io memory hugetlb pids');
    expect(layout).toMatchObject({ version: 'v2', own: join(root, 'unified/runner.service') });
    const cg = BuildCgroup.create(layout as CgroupLayout, limits, 'airlock-4026531836-123-0123456789abcdef');
    const own = join(root, 'unified/runner.service');
    const child = join(own, 'airlock-4026531836-123-0123456789abcdef');
    expect(read(join(own, 'cgroup.subtree_control'))).toBe('+memory +pids +cpu');
    expect(read(join(child, 'memory.max'))).toBe(String(64 * MiB));
    expect(read(join(child, 'memory.swap.max'))).toBe('0');
    expect(read(join(child, 'memory.oom.group'))).toBe('1');
    expect(read(join(child, 'pids.max'))).toBe('50');
    expect(read(join(child, 'cpu.max'))).toBe('150000 100000');
    expect(cg.procsFiles).toEqual([join(child, 'cgroup.procs')]);
    expect(cg.plan.killFile).toBe(join(child, 'cgroup.kill'));
    expect(cg.hits()).toEqual({ memory: 0, pids: 0 });
    // what the kernel reports after a build hit both limits
    writeFileSync(join(child, 'memory.events'), 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 1\n');
    writeFileSync(join(child, 'pids.events'), 'max 7\n');
    expect(cg.hits()).toEqual({ memory: 2, pids: 7 });
  });

  it('does not re-enable delegated controllers, and names a cpu limit it cannot enforce', () => {
    const { layout } = fakeTree('v2-nocpu', 'memory pids', 'memory pids');
    const plan = cgroupPlan(layout as CgroupLayout, limits, 'airlock-4026531836-1-00000000');
    expect(plan.parentSetup).toEqual([]);
    expect(plan.writes.map((w) => w.file.split('/').pop())).toEqual([
      'memory.max',
      'memory.swap.max',
      'memory.oom.group',
      'pids.max',
    ]);
    expect(plan.unenforced).toEqual(['cpu (no cpu controller in cgroup v2)']);
  });

  it('falls back to v1 when v2 offers no memory/pids controllers (this machine), and explains when neither works', () => {
    expect(fakeTree('v2-empty', 'hugetlb').layout).toMatchObject({ version: 'v1' });
    const layout = detectLayout({ mountinfo: MOUNTINFO('/x'), procCgroup: '0::/\n', cgroupRoot: '/nonexistent' });
    expect(layout).toBe('no cgroup v2 hierarchy; no cgroup v1 memory and pids hierarchies');
  });

  it('refuses a cgroup name that is not airlock-<pidns>-<pid>-<hex> (no path tricks)', () => {
    const { layout } = fakeTree('v2-name', 'memory pids');
    for (const bad of ['../escape', 'airlock-1-00000000', 'airlock-1-2-00000000/../x'])
      expect(() => cgroupPlan(layout as CgroupLayout, limits, bad)).toThrow(/invalid cgroup name/);
  });
});

describe('cgroup v1 plan (fake tree)', () => {
  it('creates memory, pids and cpu children with limit_in_bytes, memsw, pids.max and the CFS quota', () => {
    const { root, layout } = fakeTree('v1', 'hugetlb');
    const limits = { memoryBytes: 256 * MiB, pids: 100, cpuCores: 0.5, diskBytes: GiB };
    const cg = BuildCgroup.create(layout as CgroupLayout, limits, 'airlock-4026531836-9-abcdef0123456789');
    const mem = join(root, 'memory/process_api/72fc186e/airlock-4026531836-9-abcdef0123456789');
    const pids = join(root, 'pids/airlock-4026531836-9-abcdef0123456789');
    const cpu = join(root, 'cpu/airlock-4026531836-9-abcdef0123456789');
    expect(read(join(mem, 'memory.limit_in_bytes'))).toBe(String(256 * MiB));
    expect(read(join(mem, 'memory.memsw.limit_in_bytes'))).toBe(String(256 * MiB));
    expect(read(join(pids, 'pids.max'))).toBe('100');
    expect(read(join(cpu, 'cpu.cfs_period_us'))).toBe('100000');
    expect(read(join(cpu, 'cpu.cfs_quota_us'))).toBe('50000');
    expect(cg.procsFiles).toEqual([mem, pids, cpu].map((d) => join(d, 'cgroup.procs')));
    expect(cg.plan.killFile).toBeUndefined();
    writeFileSync(join(mem, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    writeFileSync(join(pids, 'pids.events'), 'max 0\n');
    expect(cg.hits()).toEqual({ memory: 1, pids: 0 });
  });

  it('makes no cpu cgroup without a CPU limit', () => {
    const { layout } = fakeTree('v1-nocpu', '');
    const plan = cgroupPlan(layout as CgroupLayout, { ...DEFAULT_LIMITS }, 'airlock-4026531836-9-00000000');
    expect(plan.dirs.map((d) => d.split('/').slice(-2, -1)[0])).toEqual(['72fc186e', 'pids']);
    expect(plan.procs).toHaveLength(2);
  });

  it('removes what it created when a limit cannot be written', () => {
    const { root, layout } = fakeTree('v1-fail', '');
    // a directory where the limit file should be: the write fails, as on a read-only cgroupfs
    const name = 'airlock-4026531836-9-1111111111111111';
    const own = join(root, 'pids');
    expect(() =>
      BuildCgroup.create(
        {
          version: 'v1',
          own: { ...(layout as { own: object }).own, pids: join(own, 'missing-parent') },
        } as CgroupLayout,
        { ...DEFAULT_LIMITS },
        name,
      ),
    ).toThrow(/ENOENT/);
    expect(spawnSync('ls', [join(root, 'memory/process_api/72fc186e')]).stdout.toString()).not.toContain(name);
  });

  it('parses event counters', () => {
    expect(parseEventCounts('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n')).toEqual({
      oom_kill_disable: 0,
      under_oom: 0,
      oom_kill: 3,
    });
  });
});

describe('entering the cgroup', () => {
  it('the first program writes its own pid into every procs file, then execs the build', () => {
    const a = join(dir, 'procs-a');
    const b = join(dir, 'procs-b');
    const argv = cgroupEnterArgv('/bin/sh', [a, b], ['/bin/sh', '-c', 'echo "build pid $$"', 'x']);
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const pid = read(a).trim();
    expect(pid).toMatch(/^\d+$/);
    expect(read(b).trim()).toBe(pid);
    // exec, not fork: the build is the very process that entered the cgroup
    expect(r.stdout).toBe(`build pid ${pid}\n`);
  });

  it('never runs the build when a procs file cannot be written (exit 125)', () => {
    const marker = join(dir, 'ran');
    const argv = cgroupEnterArgv('/bin/sh', [join(dir, 'no/such/dir/cgroup.procs')], ['touch', marker]);
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    expect(r.status).toBe(125);
    expect(() => read(marker)).toThrow(/ENOENT/);
  });
});

describe('rlimit fallback', () => {
  it('prlimit sets RLIMIT_DATA and RLIMIT_NPROC (soft and hard) on itself, then execs the sandbox argv', () => {
    const limits = { memoryBytes: 256 * MiB, pids: 77, diskBytes: GiB };
    expect(rlimitArgv('/usr/bin/prlimit', limits, ['strace', '-f'])).toEqual([
      '/usr/bin/prlimit',
      `--data=${256 * MiB}`,
      '--nproc=77',
      '--',
      'strace',
      '-f',
    ]);
  });
});

describe('disk usage walk', () => {
  it('counts allocated blocks: hard links once, sparse files by what they occupy, and stops past the limit', async () => {
    const d = join(dir, 'disk');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'sub', 'one'), Buffer.alloc(4 * MiB, 1));
    for (let i = 0; i < 5; i++) linkSync(join(d, 'sub', 'one'), join(d, `link-${i}`));
    const fd = openSync(join(d, 'sparse'), 'w');
    ftruncateSync(fd, 10 * GiB);
    closeSync(fd);
    symlinkSync('/', join(d, 'host-root')); // counted as a link, never followed
    const u = await diskUsage([d]);
    expect(u.exceeded).toBe(false);
    expect(u.bytes).toBeGreaterThanOrEqual(4 * MiB);
    expect(u.bytes).toBeLessThan(5 * MiB);
    const over = await diskUsage([d], 2 * MiB);
    expect(over.exceeded).toBe(true);
  });
});
