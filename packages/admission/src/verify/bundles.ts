import { sha256Hex } from '@airlock/core';
import { readCosignAttestations, readSigstoreBundles } from '@airlock/oci';
import {
  evaluatePolicy,
  type AttestationEvidence,
  type LoadedPolicy,
  type RuleResult,
  type Verdict,
} from '@airlock/policy';
import type { BundleVerifier, VerificationResult } from '@airlock/verify';
import type { DigestImage, ImageVerifier, TrustMaterial } from './types.js';

/**
 * Image verification as `airlock verify image` does it (packages/cli/src/commands/verify/image.ts), until
 * @airlock/policy's `verifyImageByPolicy` replaces it: the Sigstore bundles referring to the digest (referrers API,
 * else the `sha256-<hex>` fallback index) are verified offline against every trusted root, cosign `.att` envelopes
 * must each be one of them, and the release policy is evaluated. A bundle that does not verify fails the verdict.
 */
export class ReferrerBundleVerifier implements ImageVerifier {
  async verify(image: DigestImage, policy: LoadedPolicy, trust: TrustMaterial, signal: AbortSignal): Promise<Verdict> {
    const sha256 = image.digest.slice('sha256:'.length);
    const fetched = await readSigstoreBundles(image.client, image.repository, image.digest);
    signal.throwIfAborted();
    const attestations: AttestationEvidence[] = [];
    const failures: RuleResult[] = [];
    const sigs = new Set<string>();
    for (const b of fetched) {
      if ((b.bundle as { dsseEnvelope?: unknown }).dsseEnvelope === undefined) continue;
      const uri = `${image.registry}/${image.repository}@${b.manifestDigest}`;
      const r = verifyAny(b.bundle, sha256, trust.verifiers);
      if ('error' in r) {
        failures.push(failed('attestations.signature', uri, `${uri} does not verify: ${r.error}`));
        continue;
      }
      attestations.push({ uri, bundleDigest: { sha256: sha256Hex(b.bytes) }, verification: r.result });
      const env = (b.bundle as { dsseEnvelope?: { signatures?: { sig?: string }[] } }).dsseEnvelope;
      sigs.add(env?.signatures?.[0]?.sig ?? '');
    }
    const atts = await readCosignAttestations(image.client, image.repository, image.digest);
    signal.throwIfAborted();
    const stray = atts.filter((a) => !a.envelope?.signatures.some((s) => sigs.has(s.sig)));
    if (stray.length > 0)
      failures.push(
        failed(
          'attestations.cosign',
          image.reference,
          `${stray.length} cosign .att envelope(s) match no verified bundle`,
        ),
      );
    const verdict = await evaluatePolicy(
      policy,
      {
        artifact: { name: `${image.registry}/${image.repository}`, digest: { sha256 }, uri: image.reference },
        attestations,
        ...(trust.snapshots ? { snapshots: trust.snapshots } : {}),
      },
      { now: new Date() },
    );
    if (failures.length > 0) {
      verdict.rules.unshift(...failures);
      verdict.result = 'FAIL';
    }
    return verdict;
  }
}

function failed(rule: string, uri: string, message: string): RuleResult {
  return { rule, passed: false, seen: { uri }, expected: 'verified evidence', message };
}

function verifyAny(
  bundle: unknown,
  sha256: string,
  verifiers: readonly BundleVerifier[],
): { result: VerificationResult } | { error: string } {
  let error = 'no trusted root';
  for (const v of verifiers) {
    try {
      return { result: v.verify(bundle, { artifactDigest: { sha256 }, allowAnyIdentity: true }) };
    } catch (err) {
      error = (err as Error).message;
    }
  }
  return { error };
}
