/** A real nginx serving one directory read-only on 127.0.0.1 (tlog-tiles: "any static server can serve them"). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../tools/tools.js';

export const nginxProblem = (): string | undefined => (which('nginx') ? undefined : 'nginx is not installed');

export interface StaticNginx {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr()}`);
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nginx did not start: ${stderr()}`);
}

/** Starts nginx serving `dir` under `urlPrefix` (e.g. `/api/v2/`) on an ephemeral loopback port. */
export async function startStaticNginx(dir: string, urlPrefix: string): Promise<StaticNginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'airlock-nginx-'));
  mkdirSync(join(prefix, 'tmp'));
  const port = await freePort();
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
    `  server { listen 127.0.0.1:${port}; location ${urlPrefix} { alias ${dir}/; default_type application/octet-stream; } }`,
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
  try {
    await waitReady(url, child, () => err);
  } catch (e) {
    await close();
    throw e;
  }
  return { url, close };
}
