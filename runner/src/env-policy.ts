import { RunnerError } from './errors.js';
import type { BuildSpec } from './spec.js';

/**
 * The spec's `env` is an allow-list over the operator's environment, and the operator decides which credentials
 * may cross: a name that looks like a credential is refused unless the operator passes it explicitly
 * (`airlock run --pass-env NAME`), and the runner's own identity token never reaches a build, whatever it is
 * called. Errors name the variable, never its value.
 */
const CREDENTIAL_NAME = [/TOKEN/i, /SECRET/i, /PASSWORD/i, /KEY/i, /^AWS_/i, /^SIGSTORE_/i, /^ACTIONS_/i];

/** Variables that hold the runner's own credentials: never passed, even when the operator names them. */
const RUNNER_CREDENTIALS = new Set(['SIGSTORE_ID_TOKEN']);

export interface EnvPolicy {
  /** Where values come from (the operator's environment). */
  hostEnv: NodeJS.ProcessEnv;
  /** Credential-like names the operator lets through (`--pass-env`). */
  passEnv?: readonly string[];
  /** Values that must never reach a build (the runner's identity token). */
  withheldValues?: readonly string[];
}

export function looksLikeCredential(name: string): boolean {
  return CREDENTIAL_NAME.some((re) => re.test(name));
}

/** The variables the build gets from the spec's `env` (unset ones are skipped); throws RUNNER_SPEC_INVALID. */
export function selectBuildEnv(spec: BuildSpec, policy: EnvPolicy): Record<string, string> {
  const passed = new Set(policy.passEnv ?? []);
  const withheld = (policy.withheldValues ?? []).filter((v) => v.length >= 8);
  const problems: string[] = [];
  const env: Record<string, string> = {};
  for (const name of spec.env ?? []) {
    if (RUNNER_CREDENTIALS.has(name.toUpperCase())) {
      problems.push(`env: '${name}' is the runner's own credential and never reaches a build`);
      continue;
    }
    if (looksLikeCredential(name) && !passed.has(name)) {
      problems.push(
        `env: '${name}' looks like a credential; the operator must allow it explicitly (airlock run --pass-env ${name})`,
      );
      continue;
    }
    const value = policy.hostEnv[name];
    if (value === undefined) continue;
    if (withheld.some((w) => value.includes(w))) {
      problems.push(`env: '${name}' holds the runner's identity token, which never reaches a build`);
      continue;
    }
    env[name] = value;
  }
  if (problems.length > 0)
    throw new RunnerError('RUNNER_SPEC_INVALID', `build spec:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  return env;
}
