import { RunnerError } from '../errors.js';
import type { LimitExceeded } from './confine.js';

/** The error for a build that hit a resource limit (exit code RESOURCE_LIMIT), naming the limit. */
export function limitError(hit: LimitExceeded, what: 'build' | 'rebuild', logPath: string): RunnerError {
  return new RunnerError(
    'RUNNER_RESOURCE_LIMIT',
    `resource limit exceeded: the ${what} hit its ${hit.limits.join(' and ')} limit — ${hit.message}; log: ${logPath}`,
    { details: { limit: hit.limit, limits: hit.limits, logPath } },
  );
}
