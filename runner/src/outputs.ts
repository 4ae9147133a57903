import { chmodSync, constants, copyFileSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { digestFile } from '@airlock/core';
import { RunnerError } from './errors.js';

export interface OutputFile {
  /** Path relative to the output directory, '/'-separated. */
  name: string;
  sha256: string;
  size: number;
  executable: boolean;
}

const MAX_WALK_ENTRIES = 200_000;
const MAX_OUTPUTS = 10_000;

/**
 * Glob → RegExp over '/'-separated relative paths: `*` and `?` stay within a segment, `**` spans segments
 * (`a/**` matches everything under a/, `**\/x` matches x at any depth). Everything else is literal.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        const slashAfter = pattern[i + 2] === '/';
        const atSegmentStart = i === 0 || pattern[i - 1] === '/';
        if (atSegmentStart && slashAfter) {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

function hasGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

interface WalkEntry {
  name: string;
  stats: Stats;
}

/** Every entry under `root` (lstat: symlinks are reported, never followed), bounded. */
function walk(root: string): WalkEntry[] {
  const out: WalkEntry[] = [];
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(rel === '' ? root : join(root, rel));
    } catch (cause) {
      throw new RunnerError(
        'RUNNER_OUTPUT_INVALID',
        `cannot read output directory ${rel || '.'}: ${(cause as Error).message}`,
        { cause },
      );
    }
    for (const n of names.sort()) {
      const name = rel === '' ? n : `${rel}/${n}`;
      const stats = lstatSync(join(root, name));
      out.push({ name, stats });
      if (out.length > MAX_WALK_ENTRIES)
        throw new RunnerError(
          'RUNNER_OUTPUT_INVALID',
          `the output directory holds more than ${MAX_WALK_ENTRIES} entries`,
        );
      if (stats.isDirectory()) stack.push(name);
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The declared outputs found in `outDir` (host path), with digests. Each pattern must match at least one regular
 * file; a pattern naming a directory means every file under it. A matched symlink, device, fifo or socket is an
 * error (copying it could read host files the sandbox never saw).
 */
export async function collectOutputs(outDir: string, patterns: readonly string[]): Promise<OutputFile[]> {
  const entries = walk(outDir);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const selected = new Map<string, WalkEntry>();
  const missing: string[] = [];
  for (const p of patterns) {
    const exact = byName.get(p);
    let matches: WalkEntry[];
    if (!hasGlob(p) && exact?.stats.isDirectory()) {
      matches = entries.filter((e) => e.name.startsWith(`${p}/`) && !e.stats.isDirectory());
    } else {
      const re = globToRegExp(p);
      matches = entries.filter((e) => re.test(e.name) && !e.stats.isDirectory());
    }
    if (matches.length === 0) missing.push(p);
    for (const m of matches) selected.set(m.name, m);
  }
  if (missing.length > 0) {
    throw new RunnerError(
      'RUNNER_OUTPUT_MISSING',
      `declared output${missing.length > 1 ? 's' : ''} not produced: ${missing.map((m) => `'${m}'`).join(', ')}`,
      {
        details: { missing },
      },
    );
  }
  const bad = [...selected.values()].filter((e) => !e.stats.isFile());
  if (bad.length > 0) {
    const kinds = bad.map((e) => `'${e.name}' (${e.stats.isSymbolicLink() ? 'symlink' : 'not a regular file'})`);
    throw new RunnerError('RUNNER_OUTPUT_INVALID', `outputs must be regular files: ${kinds.join(', ')}`, {
      details: { invalid: bad.map((e) => e.name) },
    });
  }
  if (selected.size > MAX_OUTPUTS)
    throw new RunnerError('RUNNER_OUTPUT_INVALID', `more than ${MAX_OUTPUTS} outputs matched`);
  const files: OutputFile[] = [];
  for (const e of [...selected.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const { digests, size } = await digestFile(join(outDir, e.name), ['sha256']);
    files.push({ name: e.name, sha256: digests.sha256!, size, executable: (e.stats.mode & 0o100) !== 0 });
  }
  return files;
}

/** Copies the outputs into `dest` (mode 0644, or 0755 for executables), refusing to overwrite anything. */
export function copyOutputs(srcDir: string, files: readonly OutputFile[], dest: string): string[] {
  const paths: string[] = [];
  for (const f of files) {
    const to = join(dest, f.name);
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(join(srcDir, f.name), to, constants.COPYFILE_EXCL);
    // Never carry setuid/setgid/sticky bits out: inside the user namespace the build owns its files, and a
    // root runner would otherwise end up with a setuid-root binary of the build's choosing.
    chmodSync(to, f.executable ? 0o755 : 0o644);
    paths.push(to);
  }
  return paths;
}
