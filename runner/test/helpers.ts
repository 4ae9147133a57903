import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeGitFixtureRepo, type FixtureRepo } from '@airlock/testkit';

// The generic probes and git/dir helpers live in @airlock/testkit; re-exported so runner tests import one module.
export {
  bwrapProblem,
  git,
  gitProblem,
  rmrf,
  sandboxTempDir as tempDir,
  straceProblem,
  toolsAvailable,
  which,
  type FixtureRepo,
} from '@airlock/testkit';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/runner/', import.meta.url));

/** runner/native/netmon as `npm ci` builds it (runner/scripts/build-netmon.mjs). */
export const NETMON = fileURLToPath(new URL('../native/build/netmon', import.meta.url));

/** Why the seccomp network monitor cannot run here, or undefined. */
export function netmonProblem(): string | undefined {
  if (!existsSync(NETMON)) return `${NETMON} is not built (node runner/scripts/build-netmon.mjs)`;
  const r = spawnSync(NETMON, ['--events', '/dev/null', '--', 'true'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? undefined : `netmon cannot monitor here: ${(r.stderr || String(r.error)).trim()}`;
}

/** A bare git repo holding `fixtures/runner/<name>` as one commit with fixed dates (deterministic commit id). */
export function makeFixtureRepo(name: string, parent: string): FixtureRepo {
  return makeGitFixtureRepo(join(FIXTURES, name), parent);
}

/** A tiny HTTP server serving `files` (path → body), on a UNIX socket or 127.0.0.1:0. */
export async function startFileServer(
  files: Record<string, string>,
  socketPath?: string,
): Promise<{ url: string; requests: string[]; close(): Promise<void>; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = files[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve) =>
    socketPath ? server.listen(socketPath, resolve) : server.listen(0, '127.0.0.1', resolve),
  );
  const addr = server.address();
  const url = typeof addr === 'object' && addr !== null ? `http://127.0.0.1:${addr.port}` : `unix:${socketPath}`;
  return {
    url,
    requests,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Pids of live processes whose command line contains `marker` (to prove a killed build left nothing behind). */
export function processesWith(marker: string, exclude: readonly number[] = []): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid || exclude.includes(Number(p))) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}
