import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RunnerError } from './errors.js';
import { execFileBounded, which } from './exec.js';
import type { SourceSpec } from './spec.js';

/** Maps a remote git URL to a local repository path (e.g. a git mirror inside the perimeter). */
export type SourceResolver = (repo: string) => string | undefined;

export interface SourceCheckout {
  /** The repository as written in the spec. */
  repo: string;
  /** URI used in provenance: `git+file:///abs/path` for local repositories, else `git+<url>`. */
  repoUri: string;
  commit: string;
  ref?: string;
  /** Git tree object id of the commit (sha1). */
  gitTree: string;
  /** airlock-tree-v1 digest (hex sha256): see `treeDigest`. */
  treeSha256: string;
  /** Committer time of the commit (seconds since the epoch): the build's SOURCE_DATE_EPOCH. */
  commitTime: number;
  /** Where it was checked out on the host. */
  dir: string;
}

/**
 * Hardened git: no system/global config (no user hooks, filters, credential helpers, url rewrites), hooks
 * disabled, only the file transport allowed (so nothing here can reach a network), no prompts.
 */
function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: 'file',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_NO_REPLACE_OBJECTS: '1',
  };
}

const GIT_HARDENING = [
  '-c',
  'protocol.allow=never',
  '-c',
  'protocol.file.allow=always',
  '-c',
  'core.hooksPath=/dev/null',
  '-c',
  'core.fsmonitor=false',
  '-c',
  'core.autocrlf=false',
];

/** Resolves `source.repo` to a local repository directory, refusing anything that would need the network. */
export function resolveLocalRepo(repo: string, baseDir: string, resolver?: SourceResolver): string {
  let local: string | undefined;
  if (repo.startsWith('file://')) {
    try {
      local = fileURLToPath(repo);
    } catch (cause) {
      throw new RunnerError('RUNNER_SPEC_INVALID', `source.repo: '${repo}' is not a valid file:// URL`, { cause });
    }
  } else if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo) || /^[^/]+@[^/:]+:/.test(repo)) {
    local = resolver?.(repo);
    if (local === undefined) {
      throw new RunnerError(
        'RUNNER_SOURCE_UNSUPPORTED',
        `source.repo: '${repo}' is a remote URL; the runner never fetches over the network: give a local repository path or configure a source resolver`,
      );
    }
  } else {
    local = isAbsolute(repo) ? repo : resolve(baseDir, repo);
  }
  try {
    if (!statSync(local).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new RunnerError(
      'RUNNER_SOURCE_UNSUPPORTED',
      `source.repo: '${repo}' is not a local git repository (${local} is not a directory)`,
    );
  }
  return local;
}

/**
 * Fresh clone of `source` at exactly `source.commit` into `dir` (which must not exist or be empty), with no
 * network: `git clone --no-local --no-checkout` over the file transport (no hardlinks into the origin, which the
 * sandboxed build could otherwise write through), then `checkout --detach <commit>` and a HEAD check.
 */
export async function checkoutSource(
  source: SourceSpec,
  dir: string,
  opts: { baseDir: string; scratchHome: string; resolver?: SourceResolver },
): Promise<SourceCheckout> {
  const git = which('git');
  if (!git) throw new RunnerError('RUNNER_TOOL_MISSING', 'git is not installed (needed to check out the source)');
  const local = resolveLocalRepo(source.repo, opts.baseDir, opts.resolver);
  mkdirSync(opts.scratchHome, { recursive: true });
  const env = gitEnv(opts.scratchHome);
  const run = async (args: string[], what: string, cwd?: string, input?: string) => {
    const r = await execFileBounded(git, [...GIT_HARDENING, '-c', `safe.directory=${local}`, ...args], {
      cwd,
      env,
      input,
      timeoutMs: 600_000,
    });
    return { ...r, ok: r.code === 0, what };
  };
  const fail = (r: { stderr: string; what: string }) =>
    new RunnerError('RUNNER_SOURCE_FAILED', `git ${r.what} failed: ${r.stderr.trim() || 'no output'}`, {
      details: { repo: source.repo },
    });

  const clone = await run(
    ['clone', '--quiet', '--no-local', '--no-checkout', '--no-hardlinks', '--', pathToFileURL(local).href, dir],
    'clone',
  );
  if (!clone.ok) throw fail(clone);
  const co = await run(
    ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', `${source.commit}^{commit}`],
    'checkout',
    dir,
  );
  if (!co.ok) {
    const exists = await run(['cat-file', '-e', `${source.commit}^{commit}`], 'cat-file', dir);
    if (!exists.ok) {
      throw new RunnerError(
        'RUNNER_SOURCE_COMMIT_NOT_FOUND',
        `source.commit: ${source.commit} is not a commit reachable from any branch or tag of ${source.repo}`,
      );
    }
    throw fail(co);
  }
  if (source.ref !== undefined) {
    const remoteRef = source.ref.startsWith('refs/heads/')
      ? `refs/remotes/origin/${source.ref.slice('refs/heads/'.length)}`
      : source.ref;
    const has = await run(['rev-parse', '--verify', '--quiet', `${remoteRef}^{commit}`], 'rev-parse', dir);
    if (!has.ok)
      throw new RunnerError(
        'RUNNER_SOURCE_COMMIT_NOT_FOUND',
        `source.ref: ${source.ref} does not exist in ${source.repo}`,
      );
    const anc = await run(['merge-base', '--is-ancestor', source.commit, remoteRef], 'merge-base', dir);
    if (!anc.ok)
      throw new RunnerError(
        'RUNNER_SOURCE_COMMIT_NOT_FOUND',
        `source.ref: ${source.ref} of ${source.repo} does not contain commit ${source.commit}`,
      );
  }
  // One call verifies HEAD and reads the tree id and committer time.
  const info = await run(['show', '-s', '--format=%H %T %ct', 'HEAD'], 'show', dir);
  if (!info.ok) throw fail(info);
  const [head = '', gitTree = '', ct = ''] = info.stdout.toString().trim().split(' ');
  if (head !== source.commit)
    throw new RunnerError('RUNNER_SOURCE_FAILED', `checked-out HEAD ${head} is not ${source.commit}`);
  const commitTime = Number(ct);
  if (!/^[0-9a-f]{40}$/.test(gitTree) || !Number.isSafeInteger(commitTime) || commitTime < 0) {
    throw new RunnerError('RUNNER_SOURCE_FAILED', `unexpected 'git show' output for ${source.commit}`);
  }
  const treeSha256 = await treeDigest(git, env, dir, source.commit);
  const repoUri =
    source.repo.includes('://') && !source.repo.startsWith('file://')
      ? `git+${source.repo}`
      : `git+${pathToFileURL(local).href}`;
  return {
    repo: source.repo,
    repoUri,
    commit: source.commit,
    ...(source.ref ? { ref: source.ref } : {}),
    gitTree,
    treeSha256,
    commitTime,
    dir,
  };
}

