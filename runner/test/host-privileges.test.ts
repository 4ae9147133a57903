/**
 * A root runner must not hand host root to the build. procfs judges writes to /proc/sys/* by the host uid that
 * runs the sandbox, so before command builds ran as an unprivileged host uid, a build could write host sysctls
 * (kernel.core_pattern is a path to host root). Only meaningful when the runner is root; skipped otherwise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBuild } from '../src/run.js';
import { bwrapProblem, gitProblem, makeFixtureRepo, rmrf, straceProblem, tempDir, toolsAvailable } from './helpers.js';

const enabled =
  toolsAvailable('runner host-privilege test', [bwrapProblem(), straceProblem(), gitProblem()]) &&
  process.getuid?.() === 0;
const dir = tempDir('privileges');
afterAll(() => rmrf(dir));

describe.runIf(enabled)('runBuild as root: the build gets no host privileges', () => {
  it('cannot write host sysctls through /proc/sys and does not run as host uid 0', async () => {
    const fx = makeFixtureRepo('good', dir);
    const probe = [
      '(test -w /proc/sys/kernel/core_pattern && echo core_pattern=writable || echo core_pattern=read-only)',
      '(cat /proc/sys/kernel/printk_ratelimit > /proc/sys/kernel/printk_ratelimit 2>/dev/null && echo sysctl=written || echo sysctl=refused)',
      'echo "host-uid=$(cut -d" " -f2 /proc/self/uid_map | head -n1)"',
    ].join('; ');
    const r = await runBuild(
      {
        source: { repo: fx.repo, commit: fx.commit },
        builder: { type: 'command', argv: ['sh', '-c', `{ ${probe}; } > "$AIRLOCK_OUTPUT_DIR/probe.txt"`] },
        outputs: ['probe.txt'],
      },
      { outDir: join(dir, 'out'), workRoot: join(dir, 'work'), builderId: 'https://airlock.dev/runners/test/v1' },
    );
    const text = readFileSync(r.artifacts[0]!.path, 'utf8');
    expect(text).toContain('core_pattern=read-only');
    expect(text).toContain('sysctl=refused');
    expect(text).not.toMatch(/^host-uid=0$/m);
  }, 60_000);
});
