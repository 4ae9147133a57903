import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function tempDir(prefix = 'airlock-oci-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Every file under `dir` (relative path → bytes), for byte-for-byte layout comparisons. */
export function treeContents(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/**
 * Why `cmd` cannot be used, or undefined. Tests skip with that reason printed, unless AIRLOCK_REQUIRE_TOOLS=1,
 * where a missing tool is a failure (copied from runner/test/helpers.ts, not imported from it).
 */
export function toolProblem(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0 ? undefined : `${cmd} is not available (${r.error ? r.error.message : `exit ${r.status}`})`;
}

export function toolsAvailable(what: string, problems: (string | undefined)[]): boolean {
  const missing = problems.filter((p): p is string => p !== undefined);
  if (missing.length === 0) return true;
  if (process.env.AIRLOCK_REQUIRE_TOOLS === '1')
    throw new Error(`${what}: ${missing.join('; ')} (required: AIRLOCK_REQUIRE_TOOLS=1)`);
  console.warn(`skipping ${what}: ${missing.join('; ')}`);
  return false;
}

export const registryProblem = (): string | undefined => toolProblem('docker-registry', ['--version']);
export const skopeoProblem = (): string | undefined => toolProblem('skopeo', ['--version']);
export const umociProblem = (): string | undefined => toolProblem('umoci', ['--version']);
export const opensslProblem = (): string | undefined => toolProblem('openssl', ['version']);

export interface ChildResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a tool asynchronously (the registry client under test shares this event loop). */
export function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr }));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A throwaway CA and a server certificate for 127.0.0.1 (P-256), made with the openssl CLI. */
export function makePki(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=airlock oci test CA',
  ]);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  openssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '1',
    '-extfile',
    'server.ext',
  ]);
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/** user `airlock`, password `airlock-pw`; bcrypt cost 4 so every request stays cheap. */
export const HTPASSWD = 'airlock:$2b$04$jKLsbdc1tSD1ghWgVNMYLu9a/m5zm/4bdbMwNF3k1s6UbPeAZZLBS\n';

export interface RunningRegistry {
  /** `127.0.0.1:<port>`, as in image references. */
  host: string;
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts a real CNCF Distribution (`docker-registry serve`) on 127.0.0.1 with storage under `dir`. The port comes
 * from binding port 0 in node; if the registry loses the race for it, start again on another one.
 */
export async function startRegistry(
  dir: string,
  options: { tls?: { certFile: string; keyFile: string; caFile: string }; htpasswd?: boolean } = {},
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
  if (options.htpasswd) {
    writeFileSync(join(dir, 'htpasswd'), HTPASSWD);
    lines.push('auth:', `  htpasswd: { realm: airlock-test, path: ${JSON.stringify(join(dir, 'htpasswd'))} }`);
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
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const scheme = options.tls ? 'https' : 'http';
    const ca = options.tls ? readFileSync(options.tls.caFile) : undefined;
    const auth = options.htpasswd ? `Basic ${Buffer.from('airlock:airlock-pw').toString('base64')}` : undefined;
    const ready = await waitReady(`${scheme}://127.0.0.1:${port}/v2/`, child, ca, auth);
    if (ready) {
      return {
        host: `127.0.0.1:${port}`,
        url: `${scheme}://127.0.0.1:${port}`,
        port,
        dataDir,
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
async function waitReady(
  url: string,
  child: ChildProcess,
  ca: Buffer | undefined,
  auth: string | undefined,
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
    if (status === 200) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export interface CorruptingProxy {
  url: string;
  /** Requests whose response body was altered. */
  corrupted: string[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of the registry that flips one byte of every response body matching
 * `shouldCorrupt` (method + path), leaving the headers — including Docker-Content-Digest — untouched (or, with
 * `forgeDigestHeader`, rewriting that header to match): what a tampering middlebox or rotten storage would produce.
 */
export function startCorruptingProxy(
  targetPort: number,
  shouldCorrupt: (method: string, path: string) => boolean,
  options: { forgeDigestHeader?: boolean } = {},
): Promise<CorruptingProxy> {
  const corrupted: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = { ...req.headers, host: `127.0.0.1:${targetPort}` };
      const up = request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers, agent: false },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('end', () => {
            let out = Buffer.concat(body);
            if (out.length > 0 && shouldCorrupt(req.method ?? '', req.url ?? '')) {
              out = Buffer.from(out);
              // Flip a bit in the middle: still the same length, usually still JSON-looking.
              const i = Math.floor(out.length / 2);
              out[i] = out[i]! ^ 0x01;
              corrupted.push(`${req.method} ${req.url}`);
            }
            const h = { ...upRes.headers };
            if (h['content-length'] !== undefined) h['content-length'] = String(out.length);
            // A smarter attacker also makes the registry's digest header match the altered bytes.
            if (options.forgeDigestHeader && h['docker-content-digest'] !== undefined)
              h['docker-content-digest'] = sha256(out);
            res.writeHead(upRes.statusCode ?? 502, h);
            res.end(out);
          });
        },
      );
      up.on('error', (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      up.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ url: `http://127.0.0.1:${port}`, corrupted, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
