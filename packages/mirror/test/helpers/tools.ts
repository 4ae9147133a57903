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
