import { rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { assertDigestSetMatches, hasErrorCode, type DigestAlgorithm, type DigestSet } from '@airlock/core';
import { SyncError } from './errors.js';
import type { HttpClient } from './http/http-client.js';

/** A blob fetched, verified and stored under its sha256 in the work dir. */
export interface StoredBlob {
  sha256: string;
  sha512: string;
  sha1: string;
  size: number;
  path: string;
}

/** Always computed in the single pass over each download: sha256 names the blob, sha512/sha1 serve npm. */
const ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512', 'sha1'];

export interface FetchPinnedRequest {
  /** Human label for messages: `npm lodash@4.17.21`. */
  what: string;
  /** Tried in order; a URL that fails (HTTP/network) falls through to the next, a hash mismatch never does. */
  urls: string[];
  /** What the input pinned, lowercase hex; at least one of sha256/sha384/sha512. */
  expected: DigestSet;
  /** When false (PEP 658 metadata offered without a hash), the content is taken as served: trust on first use. */
  pinned?: boolean;
  maxBytes: number;
}

/**
 * Content-addressed staging area for one sync. Downloads go to `tmp-N` files while hashing, are checked against
 * the pin, then renamed to `sha256/<hex>`. Two requests that pin the same digest share one download (keyed by the
 * pinned digest, before fetching); two downloads that turn out identical share one file (keyed by sha256, after).
 */
export class BlobStore {
  private readonly byPin = new Map<string, Promise<StoredBlob>>();
  private readonly bySha256 = new Map<string, StoredBlob>();
  private counter = 0;
  /** How many downloads actually started (for tests and the summary). */
  downloads = 0;

  constructor(
    private readonly dir: string,
    private readonly http: HttpClient,
    private readonly onBytes: (n: number) => void = () => {},
  ) {}

  get blobs(): StoredBlob[] {
    return [...this.bySha256.values()];
  }

  get(sha256: string): StoredBlob | undefined {
    return this.bySha256.get(sha256);
  }

  fetchPinned(req: FetchPinnedRequest): Promise<StoredBlob> {
    if (req.pinned === false) return this.fetchOnce(req, false);
    const key = pinKey(req.expected);
    const hit = this.byPin.get(key);
    if (hit) return hit;
    const p = this.fetchOnce(req, true);
    this.byPin.set(key, p);
    return p;
  }

  private async fetchOnce(req: FetchPinnedRequest, pinned: boolean): Promise<StoredBlob> {
    const algorithms = [...new Set([...ALGORITHMS, ...(Object.keys(req.expected) as DigestAlgorithm[])])];
    const failures: string[] = [];
    for (const url of req.urls) {
      const tmp = join(this.dir, `tmp-${++this.counter}`);
      let result;
      try {
        this.downloads++;
        result = await this.http.download(url, tmp, { algorithms, maxBytes: req.maxBytes, onBytes: this.onBytes });
      } catch (err) {
        await rm(tmp, { force: true });
        // A body over the cap is the content's fault, not the mirror's: another URL would serve the same bytes.
        if (hasErrorCode(err, 'SYNC_SIZE_LIMIT') || req.urls.length === 1) throw err;
        failures.push((err as Error).message);
        continue;
      }
      if (pinned) {
        try {
          assertDigestSetMatches(req.what, req.expected, result.digests);
        } catch (err) {
          await rm(tmp, { force: true });
          const [alg, expected] = Object.entries(req.expected).find(
            ([a]) => result.digests[a as DigestAlgorithm] !== undefined,
          ) ?? ['?', '?'];
          const actual = result.digests[alg as DigestAlgorithm] ?? '?';
          throw new SyncError(
            'SYNC_HASH_MISMATCH',
            `${req.what}: upstream content does not match the pin: ${url} served ${result.size} bytes with ${alg} ${actual}, expected ${expected}`,
            {
              cause: err,
              details: { url, algorithm: alg, expected, actual, size: result.size, actualDigests: result.digests },
            },
          );
        }
      }
      return this.commit(tmp, result.digests, result.size);
    }
    throw new SyncError('SYNC_FETCH_FAILED', `${req.what}: every URL failed:\n    ${failures.join('\n    ')}`, {
      details: { urls: req.urls, failures },
    });
  }

  private async commit(tmp: string, digests: DigestSet, size: number): Promise<StoredBlob> {
    const sha256 = digests.sha256!;
    const existing = this.bySha256.get(sha256);
    if (existing) {
      await unlink(tmp);
      return existing;
    }
    const path = join(this.dir, `sha256-${sha256}`);
    const blob: StoredBlob = { sha256, sha512: digests.sha512!, sha1: digests.sha1!, size, path };
    this.bySha256.set(sha256, blob);
    await rename(tmp, path);
    return blob;
  }
}

function pinKey(expected: DigestSet): string {
  for (const a of ['sha512', 'sha384', 'sha256'] as const) if (expected[a]) return `${a}:${expected[a]}`;
  throw new SyncError('SYNC_UNPINNED', 'internal: fetch requested without a sha256/sha384/sha512 pin');
}
