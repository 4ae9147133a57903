/**
 * Disk bound of a build: a periodic walk of its writable directories summing allocated blocks.
 *
 * Why a walk and not a size-limited tmpfs or loop image: tmpfs pages are memory (they would be charged to the
 * build's memory limit, and 20 GiB of tmpfs would need 20 GiB of RAM+swap); a loop image needs root, mkfs and
 * mount in the runner (and a rootless runner has none of them), and costs an image file per build. The walk
 * works for any runner, sees exactly the directories the build can write (source, output, home, tmp, extra),
 * and costs one lstat per file. Its bound is soft: a build can overshoot by what it writes between two walks
 * (the interval is ≥ 1 s and 10× the last walk's duration, so a huge tree is not walked back to back), and the
 * final walk after the build catches anything a short build wrote in between.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface DiskUsage {
  bytes: number;
  /** The walk stopped early: the limit was already exceeded. */
  exceeded: boolean;
  /** A directory that could not be read (the build cannot hide bytes from the count: treated as exceeded). */
  unreadable?: string;
}

/**
 * Allocated bytes (st_blocks × 512: sparse files count what they occupy) under `dirs`, each inode once (hard
 * links), stopping as soon as `limit` is passed. Like `du -x`: never leaves the file system of each root, so a
 * directory the build swaps for a symlink mid-walk cannot send the walk into /proc or /sys (lstat never follows
 * the last component; the final walk after the build, when nothing can swap anymore, is the authoritative one).
 */
export async function diskUsage(dirs: readonly string[], limit = Infinity): Promise<DiskUsage> {
  const seen = new Set<string>();
  let bytes = 0;
  const stack: { path: string; dev?: bigint }[] = dirs.map((path) => ({ path }));
  while (stack.length > 0) {
    // lstat a batch at once: libuv's thread pool makes that several times faster than one await per file.
    const batch = stack.splice(Math.max(0, stack.length - STAT_BATCH));
    const stats = await Promise.all(batch.map((e) => lstat(e.path, { bigint: true }).catch(() => undefined)));
    for (let i = 0; i < batch.length; i++) {
      const st = stats[i]; // undefined: removed while we walk
      const { path, dev } = batch[i]!;
      if (!st || (dev !== undefined && st.dev !== dev)) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += Number(st.blocks) * 512;
      if (bytes > limit) return { bytes, exceeded: true };
      if (!st.isDirectory()) continue;
      const entries = await readDir(path);
      if (entries === undefined) return { bytes, exceeded: true, unreadable: path };
      for (const n of entries) stack.push({ path: join(path, n), dev: st.dev });
    }
  }
  return { bytes, exceeded: false };
}

const STAT_BATCH = 128;

/**
 * Directory entries, or undefined when the directory cannot be read: a non-root runner's build can chmod 000 its
 * own directories. Not repaired with chmod (a path the build controls may have become a symlink by then).
 */
async function readDir(p: string): Promise<string[] | undefined> {
  try {
    return await readdir(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? [] : undefined;
  }
}

export interface DiskWatchResult {
  exceeded: boolean;
  /** The largest usage seen (bytes). */
  peakBytes: number;
  unreadable?: string;
}

/** Walks `dirs` until stopped; calls `onExceeded` once when the usage passes `limit`. */
export class DiskWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private result: DiskWatchResult = { exceeded: false, peakBytes: 0 };

  constructor(
    private readonly dirs: readonly string[],
    private readonly limit: number,
    private readonly onExceeded: () => void,
    private readonly minIntervalMs = 1000,
  ) {}

  start(): void {
    this.schedule(this.minIntervalMs);
  }

  private schedule(ms: number): void {
    if (this.stopped || this.result.exceeded) return;
    this.timer = setTimeout(() => {
      this.running = this.check().then((took) => this.schedule(Math.max(this.minIntervalMs, 10 * took)));
    }, ms);
  }

  private async check(): Promise<number> {
    const t = Date.now();
    const u = await diskUsage(this.dirs, this.limit);
    this.result.peakBytes = Math.max(this.result.peakBytes, u.bytes);
    if (u.exceeded && !this.result.exceeded) {
      this.result.exceeded = true;
      if (u.unreadable) this.result.unreadable = u.unreadable;
      this.onExceeded();
    }
    return Date.now() - t;
  }

  /** Stops the timer and takes a final measurement (the build has ended). */
  async stop(): Promise<DiskWatchResult> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (!this.result.exceeded) await this.check();
    return this.result;
  }
}
