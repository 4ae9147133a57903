import { open, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assertDigestSetMatches, hasErrorCode, type DigestAlgorithm, type DigestSet } from '@airlock/core';
import { SyncError } from './errors.js';
import type { HttpClient } from './http/http-client.js';

/**
 * Where a verified blob waits for the bundle writer. `sealed`: a file unlinked right after it was created, so no
 * other process can open it by name and the bytes hashed on the way in are the bytes the writer reads back (it
 * need not hash them again). `path`: a named file in the work dir, re-hashed when the bundle is written.
 */
export type StagedFile = { kind: 'sealed'; file: FileHandle } | { kind: 'path'; path: string };

/** A blob fetched, verified and staged in the work dir. */
export interface StoredBlob {
  sha256: string;
  /** Present when a request asked for it (npm: packument integrity/shasum) or an input pinned it. */
  sha512?: string;
  sha1?: string;
  size: number;
  staged: StagedFile;
}

/** Default budget of open sealed files; later blobs are staged by name (huge bundles of small blobs). */
export const DEFAULT_MAX_SEALED = 1024;

export interface FetchPinnedRequest {
  /** Human label for messages: `npm lodash@4.17.21`. */
  what: string;
  /** Tried in order; a URL that fails (HTTP/network) falls through to the next, a hash mismatch never does. */
  urls: string[];
  /** What the input pinned, lowercase hex; at least one of sha256/sha384/sha512. */
  expected: DigestSet;
  /** When false (PEP 658 metadata offered without a hash), the content is taken as served: trust on first use. */
  pinned?: boolean;
  /**
   * Digests wanted besides sha256 (always: it names the blob) and the pinned ones, e.g. npm's sha512 and sha1.
   * Only these are computed: each costs a full pass of CPU over every byte.
   */
  digests?: readonly DigestAlgorithm[];
  maxBytes: number;
}

/** One staging attempt: a destination for the download, then kept or discarded. */
interface Stage {
  dest: string | FileHandle;
  discard(): Promise<void>;
}

/**
 * Content-addressed staging area for one sync. Downloads are hashed as they stream in (every needed digest per
 * chunk, one pass), checked against the pin, then kept. Two requests that pin the same digest share one download
 * (keyed by the pinned digest, before fetching); two downloads that turn out identical share one copy (keyed by
 * sha256, after). Call `close()` when done.
 */
export class BlobStore {
  private readonly byPin = new Map<string, Promise<StoredBlob>>();
  private readonly bySha256 = new Map<string, StoredBlob>();
  private counter = 0;
  private sealed = 0;
  /** How many downloads actually started (for tests and the summary). */
  downloads = 0;

  constructor(
    private readonly dir: string,
    private readonly http: HttpClient,
    private readonly onBytes: (n: number) => void = () => {},
    private readonly maxSealed = DEFAULT_MAX_SEALED,
  ) {}

  get blobs(): StoredBlob[] {
    return [...this.bySha256.values()];
  }

  get(sha256: string): StoredBlob | undefined {
    return this.bySha256.get(sha256);
  }

  fetchPinned(req: FetchPinnedRequest): Promise<StoredBlob> {
    if (req.pinned === false) return this.fetchOnce(req, false);
    const key = `${pinKey(req.expected)}|${[...new Set(req.digests ?? [])].sort().join(',')}`;
    const hit = this.byPin.get(key);
    if (hit) return hit;
    const p = this.fetchOnce(req, true);
    this.byPin.set(key, p);
    return p;
  }

  /** Closes the sealed files (their space is freed with the last handle). */
  async close(): Promise<void> {
    const files = this.blobs.flatMap((b) => (b.staged.kind === 'sealed' ? [b.staged.file] : []));
    this.sealed = 0;
    await Promise.all(files.map((f) => f.close().catch(() => undefined)));
  }

