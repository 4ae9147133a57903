/** A real nginx serving one directory read-only on 127.0.0.1 (tlog-tiles: "any static server can serve them"). */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type PortOptions } from '../tools/ports.js';
import { which } from '../tools/tools.js';

export const nginxProblem = (): string | undefined => (which('nginx') ? undefined : 'nginx is not installed');

export interface StaticNginx {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
}

/** Waits until this nginx (not whatever else may hold the port) answers; a string says why it did not. */
async function waitReady(
  url: string,
  token: string,
  child: ChildProcess,
  stderr: () => string,
): Promise<string | void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) return `nginx exited with ${child.exitCode}: ${stderr()}`;
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.headers.get(INSTANCE_HEADER) === token) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return `nginx did not start: ${stderr()}`;
}

const INSTANCE_HEADER = 'x-airlock-instance';

/** Starts nginx serving `dir` under `urlPrefix` (e.g. `/api/v2/`) on an ephemeral loopback port. */
export async function startStaticNginx(
  dir: string,
  urlPrefix: string,
  options: PortOptions = {},
): Promise<StaticNginx> {
  for (let attempt = 1; ; attempt++) {
    const started = await startOnPort(dir, urlPrefix, await (options.port ?? freePort)());
    if (typeof started !== 'string') return started;
    // Another process took the port between our probe and nginx's bind: try another one.
    if (!/Address already in use/.test(started) || attempt === 3) throw new Error(started);
  }
}

async function startOnPort(dir: string, urlPrefix: string, port: number): Promise<StaticNginx | string> {
  const prefix = mkdtempSync(join(tmpdir(), 'airlock-nginx-'));
  mkdirSync(join(prefix, 'tmp'));
  const token = randomBytes(8).toString('hex');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${prefix}/tmp/${t};`);
  const conf = [
    // As root, workers would drop to `nobody`, who cannot enter private temp dirs: keep the caller's user.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${prefix}/nginx.pid;`,
    `error_log ${prefix}/error.log;`,
    'events { worker_connections 64; }',
    'http {',
    '  access_log off;',
    ...temp.map((t) => `  ${t}`),
    `  server { listen 127.0.0.1:${port}; add_header ${INSTANCE_HEADER} ${token} always;`,
    `    location ${urlPrefix} { alias ${dir}/; default_type application/octet-stream; } }`,
    '}',
  ].join('\n');
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  const child = spawn(
    which('nginx')!,
    ['-p', prefix, '-e', `${prefix}/error.log`, '-c', `${prefix}/nginx.conf`, '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const close = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(prefix, { recursive: true, force: true });
  };
  const problem = await waitReady(url, token, child, () => err);
  if (problem === undefined) return { url, close };
  await close();
  return problem;
}
