/** One cached blob: its verified bytes, the change token they were verified under, and what the owner keeps beside. */
export interface SmallBlobEntry<M> {
  token: string;
  bytes: Buffer;
  meta: M | undefined;
}

/** An entry with its second-chance bit (see SmallBlobCache). */
interface Held<M> extends SmallBlobEntry<M> {
  used: boolean;
}

/**
 * Verified bytes of small blobs, bounded by total size; each entry is valid only under its change token. `meta` is
 * the owner's (FsBlobStore keeps the file's stat fields there, to compare them without rebuilding the token).
 * Eviction is second-chance (CLOCK) rather than strict LRU: a hit only sets a bit, where moving the entry to the
 * end of the map cost two more hash-table operations on every request of the serving hot path; the eviction scan
 * moves entries hit since the last pass to the end instead of dropping them.
 */
export class SmallBlobCache<M = undefined> {
  private readonly entries = new Map<string, Held<M>>();
  private bytes = 0;

  constructor(private readonly budget: number) {}

  /** Whether bytes are held for `sha256` (under some token: the caller checks the current one with get). */
  has(sha256: string): boolean {
    return this.entries.has(sha256);
  }

  get(sha256: string, token: string): Buffer | undefined {
    const e = this.entries.get(sha256);
    if (!e) return undefined;
    if (e.token !== token) {
      this.forget(sha256);
      return undefined;
    }
    e.used = true;
    return e.bytes;
  }

  /** The entry held for `sha256` whatever its token, marked as recently used: the caller checks it is current. */
  peek(sha256: string): Readonly<SmallBlobEntry<M>> | undefined {
    const e = this.entries.get(sha256);
    if (e) e.used = true;
    return e;
  }

  set(sha256: string, token: string, bytes: Buffer, meta?: M): void {
    if (bytes.length > this.budget) return;
    this.forget(sha256);
    this.entries.set(sha256, { token, bytes, meta, used: false });
    this.bytes += bytes.length;
    this.evict();
  }

  forget(sha256: string): void {
    const e = this.entries.get(sha256);
    if (!e) return;
    this.entries.delete(sha256);
    this.bytes -= e.bytes.length;
  }

  /** Oldest first; an entry used since it was last passed is moved to the end once instead (ends: bits cleared). */
  private evict(): void {
    while (this.bytes > this.budget) {
      const oldest = this.entries.entries().next();
      if (oldest.done) return;
      const [key, e] = oldest.value;
      this.entries.delete(key);
      if (e.used) {
        e.used = false;
        this.entries.set(key, e);
      } else {
        this.bytes -= e.bytes.length;
      }
    }
  }
}
