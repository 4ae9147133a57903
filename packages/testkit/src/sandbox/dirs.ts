import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh temp dir that other users may traverse (0711): as root, the runner's sandboxes run as an unprivileged host
 * uid that must reach the run directory under the work root.
 */
export function sandboxTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `airlock-runner-test-${prefix}-`));
  chmodSync(dir, 0o711);
  return dir;
}

export function rmrf(p: string): void {
  rmSync(p, { recursive: true, force: true });
}
