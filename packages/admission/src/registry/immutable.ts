import { RegistryClient, type FetchedManifest, type RegistryClientOptions } from '@airlock/oci';

/**
 * Registry reads that can never change, kept in memory: a manifest GET by digest and a blob GET by digest. Their
 * bytes were checked against the digest when fetched (RegistryClient does), so a later read by the same digest
 * must return the same bytes. Per registry host and repository (a repository the registry would refuse is never
 * served another's copy), LRU, bounded in bytes. Nothing mutable is kept: tag lookups, the referrers API, the
 * `sha256-<hex>` fallback index and cosign `.sig`/`.att` tags are always read live.
 */
export class ImmutableReads {
  private readonly entries = new Map<string, Buffer | FetchedManifest>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.bytes;
  }

  async get<T extends Buffer | FetchedManifest>(key: string, read: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit as T;
    }
    this.misses++;
    const value = await read();
    this.put(key, value);
    return value;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private put(key: string, value: Buffer | FetchedManifest): void {
    const n = sizeOf(value);
    // One entry may use at most a quarter of the budget, so a big blob cannot flush everything else.
    if (n > this.maxBytes / 4 || this.entries.has(key)) return;
    this.entries.set(key, value);
    this.bytes += n;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= sizeOf(v);
    }
  }
}

const sizeOf = (v: Buffer | FetchedManifest): number => (Buffer.isBuffer(v) ? v.byteLength : v.bytes.byteLength);

const isDigest = (reference: string): boolean => reference.startsWith('sha256:');

/** A RegistryClient whose by-digest manifest and blob reads go through `cache` (everything else is live). */
export class CachingRegistryClient extends RegistryClient {
  constructor(
    options: RegistryClientOptions,
    private readonly cache: ImmutableReads,
  ) {
    super(options);
  }

  override async tryGetManifest(
    repo: string,
    reference: string,
    accept?: string,
  ): Promise<FetchedManifest | undefined> {
    if (!isDigest(reference)) return super.tryGetManifest(repo, reference, accept);
    // A 404 is not cached (absence can change): the read throws out of get() and nothing is stored.
    const key = `${this.host}/${repo}@${reference} manifest ${accept ?? ''}`;
    try {
      return await this.cache.get(key, async () => {
        const m = await super.tryGetManifest(repo, reference, accept);
        if (m === undefined) throw new NotFound();
        return m;
      });
    } catch (err) {
      if (err instanceof NotFound) return undefined;
      throw err;
    }
  }

  override async getBlob(
    repo: string,
    digest: string,
    options: { maxBytes?: number; expectedSize?: number } = {},
  ): Promise<Buffer> {
    const blob = await this.cache.get(`${this.host}/${repo}@${digest} blob`, () =>
      super.getBlob(repo, digest, options),
    );
    // The caller's bounds still apply to a cached blob, as they would have to a fresh read.
    if (options.expectedSize !== undefined && blob.byteLength !== options.expectedSize)
      return super.getBlob(repo, digest, options);
    if (options.maxBytes !== undefined && blob.byteLength > options.maxBytes)
      return super.getBlob(repo, digest, options);
    return blob;
  }
}

class NotFound extends Error {}
