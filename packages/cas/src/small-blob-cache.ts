/** Verified bytes of small blobs, bounded by total size; each entry is valid only under its change token. */
export class SmallBlobCache {
  private readonly entries = new Map<string, { token: string; bytes: Buffer }>();
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

  set(sha256: string, token: string, bytes: Buffer): void {
    if (bytes.length > this.budget) return;
    this.forget(sha256);
    this.entries.set(sha256, { token, bytes });
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
