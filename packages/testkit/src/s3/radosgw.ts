/**
 * A real one-node Ceph cluster (ceph-mon + ceph-osd on bluestore in a sparse file + radosgw) as an S3 endpoint for
 * tests, after /work/shared/notes/ceph-s3.md: everything on 127.0.0.1, free ports, its own temp dir, no systemd.
 * The daemons run in the foreground as our children (`-f`), so `stop()` can wait for each one; an exit hook kills
 * whatever a crashed test process left. Bootstrap takes about 6 s: share one cluster per test file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../tools/ports.js';
import { which } from '../tools/tools.js';

const CEPH_TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool'];

/** Why a radosgw fixture cannot start here (a Ceph tool is missing), or undefined. */
export function radosgwProblem(): string | undefined {
  const missing = CEPH_TOOLS.filter((t) => !which(t));
  return missing.length === 0
    ? undefined
    : `Ceph is not installed (missing ${missing.join(', ')}; apt-get install ceph-mon ceph-osd radosgw ceph-common)`;
}

export interface RunningRadosgw {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The cluster's directory (config, keyrings, mon/osd data, logs); removed by `stop()`. */
  dir: string;
  /** Pids of mon, osd and rgw (for tests that must prove they are gone). */
  pids: number[];
  /** AWS_* variables pointing an S3 client (the airlock CLI) at this endpoint. */
  env(): Record<string, string>;
  /** Stops every daemon (rgw, osd, mon; SIGTERM, then SIGKILL after 10 s) and removes the directory. */
  stop(): Promise<void>;
}

export interface RadosgwOptions {
  /** Parent for the cluster's temp dir (default the OS temp dir; the admin sockets need a short path). */
  parent?: string;
  /** Size of the sparse bluestore file (default 10 GiB; only what is written takes disk). */
  blockBytes?: number;
  /**
   * Where the monitor's two ports come from (default: ports the kernel just handed out and released). Another
   * process may take such a port before the monitor binds it; tests use this to make that happen on purpose.
   */
  monPorts?: () => Promise<[number, number]>;
}

/** How many clusters `startRadosgw` builds before giving up when the monitor cannot bind its ports. */
const MON_ATTEMPTS = 3;

/** The monitor exited before answering: its port was taken between our probe and its bind. Retried on fresh ports. */
class MonitorDidNotStart extends Error {}

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

const live = new Set<Daemon>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test process that dies without stop() must not leave daemons or gigabytes of sparse files behind.
  process.once('exit', () => {
    for (const d of live) d.child.kill('SIGKILL');
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Starts a fresh cluster and an S3 user; callers must `stop()` it (afterAll). */
export async function startRadosgw(options: RadosgwOptions = {}): Promise<RunningRadosgw> {
  const problem = radosgwProblem();
  if (problem) throw new Error(problem);
  installExitHook();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCluster(options);
    } catch (err) {
      if (!(err instanceof MonitorDidNotStart) || attempt === MON_ATTEMPTS) throw err;
    }
  }
}

