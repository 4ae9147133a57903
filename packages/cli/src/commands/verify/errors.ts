import { PolicyError } from '@airlock/policy';
import { VerifyError } from '@airlock/verify';
import { EXIT, isServiceUnavailable, UsageError } from '../../output.js';

/** Policy errors that mean bad input (exit 2): the policy, a bundle, a trusted root, an image reference. */
const USAGE_CODES = new Set<string>([
  'POLICY_INVALID',
  'POLICY_UNREADABLE',
  'POLICY_ADVISORY_INVALID',
  'POLICY_SCHEMA_UNAVAILABLE',
  'POLICY_INPUT_INVALID',
  'POLICY_IMAGE_NOT_FOUND',
  'POLICY_MIRROR_URL_INVALID',
]);

/**
 * The exit code for an error of the policy commands: 2 for bad input (flags, unreadable or malformed policy, OSV or
 * trusted root), 3 when a service (CA, log) cannot be reached, 1 for a check that failed (a VSA or snapshot that
 * does not verify or says something else).
 */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof PolicyError)
    return USAGE_CODES.has(err.code)
      ? EXIT.USAGE
      : err.code === 'POLICY_REGISTRY_UNAVAILABLE'
        ? EXIT.UNAVAILABLE
        : EXIT.FAILURE;
  if (err instanceof VerifyError && /TRUSTED_ROOT/.test(err.code)) return EXIT.USAGE;
  return isServiceUnavailable(err) ? EXIT.UNAVAILABLE : EXIT.FAILURE;
}
