import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { canonicalize } from '@airlock/core';
import type { MirrorEntryInput, SnapshotManifest } from '../src/index.js';

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
export const sha512 = (b: Uint8Array | string): string => createHash('sha512').update(b).digest('hex');
export const sha1 = (b: Uint8Array | string): string => createHash('sha1').update(b).digest('hex');

export function tempDir(prefix = 'airlock-cas-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function* chunks(...parts: (string | Uint8Array)[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(out);
}

export interface FixtureFile {
  bytes: Buffer;
  entry?: Omit<MirrorEntryInput, 'size' | 'digests'>;
}

/** A transfer manifest for some files, with the snapshot id computed as the contract says. */
export function makeManifest(opts: {
  sequence: number;
  previous: string | null;
  files: FixtureFile[];
  createdAt?: string;
}): {
  manifest: SnapshotManifest;
  entries: MirrorEntryInput[];
} {
  const blobs = [
    ...new Map(opts.files.map((f) => [sha256(f.bytes), { sha256: sha256(f.bytes), size: f.bytes.length }])).values(),
  ].sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1));
  const entries: MirrorEntryInput[] = opts.files
    .filter((f) => f.entry)
    .map((f) => ({
      ...f.entry!,
      size: f.bytes.length,
      digests: { sha256: sha256(f.bytes), sha512: sha512(f.bytes), sha1: sha1(f.bytes) },
    }));
  const createdAt = opts.createdAt ?? `2026-01-${String(opts.sequence).padStart(2, '0')}T00:00:00Z`;
  const id = `sha256:${sha256(canonicalize({ sequence: opts.sequence, previous: opts.previous, createdAt, entries, blobs }))}`;
  return {
    manifest: {
      mediaType: 'application/vnd.airlock.transfer-manifest.v1+json',
      snapshot: {
        id,
        sequence: opts.sequence,
        previous: opts.previous,
        createdAt,
        producer: { name: 'test', version: '0' },
      },
      blobs,
      entries,
    },
    entries,
  };
}

export function genericFile(name: string, content: string): FixtureFile {
  return {
    bytes: Buffer.from(content),
    entry: { ecosystem: 'generic', name, version: null, filename: name, urls: [], purl: null, metadata: {} },
  };
}

/**
 * Transpiles this package's sources (no type check) into a directory below packages/cas/node_modules, so a child
 * process can run the exact code under test (Node 20 cannot run .ts; dist/ may be stale).
 */
export function transpileForChild(): string {
  const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
  const out = join(pkgDir, 'node_modules', `.airlock-test-${process.pid}-${Date.now()}`);
  mkdirSync(out, { recursive: true });
  const srcDir = join(pkgDir, 'src');
  for (const name of readdirSync(srcDir).filter((n) => n.endsWith('.ts'))) {
    const src = ts.sys.readFile(join(srcDir, name)) ?? '';
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: name,
    }).outputText;
    writeFileSync(join(out, name.replace(/\.ts$/, '.js')), js);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  return out;
}

/** Removes a transpiled tree and the package's node_modules directory if the test created it (only when empty). */
export function removeTranspiled(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(dirname(dir));
  } catch {
    // not empty (real dependencies live there) or already gone
  }
}