  private async fetchOnce(req: FetchPinnedRequest, pinned: boolean): Promise<StoredBlob> {
    const algorithms = [
      ...new Set<DigestAlgorithm>([
        'sha256',
        ...(Object.keys(req.expected) as DigestAlgorithm[]),
        ...(req.digests ?? []),
      ]),
    ];
    const failures: string[] = [];
    for (const url of req.urls) {
      const stage = await this.stage();
      let result;
      try {
        this.downloads++;
        result = await this.http.download(url, stage.dest, {
          algorithms,
          maxBytes: req.maxBytes,
          onBytes: this.onBytes,
        });
      } catch (err) {
        await stage.discard();
        // A body over the cap is the content's fault, not the mirror's: another URL would serve the same bytes.
        if (hasErrorCode(err, 'SYNC_SIZE_LIMIT') || req.urls.length === 1) throw err;
        failures.push((err as Error).message);
        continue;
      }
      if (pinned) {
        try {
          assertDigestSetMatches(req.what, req.expected, result.digests);
        } catch (err) {
          await stage.discard();
          throw mismatchError(req, url, result, err);
        }
      }
      return this.commit(stage, result.digests, result.size);
    }
    throw new SyncError('SYNC_FETCH_FAILED', `${req.what}: every URL failed:\n    ${failures.join('\n    ')}`, {
      details: { urls: req.urls, failures },
    });
  }

  /** A sealed file while the budget lasts (created exclusively, unlinked before a byte is written), else a named one. */
  private async stage(): Promise<Stage> {
    const tmp = join(this.dir, `tmp-${++this.counter}`);
    if (this.sealed >= this.maxSealed) return { dest: tmp, discard: () => rm(tmp, { force: true }) };
    this.sealed++;
    const file = await open(tmp, 'wx+', 0o600);
    try {
      await unlink(tmp);
    } catch (err) {
      this.sealed--;
      await file.close();
      throw err;
    }
    return {
      dest: file,
      discard: async () => {
        this.sealed--;
        await file.close();
      },
    };
  }

  private async commit(stage: Stage, digests: DigestSet, size: number): Promise<StoredBlob> {
    const sha256 = digests.sha256!;
    const existing = this.bySha256.get(sha256);
    if (existing) {
      await stage.discard();
      // Same content: what this download computed holds for the shared copy too (one npm and one generic entry).
      if (digests.sha512 !== undefined) existing.sha512 = digests.sha512;
      if (digests.sha1 !== undefined) existing.sha1 = digests.sha1;
      return existing;
    }
    let staged: StagedFile;
    if (typeof stage.dest === 'string') {
      const path = join(this.dir, `sha256-${sha256}`);
      await rename(stage.dest, path);
      staged = { kind: 'path', path };
    } else staged = { kind: 'sealed', file: stage.dest };
    const blob: StoredBlob = { sha256, size, staged };
    if (digests.sha512 !== undefined) blob.sha512 = digests.sha512;
    if (digests.sha1 !== undefined) blob.sha1 = digests.sha1;
    this.bySha256.set(sha256, blob);
    return blob;
  }
}

function mismatchError(
  req: FetchPinnedRequest,
  url: string,
  result: { digests: DigestSet; size: number },
  err: unknown,
): SyncError {
  const [alg, expected] = Object.entries(req.expected).find(
    ([a]) => result.digests[a as DigestAlgorithm] !== undefined,
  ) ?? ['?', '?'];
  const actual = result.digests[alg as DigestAlgorithm] ?? '?';
  return new SyncError(
    'SYNC_HASH_MISMATCH',
    `${req.what}: upstream content does not match the pin: ${url} served ${result.size} bytes with ${alg} ${actual}, expected ${expected}`,
    {
      cause: err,
      details: { url, algorithm: alg, expected, actual, size: result.size, actualDigests: result.digests },
    },
  );
}

function pinKey(expected: DigestSet): string {
  for (const a of ['sha512', 'sha384', 'sha256'] as const) if (expected[a]) return `${a}:${expected[a]}`;
  throw new SyncError('SYNC_UNPINNED', 'internal: fetch requested without a sha256/sha384/sha512 pin');
}
