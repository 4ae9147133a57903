/**
 * Remembers which blobs were verified and under which "change token" (for files: inode, size, mtime and ctime
 * in ns; any write to a file moves its ctime, and userspace cannot set ctime back). A lookup hits only when the
 * token is unchanged, so a modified blob is always re-hashed. Bounded: the oldest entries are dropped first.
 */
export class VerifiedCache {
  private readonly entries = new Map<string, string>();

  constructor(private readonly maxEntries = 200_000) {}

  isVerified(sha256: string, token: string): boolean {
    return this.entries.get(sha256) === token;
  }

  remember(sha256: string, token: string): void {
    this.entries.delete(sha256);
    this.entries.set(sha256, token);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  forget(sha256: string): void {
    this.entries.delete(sha256);
  }

  get size(): number {
    return this.entries.size;
  }
}
