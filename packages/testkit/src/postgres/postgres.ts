/**
 * A real PostgreSQL 15 server for tests: initdb in a temp directory, `postgres` listening on 127.0.0.1 on a free
 * port (password auth over TCP, trust only on its private UNIX socket for the admin), one server per test file and
 * a fresh database + role per test. PostgreSQL refuses to run as root, so as root the server runs as the
 * `postgres` OS user (setpriv) with the temp directory chowned to it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, type PortOptions } from '../tools/ports.js';
import { which } from '../tools/tools.js';

const PG_BIN = process.env.AIRLOCK_PG_BIN ?? '/usr/lib/postgresql/15/bin';

interface RunAs {
  uid: number;
  gid: number;
  /** Prefix that runs a command as the server's OS user ([] when we are not root). */
  prefix: string[];
}

function runAs(): RunAs | string {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, prefix: [] };
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0 || gid.status !== 0)
    return 'running as root and there is no `postgres` OS user to run the server as';
  const setpriv = which('setpriv');
  if (!setpriv) return 'running as root and setpriv (util-linux) is not installed';
  return {
    uid: Number(id.stdout.trim()),
    gid: Number(gid.stdout.trim()),
    prefix: [setpriv, '--reuid=postgres', '--regid=postgres', '--init-groups', '--'],
  };
}

/** Why a PostgreSQL server cannot be started here, or undefined. */
export function postgresProblem(): string | undefined {
  for (const b of ['initdb', 'postgres', 'psql']) {
    const r = spawnSync(join(PG_BIN, b), ['--version'], { stdio: 'ignore' });
    if (r.status !== 0) return `${join(PG_BIN, b)} is not available (apt-get install postgresql-15)`;
  }
  const who = runAs();
  return typeof who === 'string' ? who : undefined;
}

export interface PgDatabase {
  /** postgres://user:password@127.0.0.1:port/name — a secret: never print it. */
  url: string;
  name: string;
  user: string;
  password: string;
}

export interface PostgresServer {
  host: string;
  port: number;
  /** A fresh database owned by a fresh role with a random password. */
  createDatabase(): Promise<PgDatabase>;
  /** Runs SQL as the admin (superuser) over the private socket; returns psql's unaligned output. */
  adminSql(sql: string, database?: string): string;
  stop(): Promise<void>;
}

type Psql = (sql: string, database?: string) => { ok: boolean; out: string };

interface Started {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
  psql: Psql;
}

/** Starts `postgres` on `port` and waits until it accepts connections; a string says why it did not. */
async function startOnPort(
  as: (bin: string, args: string[]) => [string, string[]],
  dir: string,
  sock: string,
  port: number,
): Promise<Started | string> {
  const data = join(dir, 'data');
  const args = ['-D', data, '-k', sock, '-h', '127.0.0.1', '-p', String(port), '-c', 'fsync=on'];
  args.push('-c', 'max_connections=200', '-c', 'log_min_messages=warning');
  const child: ChildProcess = spawn(...as('postgres', args), { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let dead = false;
  void exited.then(() => (dead = true));
  const psql: Psql = (sql, database = 'postgres') => {
    const conn = ['-h', sock, '-p', String(port), '-U', 'admin', '-d', database];
    const r = spawnSync(...as('psql', [...conn, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]), {
      encoding: 'utf8',
      cwd: dir,
    });
    return { ok: r.status === 0, out: r.status === 0 ? r.stdout : r.stderr || String(r.error) };
  };
  for (let i = 0; ; i++) {
    if (dead) return `postgres exited while starting:\n${log}`;
    if (psql('SELECT 1').ok) return { port, child, exited, psql };
    if (i > 300) {
      child.kill('SIGKILL');
      await exited;
      return `postgres did not accept connections within 30 s:\n${log}`;
    }
    await sleep(100);
  }
}

/** Starts a server; the caller must stop() it (which also removes its directory). */
export async function startPostgres(options: PortOptions = {}): Promise<PostgresServer> {
  const who = runAs();
  if (typeof who === 'string') throw new Error(`cannot start PostgreSQL: ${who}`);
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  chmodSync(dir, 0o700);
  chownSync(dir, who.uid, who.gid);
  chownSync(sock, who.uid, who.gid);
  const as = (bin: string, args: string[]): [string, string[]] => {
    const all = [...who.prefix, join(PG_BIN, bin), ...args];
    return [all[0]!, all.slice(1)];
  };
  const initArgs = ['-D', data, '-U', 'admin', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8'];
  const init = spawnSync(...as('initdb', [...initArgs, '--no-instructions']), { encoding: 'utf8', cwd: dir });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || String(init.error)}`);
  }
  let server: Started | undefined;
  for (let attempt = 1; server === undefined; attempt++) {
    const started = await startOnPort(as, dir, sock, await (options.port ?? freePort)());
    if (typeof started !== 'string') server = started;
    // Another process took the port between our probe and the server's bind: try another one.
    else if (!/could not bind|Address already in use/i.test(started) || attempt === 3) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(started);
    }
  }
  const { port, child, exited, psql } = server;
  let dead = false;
  void exited.then(() => (dead = true));
  let n = 0;
  return {
    host: '127.0.0.1',
    port,
    async createDatabase() {
      n++;
      const suffix = `${process.pid}_${n}_${randomBytes(3).toString('hex')}`;
      const name = `db_${suffix}`;
      const user = `u_${suffix}`;
      const password = randomBytes(18).toString('base64url');
      for (const sql of [`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`, `CREATE DATABASE ${name} OWNER ${user}`]) {
        const r = psql(sql);
        if (!r.ok) throw new Error(`creating the test database failed: ${r.out}`);
      }
      return { url: `postgres://${user}:${password}@127.0.0.1:${port}/${name}`, name, user, password };
    },
    adminSql(sql, database) {
      const r = psql(sql, database);
      if (!r.ok) throw new Error(`psql failed: ${r.out}`);
      return r.out;
    },
    async stop() {
      if (!dead) {
        child.kill('SIGINT'); // fast shutdown: roll back sessions, checkpoint, exit
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
