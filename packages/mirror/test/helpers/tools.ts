import { spawnSync } from 'node:child_process';

/**
 * True when `cmd args` runs. When a required tool is missing the test is skipped with a printed reason, unless
 * AIRLOCK_REQUIRE_TOOLS=1, in which case the caller must fail.
 */
export function toolAvailable(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

export function requireOrSkip(available: boolean, what: string): boolean {
  if (available) return true;
  if (process.env['AIRLOCK_REQUIRE_TOOLS'] === '1')
    throw new Error(`${what} is required (AIRLOCK_REQUIRE_TOOLS=1) but not available`);
  console.warn(`skipping: ${what} is not available`);
  return false;
}

/** The environment for a client tool: no inherited npm/pip configuration, no proxies. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      /^(npm_|NPM_|PIP_|pip_|PYTHON|VIRTUAL_ENV$|http_proxy$|https_proxy$|HTTP_PROXY$|HTTPS_PROXY$|no_proxy$|NO_PROXY$)/.test(
        k,
      )
    )
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}
