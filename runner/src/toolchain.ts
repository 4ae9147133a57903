import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { digestFile } from '@airlock/core';

/** A program the build executed, identified by the digest of the host file behind it. */
export interface ToolchainEntry {
  /** Path as executed inside the sandbox, e.g. /usr/bin/bash or /bin/sh. */
  path: string;
  /** The host file it resolved to (symlinks followed), e.g. /usr/bin/dash. */
  resolvedPath: string;
  sha256: string;
  size: number;
}

const MAX_TOOLCHAIN = 1000;

export interface ToolchainContext {
  /** Host path for a sandbox path, when the sandbox path is a read-only host bind (else undefined). */
  hostPathOf(sandboxPath: string): string | undefined;
  /** Host path for a file inside the checked-out source (scripts whose interpreter is a tool), else undefined. */
  sourcePathOf(sandboxPath: string): string | undefined;
  /** Resolves a bare command name on the sandbox PATH to a sandbox path. */
  lookup(command: string): string | undefined;
}

/**
 * Digests the host files behind the programs the build executed. Programs that are part of the source (build
 * scripts) are covered by the tree digest, but their `#!` interpreter is a tool and is added (the kernel runs it
 * without an execve of its own). Programs the build produced itself (in its temp or output dirs) are skipped.
 */
export async function resolveToolchain(executed: readonly string[], ctx: ToolchainContext): Promise<ToolchainEntry[]> {
  const queue = [...executed];
  const seen = new Set<string>();
  const out: ToolchainEntry[] = [];
  while (queue.length > 0 && out.length < MAX_TOOLCHAIN) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const host = ctx.hostPathOf(path);
    const hostFile = host ?? ctx.sourcePathOf(path);
    if (hostFile === undefined) continue;
    const interp = interpreterOf(hostFile, ctx);
    if (interp) queue.push(...interp);
    if (host === undefined) continue;
    let resolvedPath: string;
    try {
      resolvedPath = realpathSync(host);
      if (!statSync(resolvedPath).isFile()) continue;
    } catch {
      continue;
    }
    const { digests, size } = await digestFile(resolvedPath, ['sha256']);
    out.push({ path, resolvedPath, sha256: digests.sha256!, size });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** `#!/usr/bin/env python3` → [/usr/bin/env, <python3 on PATH>]; `#!/bin/sh -e` → [/bin/sh]. */
function interpreterOf(hostFile: string, ctx: ToolchainContext): string[] | undefined {
  let head: string;
  try {
    const fd = openSync(hostFile, 'r');
    try {
      const buf = Buffer.alloc(256);
      const n = readSync(fd, buf, 0, buf.length, 0);
      head = buf.subarray(0, n).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const m = /^#!\s*(\S+)(?:[ \t]+(\S+))?/.exec(head.split('\n')[0] ?? '');
  if (!m) return undefined;
  const interp = m[1]!;
  if (/\/env$/.test(interp) && m[2] && !m[2].startsWith('-')) {
    const found = ctx.lookup(m[2]);
    return found ? [interp, found] : [interp];
  }
  return [interp];
}