async function startCluster(options: RadosgwOptions): Promise<RunningRadosgw> {
  const dir = mkdtempSync(join(options.parent ?? tmpdir(), 'airlock-ceph-'));
  liveDirs.add(dir);
  const daemons: Daemon[] = [];
  const stop = async (): Promise<void> => {
    for (const d of [...daemons].reverse()) await stopDaemon(d);
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };
  try {
    const cluster = await bootstrap(dir, options, daemons);
    return { ...cluster, dir, pids: daemons.map((d) => d.child.pid!), stop, env: () => envOf(cluster) };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface ClusterAccess {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

function envOf(c: ClusterAccess): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: c.endpoint,
    AWS_REGION: c.region,
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
  };
}

async function bootstrap(dir: string, options: RadosgwOptions, daemons: Daemon[]): Promise<ClusterAccess> {
  const conf = join(dir, 'ceph.conf');
  const [monV2, monV1] = await (options.monPorts ?? twoFreePorts)();
  const fsid = randomUUID();
  for (const sub of ['run', 'log', 'crash', 'mon.a', 'osd.0', 'client.rgw.a']) mkdirSync(join(dir, sub));
  const writeConf = (rgwPort: number) =>
    writeFileSync(conf, cephConf(dir, fsid, monV2, monV1, rgwPort, options.blockBytes ?? 10 * 1024 ** 3));
  writeConf(0);
  const ceph = (args: string[], input?: string, connectTimeout = 30) =>
    run('ceph', ['-c', conf, '--connect-timeout', String(connectTimeout), ...args], input);

  run('ceph-authtool', [
    '--create-keyring',
    join(dir, 'mon.keyring'),
    '--gen-key',
    '-n',
    'mon.',
    '--cap',
    'mon',
    'allow *',
  ]);
  run('ceph-authtool', [
    ...['--create-keyring', join(dir, 'admin.keyring'), '--gen-key', '-n', 'client.admin'],
    ...['--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *', '--cap', 'mds', 'allow *'],
  ]);
  run('ceph-authtool', [join(dir, 'mon.keyring'), '--import-keyring', join(dir, 'admin.keyring')]);
  const monAddr = `[v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}]`;
  run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', monAddr, join(dir, 'monmap')]);
  run('ceph-mon', [
    '-c',
    conf,
    '--mkfs',
    '-i',
    'a',
    '--monmap',
    join(dir, 'monmap'),
    '--keyring',
    join(dir, 'mon.keyring'),
  ]);
  const mon = startDaemon('mon', 'ceph-mon', ['-c', conf, '-f', '-i', 'a']);
  daemons.push(mon);
  await monitorAnswers(mon, dir, () => ceph(['health', 'mute', 'MGR_DOWN', '--sticky'], undefined, 5)); // no mgr needed

  const osdUuid = randomUUID();
  const secret = run('ceph-authtool', ['--gen-print-key']).trim();
  ceph(['osd', 'new', osdUuid, '-i', '-'], JSON.stringify({ cephx_secret: secret }));
  run('ceph-authtool', ['--create-keyring', join(dir, 'osd.0', 'keyring'), '--name', 'osd.0', '--add-key', secret]);
  run('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
  daemons.push(startDaemon('osd', 'ceph-osd', ['-c', conf, '-f', '-i', '0']));
  await until('the OSD to come up', daemons, () => /"num_up_osds":1\b/.test(ceph(['osd', 'stat', '-f', 'json'])));

  ceph(
    ['auth', 'get-or-create', 'client.rgw.a', 'mon', 'allow rw', 'osd', 'allow rwx', 'mgr', 'allow rw'].concat([
      '-o',
      join(dir, 'client.rgw.a', 'keyring'),
    ]),
  );
  const endpoint = await startRgw(conf, daemons, writeConf);
  const access = {
    endpoint,
    region: 'us-east-1',
    accessKeyId: `AIRLOCK${randomBytes(6).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(24).toString('base64url'),
  };
  run('radosgw-admin', [
    ...['-c', conf, '-n', 'client.admin', 'user', 'create', '--uid=airlock-test', '--display-name=airlock-test'],
    ...[`--access-key=${access.accessKeyId}`, `--secret-key=${access.secretAccessKey}`],
  ]);
  return access;
}

async function twoFreePorts(): Promise<[number, number]> {
  return [await freePort(), await freePort()];
}

/**
 * Runs `first` (the first monitor command) until it succeeds, the monitor exits, or 120 s pass. A monitor that
 * exits did not get its ports (MonitorDidNotStart: the caller starts over on others). One that lives but never
 * answers is an error naming the end of its log. Short connect timeouts keep a dead monitor from costing 30 s.
 */
async function monitorAnswers(mon: Daemon, dir: string, first: () => void): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      first();
      return;
    } catch (err) {
      await sleep(100); // lets the exit event of a monitor that died during the command arrive
      if (exited(mon)) throw new MonitorDidNotStart(`ceph-mon exited before answering: ${logTail(dir, 'mon.a')}`);
      if (Date.now() > deadline)
        throw new Error(`ceph-mon did not answer in 120 s (${(err as Error).message}); ${logTail(dir, 'mon.a')}`);
    }
  }
}

function exited(d: Daemon): boolean {
  return d.child.exitCode !== null || d.child.signalCode !== null;
}

/** The last lines of a daemon's log, for errors a test run prints. */
function logTail(dir: string, name: string): string {
  try {
    const lines = readFileSync(join(dir, 'log', `ceph-${name}.log`), 'utf8')
      .trimEnd()
      .split('\n');
    return `its log ends: ${lines.slice(-5).join(' | ').slice(-1500)}`;
  } catch {
    return 'it wrote no log';
  }
}

/** radosgw on a free port; if another process took the port first, try another. */
async function startRgw(conf: string, daemons: Daemon[], writeConf: (port: number) => void): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    writeConf(port);
    const rgw = startDaemon('rgw', 'radosgw', ['-c', conf, '-f', '-n', 'client.rgw.a']);
    daemons.push(rgw);
    const endpoint = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 1200; i++) {
      if (exited(rgw)) break;
      if ((await httpStatus(endpoint)) === 200) return endpoint;
      await sleep(50);
    }
    daemons.pop();
    await stopDaemon(rgw);
  }
  throw new Error('radosgw did not answer on any port it was given (see its log in the cluster dir)');
}

function startDaemon(name: string, cmd: string, args: string[]): Daemon {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const d: Daemon = {
    name,
    child,
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
  };
  child.once('exit', (code, signal) => {
    live.delete(d);
    if (code !== 0 && signal === null && stderr) console.warn(`ceph ${name} exited ${code}: ${stderr.trim()}`);
  });
  live.add(d);
  return d;
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (exited(d)) return;
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
  await d.exited;
  clearTimeout(timer);
}

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...(input !== undefined ? { input } : {}) });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.slice(0, 4).join(' ')}… failed: ${(r.stderr || String(r.error)).trim().slice(-2000)}`,
    );
  return r.stdout;
}

async function until(what: string, daemons: Daemon[], check: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const dead = daemons.find(exited);
    if (dead) throw new Error(`ceph ${dead.name} exited while waiting for ${what}`);
    if (check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The notes' configuration: size-1 pools, fast Paxos, tcp_nodelay on beast, bluestore on a sparse file. */
function cephConf(
  dir: string,
  fsid: string,
  monV2: number,
  monV1: number,
  rgwPort: number,
  blockBytes: number,
): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = ${dir}/run
admin socket = ${dir}/run/$cluster-$name.asok
pid file = ${dir}/run/$cluster-$name.pid
log file = ${dir}/log/$cluster-$name.log
crash dir = ${dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1

[mon]
ms bind retry delay = 0
mon data = ${dir}/$name
keyring = ${dir}/$name/keyring
auth allow insecure global id reclaim = false
paxos propose interval = 0.1
paxos min wait = 0.01

[osd]
osd data = ${dir}/$name
keyring = ${dir}/$name/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${blockBytes}
bluestore fsck on mount = false
bluestore fsck on mkfs = false
osd memory target = 1073741824

[client.admin]
keyring = ${dir}/admin.keyring

[client.rgw.a]
keyring = ${dir}/$name/keyring
rgw data = ${dir}/$name
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
`;
}
