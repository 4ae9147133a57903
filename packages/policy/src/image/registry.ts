import { AirlockError } from '@airlock/core';
import { PolicyError } from '../errors.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** Throws POLICY_ABORTED when the caller's signal fired (checked between registry round trips). */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted)
    throw new PolicyError('POLICY_ABORTED', 'image verification aborted', { cause: signal.reason as unknown });
}

/**
 * One registry round trip, its failure typed: POLICY_REGISTRY_UNAVAILABLE when nothing answered (a connection
 * failure anywhere in the cause chain), else POLICY_REGISTRY_FAILED naming what was being read.
 */
export async function registryCall<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  checkAborted(signal);
  let out: T;
  try {
    out = await fn();
  } catch (cause) {
    if (cause instanceof PolicyError) throw cause;
    const message = `reading ${what} from the registry failed: ${(cause as Error).message}`;
    throw new PolicyError(unreachable(cause) ? 'POLICY_REGISTRY_UNAVAILABLE' : 'POLICY_REGISTRY_FAILED', message, {
      cause,
      ...(cause instanceof AirlockError ? { details: { registryCode: cause.code } } : {}),
    });
  }
  checkAborted(signal);
  return out;
}

function unreachable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (e instanceof TypeError && e.message === 'fetch failed') return true;
  }
  return false;
}
