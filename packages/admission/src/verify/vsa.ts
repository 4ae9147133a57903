import type { FetchedBundle } from '@airlock/oci';
import { checkVsa, SLSA_VSA_V1 } from '@airlock/policy';
import type { ImagePolicy } from '../policy/load.js';
import type { DigestImage, TrustMaterial } from './types.js';

/** Clock skew tolerated for a VSA's timeVerified in the future. */
const MAX_SKEW_MS = 60_000;

/**
 * The VSA fast path: a SLSA VSA referrer of the image, signed by the policy's verifier identity (checked offline
 * against the trusted roots), PASSED, about this digest, under this release policy's digest, from the configured
 * verifier id, at the minimum level, and at most maxAge old (among `fetched`, the image's referrer bundles). Returns why it was accepted, or undefined with the
 * reason every candidate was refused (then the full verification runs).
 */
export function findAcceptedVsa(
  image: DigestImage,
  policy: ImagePolicy,
  trust: TrustMaterial,
  now: Date,
  fetched: readonly FetchedBundle[],
): { accepted: string } | { refused: string } {
  const vsa = policy.vsa!;
  const bundles = fetched.filter((b) => b.predicateType === undefined || b.predicateType === SLSA_VSA_V1);
  const reasons: string[] = [];
  for (const b of bundles) {
    const r = checkOne(b.bundle, image, policy, trust, now);
    if ('accepted' in r) return r;
    reasons.push(r.refused);
  }
  return { refused: reasons.length > 0 ? reasons.join('; ') : `no VSA from ${vsa.verifierIdentity}` };
}

function checkOne(
  bundle: unknown,
  image: DigestImage,
  policy: ImagePolicy,
  trust: TrustMaterial,
  now: Date,
): { accepted: string } | { refused: string } {
  const vsa = policy.vsa!;
  const sha256 = image.digest.slice('sha256:'.length);
  let statement: unknown;
  let error = 'no trusted root';
  for (const v of trust.verifiers) {
    try {
      statement = v.verify(bundle, {
        artifactDigest: { sha256 },
        policy: { subject: vsa.verifierIdentity, issuer: vsa.issuer },
        expectedPredicateType: SLSA_VSA_V1,
      }).statement;
      break;
    } catch (err) {
      error = (err as Error).message;
    }
  }
  if (statement === undefined) return { refused: `VSA bundle does not verify: ${error}` };
  try {
    const p = checkVsa(statement, {
      subjectDigest: { sha256 },
      policyDigest: policy.release.digest.sha256,
      ...(vsa.verifierId !== undefined ? { verifierId: vsa.verifierId } : {}),
      ...(vsa.minimumLevel !== undefined ? { minimumLevel: vsa.minimumLevel } : {}),
    });
    const at = Date.parse(p.timeVerified);
    if (!Number.isFinite(at)) return { refused: `VSA timeVerified '${p.timeVerified}' is not a time` };
    if (at > now.getTime() + MAX_SKEW_MS) return { refused: `VSA timeVerified ${p.timeVerified} is in the future` };
    if (now.getTime() - at > vsa.maxAgeSeconds * 1000)
      return { refused: `VSA from ${p.timeVerified} is older than ${vsa.maxAge}` };
    return { accepted: `VSA from ${vsa.verifierIdentity} (${p.verifiedLevels.join(', ')}, ${p.timeVerified})` };
  } catch (err) {
    return { refused: (err as Error).message };
  }
}
