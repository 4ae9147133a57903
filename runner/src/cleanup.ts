import { chmodSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Removes a scratch tree the build wrote into. A build can leave directories without write permission (which
 * would stop rm for a non-root runner), so on failure permissions are opened up (directories only, never
 * following symlinks) and the removal retried.
 */
export function removeTree(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    return;
  } catch {
    // fall through
  }
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    try {
      if (!lstatSync(d).isDirectory()) continue;
      chmodSync(d, 0o700);
      for (const n of readdirSync(d)) stack.push(join(d, n));
    } catch {
      // best effort
    }
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
}
