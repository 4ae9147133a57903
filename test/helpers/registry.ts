/**
 * A real CNCF Distribution registry (Debian's `docker-registry` 2.8.2) on 127.0.0.1 for tests, plus the tool
 * probes the OCI tests skip on. Copied from packages/oci/test/helpers.ts (tests do not import another package's
 * test helpers). Callers must `stop()` every registry they start (afterAll).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';

/** Why `cmd` cannot be used, or undefined. */
export function toolProblem(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0 ? undefined : `${cmd} is not available (${r.error ? r.error.message : `exit ${r.status}`})`;
}

export const registryProblem = (): string | undefined => toolProblem('docker-registry', ['--version']);
export const skopeoProblem = (): string | undefined => toolProblem('skopeo', ['--version']);

/** user `airlock`, password `airlock-pw`; bcrypt cost 4 so every request stays cheap. */
export const HTPASSWD_USER = 'airlock';
export const HTPASSWD_PASSWORD = 'airlock-pw';
const HTPASSWD = 'airlock:$2b$04$jKLsbdc1tSD1ghWgVNMYLu9a/m5zm/4bdbMwNF3k1s6UbPeAZZLBS\n';

export interface RunningRegistry {
  /** `127.0.0.1:<port>`, as in image references. */
  host: string;
  url: string;
  port: number;
  dataDir: string;
  /** The registry process (for tests that must prove it is gone). */
  pid: number;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (bind 127.0.0.1:0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `docker-registry serve` on 127.0.0.1 with storage under `dir` (plain HTTP; `htpasswd` turns on Basic
 * auth). The port comes from binding port 0 in node; if the registry loses the race for it, start again.
 */
export async function startRegistry(dir: string, options: { htpasswd?: boolean } = {}): Promise<RunningRegistry> {
  mkdirSync(dir, { recursive: true });
  const dataDir = join(dir, 'registry-data');
  const lines = [
    'version: 0.1',
    'log: { level: warn, accesslog: { disabled: true } }',
    'storage:',
    `  filesystem: { rootdirectory: ${JSON.stringify(dataDir)} }`,
    '  delete: { enabled: true }',
    '  maintenance: { uploadpurging: { enabled: false } }',
  ];
  if (options.htpasswd) {
    writeFileSync(join(dir, 'htpasswd'), HTPASSWD);
    lines.push('auth:', `  htpasswd: { realm: airlock-test, path: ${JSON.stringify(join(dir, 'htpasswd'))} }`);
  }
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      [...lines, 'http:', `  addr: 127.0.0.1:${port}`, '  secret: airlock-test-secret', ''].join('\n'),
    );
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const auth = options.htpasswd
      ? `Basic ${Buffer.from(`${HTPASSWD_USER}:${HTPASSWD_PASSWORD}`).toString('base64')}`
      : undefined;
    if (await waitReady(`http://127.0.0.1:${port}/v2/`, child, auth)) {
      return {
        host: `127.0.0.1:${port}`,
        url: `http://127.0.0.1:${port}`,
        port,
        dataDir,
        pid: child.pid!,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            await exited;
          }
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    lastError = stderr;
    if (!/address already in use/.test(stderr)) break;
  }
  throw new Error(`docker-registry did not start: ${lastError.trim().slice(-2000)}`);
}

/** Polls GET /v2/ until 200; false as soon as the process exits (or after a generous cap). */
async function waitReady(url: string, child: ChildProcess, auth: string | undefined): Promise<boolean> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const req = request(
        new URL(url),
        { method: 'GET', agent: false, headers: auth ? { Authorization: auth } : {} },
        (res: IncomingMessage) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', () => resolve(0));
      req.end();
    });
    if (status === 200) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** GET a JSON document from the registry (tags/list and the like). */
export async function registryJson<T>(
  url: string,
  auth?: { username: string; password: string },
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (auth) headers.Authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
