import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, link, lstat, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CasError, type MirrorStore } from '@airlock/cas';
import { digestFile } from '@airlock/core';

export interface BazelCacheExportOptions {
  /** Verify each blob before exporting it (default true; uses the store's verified-cache). */
  verify?: boolean;
  /** Hardlink when the cache is on the same filesystem (default true); otherwise copy. */
  hardlink?: boolean;
  onProgress?: (done: number, total: number, sha256: string) => void;
}

export interface BazelCacheExportReport {
  /** Blobs visible at head. */
  total: number;
  linked: number;
  copied: number;
  /** Already present with the right content. */
  unchanged: number;
  /** Blobs that failed verification (quarantined by the store) or were missing: not exported. */
  failed: { sha256: string; reason: string }[];
}

/**
 * Writes a Bazel repository cache (`--repository_cache=<dir>`): `content_addressable/sha256/<hex>/file` for every
 * blob visible at head (bazelbuild/bazel RepositoryCache.java). Bazel only consults it for rules that give a
 * sha256/integrity and re-hashes what it reads. Hardlinks share the CAS inode (read-only 0444); copies are made
 * from verified reads. Idempotent: existing files with the right content are left alone, wrong ones replaced.
 */
export async function exportBazelRepositoryCache(
  store: MirrorStore,
  dir: string,
  options: BazelCacheExportOptions = {},
): Promise<BazelCacheExportReport> {
  const verify = options.verify ?? true;
  const tryLink = options.hardlink ?? true;
  const blobs = store.index.listVisibleBlobs().filter((b) => b.state === 'ok');
  const report: BazelCacheExportReport = { total: blobs.length, linked: 0, copied: 0, unchanged: 0, failed: [] };
  const root = join(dir, 'content_addressable', 'sha256');
  await mkdir(root, { recursive: true });
  let done = 0;
  for (const blob of blobs) {
    const target = join(root, blob.sha256, 'file');
    try {
      if (verify) {
        const v = await store.verifyBlob(blob.sha256);
        if (!v.ok) throw new CasError('CAS_CORRUPT', `content hashes to sha256:${v.actual ?? '?'} (quarantined)`);
      }
      const source = store.blobs.localPath?.(blob.sha256);
      if (await alreadyExported(target, source, blob.sha256)) {
        report.unchanged++;
      } else {
        await mkdir(join(root, blob.sha256), { recursive: true });
        const tmp = join(root, blob.sha256, `.file.${randomBytes(6).toString('hex')}.tmp`);
        try {
          let linked = false;
          if (tryLink && source)
            linked = await link(source, tmp).then(
              () => true,
              () => false,
            );
          if (!linked) {
            if (source && !verify) await copyFile(source, tmp);
            else await pipeline((await store.openBlob(blob.sha256)).stream, createWriteStream(tmp, { mode: 0o644 }));
            await chmod(tmp, 0o444);
          }
          await rename(tmp, target);
          if (linked) report.linked++;
          else report.copied++;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      }
    } catch (err) {
      report.failed.push({ sha256: blob.sha256, reason: err instanceof Error ? err.message : String(err) });
    }
    options.onProgress?.(++done, blobs.length, blob.sha256);
  }
  return report;
}

async function alreadyExported(target: string, source: string | undefined, sha256: string): Promise<boolean> {
  let t;
  try {
    t = await lstat(target);
  } catch {
    return false;
  }
  if (!t.isFile()) {
    await unlink(target).catch(() => undefined);
    return false;
  }
  if (source) {
    const s = await stat(source).catch(() => undefined);
    if (s && s.ino === t.ino && s.dev === t.dev) return true;
  }
  return (await digestFile(target, ['sha256'])).digests.sha256 === sha256;
}