/**
 * airlock-tree-v1: a sha256 view of a commit's tree, for consumers that do not trust sha1. Entries of
 * `git ls-tree -r --full-tree <commit>` sorted by path bytes; each contributes
 * `<mode> <type> <digest> <path>\0` where digest is `sha256:<hex of the blob content>` for blobs (files and
 * symlinks: the link target is the blob) and `git:<sha1>` for submodule commits. The result is the sha256 of
 * the concatenation. Blob contents come from the object database, so .gitattributes conversions do not matter.
 */
export async function treeDigest(
  git: string,
  env: NodeJS.ProcessEnv,
  repoDir: string,
  commit: string,
): Promise<string> {
  const ls = await execFileBounded(git, [...GIT_HARDENING, 'ls-tree', '-r', '-z', '--full-tree', commit], {
    cwd: repoDir,
    env,
  });
  if (ls.code !== 0) throw new RunnerError('RUNNER_SOURCE_FAILED', `git ls-tree failed: ${ls.stderr.trim()}`);
  const entries: { mode: string; type: string; oid: string; path: Buffer }[] = [];
  let start = 0;
  const buf = ls.stdout;
  while (start < buf.length) {
    const end = buf.indexOf(0, start);
    const rec = buf.subarray(start, end === -1 ? buf.length : end);
    start = end === -1 ? buf.length : end + 1;
    const tab = rec.indexOf(9);
    const [mode = '', type = '', oid = ''] = rec.subarray(0, tab).toString('latin1').split(' ');
    entries.push({ mode, type, oid, path: rec.subarray(tab + 1) });
  }
  const blobOids = [...new Set(entries.filter((e) => e.type === 'blob').map((e) => e.oid))];
  const blobSha256 = await blobDigests(git, env, repoDir, blobOids);
  entries.sort((a, b) => Buffer.compare(a.path, b.path));
  const h = createHash('sha256');
  for (const e of entries) {
    const digest = e.type === 'blob' ? `sha256:${blobSha256.get(e.oid)}` : `git:${e.oid}`;
    h.update(`${e.mode} ${e.type} ${digest} `);
    h.update(e.path);
    h.update('\0');
  }
  return h.digest('hex');
}

/** sha256 of each blob, streamed through one `git cat-file --batch` (constant memory per blob). */
function blobDigests(
  git: string,
  env: NodeJS.ProcessEnv,
  repoDir: string,
  oids: string[],
): Promise<Map<string, string>> {
  return new Promise((resolvePromise, reject) => {
    const result = new Map<string, string>();
    if (oids.length === 0) return resolvePromise(result);
    const child = spawn(git, [...GIT_HARDENING, 'cat-file', '--batch'], {
      cwd: repoDir,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let header = Buffer.alloc(0);
    let current: { oid: string; remaining: number; hash: ReturnType<typeof createHash> } | undefined;
    let trailing = 0; // the '\n' after each object's content
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => void (stderr.length < 4096 && (stderr += c.toString())));
    child.stdout.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        if (trailing > 0) {
          trailing--;
          off++;
          continue;
        }
        if (current) {
          const take = Math.min(current.remaining, chunk.length - off);
          current.hash.update(chunk.subarray(off, off + take));
          current.remaining -= take;
          off += take;
          if (current.remaining === 0) {
            result.set(current.oid, current.hash.digest('hex'));
            current = undefined;
            trailing = 1;
          }
          continue;
        }
        const nl = chunk.indexOf(10, off);
        if (nl === -1) {
          header = Buffer.concat([header, chunk.subarray(off)]);
          break;
        }
        const line = Buffer.concat([header, chunk.subarray(off, nl)]).toString('latin1');
        header = Buffer.alloc(0);
        off = nl + 1;
        const m = /^([0-9a-f]{40,64}) (\w+) (\d+)$/.exec(line);
        if (!m) {
          child.kill('SIGKILL');
          return reject(
            new RunnerError('RUNNER_SOURCE_FAILED', `git cat-file: unexpected output '${line.slice(0, 200)}'`),
          );
        }
        current = { oid: m[1]!, remaining: Number(m[3]), hash: createHash('sha256') };
        if (current.remaining === 0) {
          result.set(current.oid, current.hash.digest('hex'));
          current = undefined;
          trailing = 1;
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || result.size !== oids.length) {
        return reject(
          new RunnerError('RUNNER_SOURCE_FAILED', `git cat-file --batch failed (exit ${code}): ${stderr.trim()}`),
        );
      }
      resolvePromise(result);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${oids.join('\n')}\n`);
  });
}
