/** One cached blob: its verified bytes, the change token they were verified under, and what the owner keeps beside. */
export interface SmallBlobEntry<M> {
  token: string;
  bytes: Buffer;
  meta: M | undefined;
}

/**
 * Verified bytes of small blobs, bounded by total size; each entry is valid only under its change token. `meta` is
 * the owner's (FsBlobStore keeps the file's stat fields there, to compare them without rebuilding the token).
 */
export class SmallBlobCache<M = undefined> {
  private readonly entries = new Map<string, SmallBlobEntry<M>>();
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
    // Refresh recency.
    this.entries.delete(sha256);
    this.entries.set(sha256, e);
    return e.bytes;
  }

  /** The entry held for `sha256` whatever its token, refreshed as recently used: the caller checks it is current. */
  peek(sha256: string): Readonly<SmallBlobEntry<M>> | undefined {
    const e = this.entries.get(sha256);
    if (!e) return undefined;
    this.entries.delete(sha256);
    this.entries.set(sha256, e);
    return e;
  }

  set(sha256: string, token: string, bytes: Buffer, meta?: M): void {
    if (bytes.length > this.budget) return;
    this.forget(sha256);
    this.entries.set(sha256, { token, bytes, meta });
    this.bytes += bytes.length;
    for (const [key, e] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(key);
      this.bytes -= e.bytes.length;
    }
  }

  forget(sha256: string): void {
    const e = this.entries.get(sha256);
    if (!e) return;
    this.entries.delete(sha256);
    this.bytes -= e.bytes.length;
  }
}
