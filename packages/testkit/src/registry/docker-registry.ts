/**
 * A real CNCF Distribution registry (Debian's `docker-registry` 2.8.2) on 127.0.0.1 for tests, plus the tool
 * probes the OCI tests skip on; optionally TLS (with a throwaway openssl PKI) and htpasswd Basic auth. Callers must
 * `stop()` every registry they start (afterAll).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { freePort } from '../tools/ports.js';
import { toolProblem } from '../tools/tools.js';

export const registryProblem = (): string | undefined => toolProblem('docker-registry', ['--version']);
export const skopeoProblem = (): string | undefined => toolProblem('skopeo', ['--version']);
export const umociProblem = (): string | undefined => toolProblem('umoci', ['--version']);

/** user `airlock`, password `airlock-pw`; bcrypt cost 4 so every request stays cheap. */
export const HTPASSWD_USER = 'airlock';
export const HTPASSWD_PASSWORD = 'airlock-pw';
/** The htpasswd file content for that user. */
export const HTPASSWD = 'airlock:$2b$04$jKLsbdc1tSD1ghWgVNMYLu9a/m5zm/4bdbMwNF3k1s6UbPeAZZLBS\n';

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

/**
 * Operator settings for a registry under load. `blobDescriptorCache`: `storage.cache.blobdescriptor: inmemory`
 * (blob metadata kept in memory instead of re-read from the filesystem). `env`: the process environment, e.g.
 * `GOGC=400`: on this VM most of docker-registry's CPU per request is the Go collector (the heap is tiny, so a
 * collection runs every few requests, and each returns memory with madvise, whose TLB shootdowns are expensive
 * under a hypervisor).
 */
export interface RegistryTuning {
  blobDescriptorCache?: boolean;
  env?: Record<string, string>;
}

/** TLS material for a registry (makePki makes one). */
export interface RegistryTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/**
 * Starts `docker-registry serve` on 127.0.0.1 with storage under `dir` (plain HTTP unless `tls`; `htpasswd` turns
 * on Basic auth). The port comes from binding port 0 in node; if the registry loses the race for it, start again.
 */
export async function startRegistry(
  dir: string,
  options: {
    tls?: RegistryTls;
    htpasswd?: boolean;
    /** Distribution token auth: clients need a bearer token from this realm (see startTokenServer). */
    token?: { realm: string; service: string; issuer: string; certFile: string };
    /** How an operator would run it for load (benchmarks); tests keep the defaults. */
    tuning?: RegistryTuning;
  } = {},
): Promise<RunningRegistry> {
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
  if (options.tuning?.blobDescriptorCache) lines.push('  cache: { blobdescriptor: inmemory }');
  if (options.htpasswd) {
    writeFileSync(join(dir, 'htpasswd'), HTPASSWD);
    lines.push('auth:', `  htpasswd: { realm: airlock-test, path: ${JSON.stringify(join(dir, 'htpasswd'))} }`);
  }
  if (options.token) {
    const t = options.token;
    lines.push(
      'auth:',
      `  token: { realm: ${JSON.stringify(t.realm)}, service: ${JSON.stringify(t.service)}, issuer: ${JSON.stringify(t.issuer)}, rootcertbundle: ${JSON.stringify(t.certFile)} }`,
    );
  }
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const http = [`http:`, `  addr: 127.0.0.1:${port}`, '  secret: airlock-test-secret'];
    if (options.tls)
      http.push(
        `  tls: { certificate: ${JSON.stringify(options.tls.certFile)}, key: ${JSON.stringify(options.tls.keyFile)} }`,
      );
    const config = join(dir, 'config.yml');
    writeFileSync(config, [...lines, ...http, ''].join('\n'));
    const child = spawn('docker-registry', ['serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...options.tuning?.env },
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const scheme = options.tls ? 'https' : 'http';
    const ca = options.tls ? readFileSync(options.tls.caFile) : undefined;
    const auth = options.htpasswd
      ? `Basic ${Buffer.from(`${HTPASSWD_USER}:${HTPASSWD_PASSWORD}`).toString('base64')}`
      : undefined;
    const ready = await waitReady(`${scheme}://127.0.0.1:${port}/v2/`, child, ca, auth, options.token ? 401 : 200);
    if (ready) {
      return {
        host: `127.0.0.1:${port}`,
        url: `${scheme}://127.0.0.1:${port}`,
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

/** Polls GET /v2/ until 200 (401 for a token-auth registry); false as soon as the process exits (or after a generous cap). */
async function waitReady(
  url: string,
  child: ChildProcess,
  ca: Buffer | undefined,
  auth: string | undefined,
  readyStatus = 200,
): Promise<boolean> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const u = new URL(url);
      const opts = {
        method: 'GET',
        agent: false as const,
        headers: auth ? { Authorization: auth } : {},
        ...(ca ? { ca } : {}),
      };
      const req = (u.protocol === 'https:' ? httpsRequest : request)(u, opts, (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
    if (status === readyStatus) return true;
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
