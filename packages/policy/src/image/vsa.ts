import { readSigstoreBundles } from '@airlock/oci';
import type { BundleVerifier, IdentityPolicy, VerificationResult } from '@airlock/verify';
import { SLSA_VSA_V1 } from '../constants.js';
import { PolicyError } from '../errors.js';
import { checkVsa, type VsaExpectation, type VsaPredicate } from '../vsa.js';
import { registryCall } from './registry.js';
import type { ImageTarget } from './verify.js';

export interface CheckedVsa {
  /** Where the VSA bundle came from (a file path, `host/repo@<referrer digest>`). */
  uri: string;
  predicate: VsaPredicate;
  /** The identity the VSA was signed as. */
  signer: string;
  logIndex?: number;
}

/**
 * Checks one VSA bundle: its signature against the trusted root(s) and the verifier's identity, its statement a SLSA
 * VSA v1 about the digest, under the policy digest, from the verifier id, PASSED (checkVsa). Throws VerifyError for
 * a signature that does not verify, PolicyError POLICY_VSA_* for a VSA that says something else.
 */
export function checkVsaBundle(
  bundle: unknown,
  uri: string,
  opts: { verifiers: readonly BundleVerifier[]; identity: IdentityPolicy; expect: VsaExpectation },
): CheckedVsa {
  let result: VerificationResult | undefined;
  let last: unknown;
  for (const v of opts.verifiers) {
    try {
      result = v.verify(bundle, {
        artifactDigest: { sha256: opts.expect.subjectDigest.sha256 },
        expectedPredicateType: SLSA_VSA_V1,
        policy: opts.identity,
      });
      break;
    } catch (err) {
      last = err;
    }
  }
  if (!result) throw last instanceof Error ? last : new PolicyError('POLICY_INPUT_INVALID', 'no trusted root given');
  const signer = result.signer.subjectAlternativeName ?? '';
  const predicate = checkVsa(result.statement, {
    ...opts.expect,
    verifierId: opts.expect.verifierId ?? signer,
  });
  const e = result.tlogEntries[0];
  return { uri, predicate, signer, ...(e ? { logIndex: e.logIndex } : {}) };
}

/**
 * The first VSA among an image's Sigstore referrers that passes checkVsaBundle (VSAs for other digests, policies or
 * verifiers may sit beside it). Throws the reason the last candidate was refused, or POLICY_VSA_INVALID when the
 * image has no VSA referrer at all.
 */
export async function checkImageVsa(
  target: ImageTarget & { repository: string; digest: string },
  opts: {
    verifiers: readonly BundleVerifier[];
    identity: IdentityPolicy;
    expect: Omit<VsaExpectation, 'subjectDigest'>;
  },
): Promise<CheckedVsa> {
  const { client, repository, digest, signal } = target;
  const fetched = await registryCall('the Sigstore bundles', signal, () =>
    readSigstoreBundles(client, repository, digest),
  );
  const candidates = fetched.filter((b) => b.predicateType === SLSA_VSA_V1);
  if (candidates.length === 0)
    throw new PolicyError(
      'POLICY_VSA_INVALID',
      `${client.host}/${repository}@${digest} has no VSA among its referrers`,
    );
  let last: unknown;
  for (const b of candidates) {
    try {
      return checkVsaBundle(b.bundle, `${client.host}/${repository}@${b.manifestDigest}`, {
        ...opts,
        expect: { ...opts.expect, subjectDigest: { sha256: digest.slice('sha256:'.length) } },
      });
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
