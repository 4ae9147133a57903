import { CasError } from './errors.js';
import type { MirrorStore } from './mirror-store.js';
import type { BlobState } from './types.js';

export interface FsckOptions {
  /** Delete blobs that no committed snapshot references (default false: report only). */
  removeOrphans?: boolean;
  /** Called after each blob is re-hashed. */
  onProgress?: (checked: number, sha256: string) => void;
}

export interface FsckCorruptBlob {
  sha256: string;
  /** What the bytes hashed to. */
  actual?: string;
  reason: string;
}

export interface FsckMissingBlob {
  sha256: string;
  /** Index state of the blob (quarantined when a read or an earlier fsck caught it). */
  state: BlobState;
  /** How many entries visible at head point at it. */
  entries: number;
}

export interface FsckReport {
  /** Blobs present in the store and re-hashed. */
  checked: number;
  ok: number;
  /** Present but not matching their name (now quarantined). */
  corrupt: FsckCorruptBlob[];
  /** Referenced by the index but absent or quarantined (a corrupt referenced blob is listed here too). */
  missing: FsckMissingBlob[];
  /** Present but referenced by no committed snapshot. */
  orphans: string[];
  /** Orphans deleted (only with `removeOrphans`). */
  removedOrphans: number;
  /** True when nothing is corrupt, missing or orphaned. */
  clean: boolean;
}

/**
 * Full consistency check: re-hashes every blob (ignoring the verified-cache), quarantines corrupt ones, checks that
 * every blob the index references exists, and lists orphans. Holds the import slot, so it never runs during an
 * import (IMPORT_LOCKED). Exit-code mapping is the CLI's business.
 */
export async function fsck(store: MirrorStore, options: FsckOptions = {}): Promise<FsckReport> {
  return store.withImportLock(async () => {
    const report: FsckReport = {
      checked: 0,
      ok: 0,
      corrupt: [],
      missing: [],
      orphans: [],
      removedOrphans: 0,
      clean: false,
    };
    const good = new Set<string>();
    for await (const sha256 of store.blobs.list()) {
      report.checked++;
      try {
        const result = await store.verifyBlob(sha256, { force: true });
        if (result.ok) {
          report.ok++;
          good.add(sha256);
        } else {
          report.corrupt.push({
            sha256,
            ...(result.actual ? { actual: result.actual } : {}),
            reason: `content hashes to sha256:${result.actual ?? '?'}`,
          });
        }
      } catch (err) {
        // Vanished between list and read, or unreadable: report it, keep checking the rest.
        if (err instanceof CasError && (err.code === 'CAS_NOT_FOUND' || err.code === 'CAS_QUARANTINED')) continue;
        report.corrupt.push({ sha256, reason: err instanceof Error ? err.message : String(err) });
      }
      options.onProgress?.(report.checked, sha256);
    }
    for (const blob of store.index.listBlobs()) {
      if (good.has(blob.sha256)) {
        if (blob.state !== 'ok') store.index.setBlobState(blob.sha256, 'ok'); // healed by a later import
        good.delete(blob.sha256);
        continue;
      }
      if (blob.state === 'ok') store.index.setBlobState(blob.sha256, 'quarantined');
      report.missing.push({
        sha256: blob.sha256,
        state: blob.state,
        entries: store.index.findEntriesBySha256(blob.sha256).length,
      });
    }
    // What is left in `good` is present and intact but referenced by nothing.
    report.orphans = [...good].sort();
    if (options.removeOrphans) report.removedOrphans = (await store.removeUnreferenced(report.orphans)).length;
    report.clean = report.corrupt.length === 0 && report.missing.length === 0 && report.orphans.length === 0;
    return report;
  });
}
