/**
 * Shared by the Bazel and Nix builder tests: the fixture's upstream archive built deterministically, a git repo
 * holding the fixture workspace with the archive's pin filled in, and a loopback HTTP server standing in for the
 * mirror (`/sha256/<hex>`, `/sha256/<hex>/<filename>`, and the `/-/airlock/blobs/<hex>` lookup the runner asks
 * after the build).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { FIXTURES, git } from './helpers.js';

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - <dir> | gzip -n -9` of fixtures/runner/<fixture>/upstream/<dir>. */
export function upstreamArchive(fixture: string, dir: string): Buffer {
  return execFileSync(
    'sh',
    ['-c', 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$1" | gzip -n -9', 'sh', dir],
    {
      cwd: join(FIXTURES, fixture, 'upstream'),
      maxBuffer: 16 << 20,
    },
  );
}

/**
 * A bare repo with fixtures/runner/<fixture>/workspace as one commit; every `<name>.in` becomes `<name>` with
 * `@KEY@` placeholders replaced.
 */
export function workspaceRepo(
  fixture: string,
  parent: string,
  values: Record<string, string>,
): { repo: string; commit: string } {
  const work = join(parent, `${fixture}-work`);
  cpSync(join(FIXTURES, fixture, 'workspace'), work, { recursive: true });
  for (const n of readdirSync(work)) {
    if (!n.endsWith('.in')) continue;
    let text = readFileSync(join(work, n), 'utf8');
    for (const [k, v] of Object.entries(values)) text = text.replaceAll(`@${k}@`, v);
    writeFileSync(join(work, n.slice(0, -3)), text);
    renameSync(join(work, n), join(parent, `${fixture}-${n}`));
  }
  git(work, 'init', '-q');
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', `fixture ${fixture}`);
  const repo = join(parent, `${fixture}.git`);
  git(parent, 'clone', '-q', '--bare', work, repo);
  return { repo, commit: git(work, 'rev-parse', 'HEAD') };
}

export interface StandInMirror {
  url: string;
  /** `METHOD path` of every request, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Serves `blobs` (sha256 hex → bytes, which may deliberately not match the digest) at /sha256/<hex> and
 * /sha256/<hex>/<filename>, GET and HEAD; answers the blob lookup for the blobs whose bytes do match.
 */
export async function startStandInMirror(
  blobs: Record<string, Buffer>,
  names: Record<string, string> = {},
): Promise<StandInMirror> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(`${req.method} ${url}`);
    const blob = /^\/sha256\/([0-9a-f]{64})(?:\/[^/]+)?$/.exec(url);
    const body = blob ? blobs[blob[1]!] : undefined;
    if (body) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const lookup = /^\/-\/airlock\/blobs\/([0-9a-f]{64})$/.exec(url);
    const known = lookup ? blobs[lookup[1]!] : undefined;
    if (lookup && known && sha256(known) === lookup[1]) {
      const name = names[lookup[1]!] ?? 'blob';
      const doc = {
        sha256: lookup[1],
        size: known.length,
        snapshot: { id: `sha256:${'7'.repeat(64)}`, sequence: 1 },
        entries: [
          {
            ecosystem: 'generic',
            name,
            version: null,
            filename: name,
            purl: null,
            urls: [`https://upstream.invalid/${name}`],
            digests: { sha256: lookup[1] },
          },
        ],
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A temp dir other users may traverse: the Bazel/Nix sandboxes run as an unprivileged host uid when the runner is
 * root, and must reach the run directory under the work root.
 */
export function traversable(dir: string): string {
  chmodSync(dir, 0o711);
  return dir;
}
