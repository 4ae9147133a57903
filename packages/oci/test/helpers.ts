// OCI-specific helpers; the registry itself and the tool probes come from @airlock/testkit.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
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

/** Listens on 127.0.0.1 (ephemeral port): the URL, and a close that drops kept-alive connections first. */
export async function listenLoopback(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
