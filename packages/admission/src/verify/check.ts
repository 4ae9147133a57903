import { readSigstoreBundles, type FetchedBundle } from '@airlock/oci';
import type { Verdict } from '@airlock/policy';
import type { ImagePolicy } from '../policy/load.js';
import type { VerificationCache } from './cache.js';
import type { Registries } from '../registry/config.js';
import type { DigestImage, ImageVerifier, TrustMaterial } from './types.js';
import { findAcceptedVsa } from './vsa.js';
import { VerificationCache as Cache } from './cache.js';

/** One image policy's result for one digest (what the cache stores: nothing request-dependent). */
export interface PolicyOutcome {
  passed: boolean;
  /** One line: how it passed (VSA, policy + level) or the first failed rule. */
  reason: string;
  via: 'vsa' | 'policy';
  levels?: string[];
}

export interface CheckContext {
  verifier: ImageVerifier;
  registries: Registries;
  cache: VerificationCache<PolicyOutcome>;
  trustDigest: string;
  material(policy: ImagePolicy): TrustMaterial;
  onCache(hit: boolean): void;
  /** A verification starts (shared by every request that joins it). */
  onVerify?(): void;
}

/**
 * The verification result of `policy` for `image`, from the cache or by verifying (VSA fast path first, if the
 * policy has one, then the full release policy). The caller applies mode and namespace: they are not cached.
 */
export async function checkDigest(
  image: Omit<DigestImage, 'client'>,
  policy: ImagePolicy,
  ctx: CheckContext,
  signal: AbortSignal,
): Promise<PolicyOutcome & { cached: boolean }> {
  const key = Cache.key(image.digest, policy.digest, ctx.trustDigest);
  const r = await ctx.cache.run(
    key,
    (shared) => {
      ctx.onVerify?.();
      return verifyOnce(image, policy, ctx, shared);
    },
    (o) => o.passed,
    signal,
  );
  ctx.onCache(r.hit);
  return { ...r.value, cached: r.hit };
}

async function verifyOnce(
  image: Omit<DigestImage, 'client'>,
  policy: ImagePolicy,
  ctx: CheckContext,
  signal: AbortSignal,
): Promise<PolicyOutcome> {
  const trust = ctx.material(policy);
  // Bound to the shared signal: aborted only when every coalesced request has given up.
  const bound: DigestImage = { ...image, client: ctx.registries.client(image.registry, signal) };
  let vsaNote = '';
  let fetched: FetchedBundle[] | undefined;
  if (policy.vsa) {
    fetched = await readSigstoreBundles(bound.client, bound.repository, bound.digest);
    const vsa = findAcceptedVsa(bound, policy, trust, new Date(), fetched);
    if ('accepted' in vsa) return { passed: true, via: 'vsa', reason: `accepted by ${vsa.accepted}` };
    vsaNote = ` (no usable VSA: ${vsa.refused})`;
  }
  // One referrers listing: the full verification reads the bundles the VSA lookup already read.
  const verdict = await ctx.verifier.verify(bound, policy.release, trust, signal, fetched);
  const outcome = outcomeOf(verdict);
  return outcome.passed ? outcome : { ...outcome, reason: outcome.reason + vsaNote };
}

export function outcomeOf(verdict: Verdict): PolicyOutcome {
  if (verdict.result === 'PASS')
    return {
      passed: true,
      via: 'policy',
      reason: `passed (${verdict.verifiedLevels.join(', ') || 'no level'})`,
      levels: [...verdict.verifiedLevels],
    };
  const failed = verdict.rules.filter((r) => !r.passed);
  const first = failed[0];
  return {
    passed: false,
    via: 'policy',
    reason: first
      ? `${first.rule}: ${first.message}${failed.length > 1 ? ` (+${failed.length - 1} more)` : ''}`
      : 'failed',
  };
}
